//! The panel: server-rendered pages for students (DESIGN.md decision 9).
//!
//! # Layout
//!
//! - `auth.rs`: sessions, CSRF, login rate limits, and the [`auth::Subject`]
//!   every page handler takes (whose things it may show).
//! - `pages.rs`: dashboard, task, topology (with node controls), answers,
//!   "check now".
//! - `packets.rs`: frames and protocol events, live (SSE), a frame's
//!   detail, ladders, pcap downloads.
//! - `console.rs`: the workstation's terminal over a WebSocket.
//! - `markdown.rs`: task text, raw HTML never passed through.
//! - staff pages (issue 15), every handler asking [`auth::Role::may`]:
//!   `staff.rs` (runs, launch, late students, teardown, credentials
//!   sheets, grades), `grid.rs` (the live class × task grid), `drill.rs`
//!   (one student: answers, history, actions), `overview.rs` (the run's
//!   plots); a student's own pages are shown to staff read-only through
//!   [`staff_view`].
//! - templates in the top-level `web/templates/`, assets in `web/static/`,
//!   both compiled in: the FROM-scratch controller image serves them.

pub mod auth;
mod console;
mod drill;
mod grid;
mod markdown;
mod overview;
mod packets;
mod pages;
mod staff;

use crate::AppState;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::time::Duration;

pub use console::Consoles;

/// What the pages share besides the controller.
pub struct PanelState {
    /// Cookies get `Secure` (the panel is served over TLS).
    pub secure: bool,
    pub limiter: auth::Limiter,
    /// Argon2 verifications at once (each takes a core for tens of ms).
    pub hashing: tokio::sync::Semaphore,
    pub consoles: Consoles,
    /// The panel's address as students type it.
    pub public_url: String,
    /// The labs an instructor may launch from the panel.
    pub labs: Option<std::path::PathBuf>,
}

impl PanelState {
    pub fn new(secure: bool, public_url: String, labs: Option<std::path::PathBuf>) -> PanelState {
        PanelState {
            secure,
            public_url,
            labs,
            // 5 failures per account, 30 per address, in 5 minutes.
            limiter: auth::Limiter::new(Duration::from_secs(300), 5, 30),
            hashing: tokio::sync::Semaphore::new(2),
            consoles: Consoles::new(console::Limits::default()),
        }
    }
}

/// The frame around every page: title, who is logged in, the tabs.
pub struct Chrome {
    pub title: String,
    pub who: Option<String>,
    pub run: Option<String>,
    pub lab: String,
    pub csrf: String,
    pub base: String,
    pub tab: &'static str,
    /// A staff member is logged in: the staff tabs.
    pub staff: bool,
    /// Whose pages a staff member is looking at (read-only), and the staff
    /// page of that student.
    pub viewing: Option<(String, String)>,
    /// The staff pages' base for this run (`/staff/runs/R`).
    pub run_base: String,
}

impl Chrome {
    pub fn anonymous(title: &str) -> Chrome {
        Chrome {
            title: title.into(),
            who: None,
            run: None,
            lab: String::new(),
            csrf: String::new(),
            base: String::new(),
            tab: "",
            staff: false,
            viewing: None,
            run_base: String::new(),
        }
    }

    pub fn of(s: &auth::Subject, title: impl Into<String>, tab: &'static str) -> Chrome {
        let student = if s.student.name.is_empty() {
            s.student.id.clone()
        } else {
            format!("{} ({})", s.student.name, s.student.id)
        };
        let staff = s.read_only();
        Chrome {
            title: title.into(),
            who: Some(if staff {
                staff_who(&s.session)
            } else {
                student.clone()
            }),
            run: Some(s.run.name.clone()),
            lab: s.lab.title.clone(),
            csrf: s.session.csrf.clone(),
            base: s.base.clone(),
            tab,
            staff,
            viewing: staff.then(|| (student, s.base.trim_end_matches("/view").to_string())),
            run_base: format!("/staff/runs/{}", s.run.name),
        }
    }

    /// A staff page, of one run or of all.
    pub fn staff(
        s: &auth::Staff,
        title: impl Into<String>,
        run: Option<(&str, &str)>,
        tab: &'static str,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            who: Some(staff_who(&s.session)),
            run: run.map(|(r, _)| r.to_string()),
            lab: run.map(|(_, l)| l.to_string()).unwrap_or_default(),
            csrf: s.session.csrf.clone(),
            base: String::new(),
            tab,
            staff: true,
            viewing: None,
            run_base: run
                .map(|(r, _)| format!("/staff/runs/{r}"))
                .unwrap_or_default(),
        }
    }
}

/// A failure shown as a page with its status.
#[derive(Debug)]
pub struct PanelError {
    status: StatusCode,
    message: String,
}

impl PanelError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PanelError {
        PanelError {
            status,
            message: message.into(),
        }
    }
    pub fn not_found(what: impl Into<String>) -> PanelError {
        PanelError::new(StatusCode::NOT_FOUND, what)
    }
    pub fn forbidden(what: impl Into<String>) -> PanelError {
        PanelError::new(StatusCode::FORBIDDEN, what)
    }
    pub fn internal(e: impl std::fmt::Display) -> PanelError {
        tracing::warn!("panel: {e}");
        PanelError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}"))
    }
}

/// The same statuses as the API's (`applab_controller::problem`).
impl From<anyhow::Error> for PanelError {
    fn from(e: anyhow::Error) -> Self {
        let status = StatusCode::from_u16(applab_controller::problem::status_of(&e))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        PanelError::new(status, format!("{e:#}"))
    }
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    message: String,
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            c: Chrome::anonymous(self.status.canonical_reason().unwrap_or("Error")),
            status: self.status.as_u16(),
            message: self.message,
        };
        match askama::Template::render(&page) {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, page.message).into_response(),
        }
    }
}

fn staff_who(s: &auth::Session) -> String {
    format!("{} ({})", s.subject, s.role.as_str())
}

pub fn render(t: &impl askama::Template) -> Result<Response, PanelError> {
    t.render()
        .map(|h| Html(h).into_response())
        .map_err(PanelError::internal)
}

/// Headers on every answer of the panel and the API: no inline script, no
/// framing, no sniffing, nothing cached (the pages hold a student's data).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

/// Assets compiled into the binary.
static ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "panel.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../web/static/panel.css"),
    ),
    (
        "panel.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/static/panel.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../web/static/console.js"),
    ),
    (
        "xterm.js",
        "text/javascript; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/xterm.js")),
    ),
    (
        "xterm.css",
        "text/css; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/xterm.css")),
    ),
];

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

async fn root(session: Option<auth::Session>) -> Redirect {
    match session {
        Some(s) if s.role.is_staff() => Redirect::to("/staff/runs"),
        Some(_) => Redirect::to("/dashboard"),
        None => Redirect::to("/login"),
    }
}

/// The first path segments of a student's pages that staff may look at.
const VIEWABLE: &[&str] = &[
    "dashboard",
    "tasks",
    "topology",
    "topology.svg",
    "console",
    "packets",
    "results",
];

/// Staff look at a student's own pages through
/// `/staff/runs/R/students/S/view/...`: the path is rewritten to the
/// student's, with a [`auth::StaffView`] that the [`auth::Subject`]
/// extractor turns into that student. Only reads pass: nothing a staff
/// member does here changes the student's lab. Runs before routing.
pub async fn staff_view(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/staff/runs/") else {
        return next.run(req).await;
    };
    let mut parts = rest.splitn(5, '/');
    let (Some(run), Some("students"), Some(student), Some("view")) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return next.run(req).await;
    };
    let tail = parts.next().unwrap_or("");
    let first = tail.split('/').next().unwrap_or("");
    let tail = if tail.is_empty() { "dashboard" } else { tail };
    if !first.is_empty() && !VIEWABLE.contains(&first) {
        return PanelError::not_found(
            "Staff see a student's tasks, topology, console and packets here.",
        )
        .into_response();
    }
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        return PanelError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "A student's pages are read-only for staff; the actions are on the student's staff page.",
        )
        .into_response();
    }
    let base = format!("/staff/runs/{run}/students/{student}/view");
    let view = auth::StaffView {
        run: run.to_string(),
        student: student.to_string(),
        base,
    };
    let to = match req.uri().query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    match to.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return PanelError::not_found("no such page").into_response(),
    }
    req.extensions_mut().insert(view);
    next.run(req).await
}

impl axum::extract::OptionalFromRequestParts<AppState> for auth::Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <auth::Session as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                parts, st,
            )
            .await
            .ok(),
        )
    }
}

/// The student's pages. Every handler takes a [`auth::Subject`] (or a
/// [`auth::Session`] for the run picker and logout).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/runs", get(auth::runs_form).post(auth::pick_run))
        .route("/dashboard", get(pages::dashboard))
        .route("/tasks/{task}", get(pages::task))
        .route("/tasks/{task}/check", post(pages::check_now))
        .route("/tasks/{task}/answer", post(pages::answer))
        .route("/results/stream", get(pages::results_stream))
        .route("/topology", get(pages::topology))
        .route("/topology.svg", get(pages::topology_svg))
        .route("/nodes/{node}", post(pages::node_control))
        .route("/console", get(console::page))
        .route("/console/ws", get(console::socket))
        .route("/packets", get(packets::list))
        .route("/packets/stream", get(packets::stream))
        .route("/packets/frames/{network}/{number}", get(packets::frame))
        .route("/packets/ladder/{network}/{flow}", get(packets::ladder))
        .route(
            "/packets/ladder/{network}/{flow}/svg",
            get(packets::ladder_svg),
        )
        .route("/packets/pcap/{network}", get(packets::pcap))
        .route("/static/{name}", get(asset))
        .merge(staff_router())
}

/// The instructor's and assistants' pages.
fn staff_router() -> Router<AppState> {
    let upload = axum::extract::DefaultBodyLimit::max(staff::MAX_UPLOAD + (1 << 20));
    Router::new()
        .route("/staff", get(staff::home))
        .route(
            "/staff/login",
            get(auth::staff_login_form).post(auth::staff_login),
        )
        .route(
            "/staff/runs",
            get(staff::runs).post(staff::launch).layer(upload),
        )
        .route("/staff/runs/{run}", get(grid::grid))
        .route("/staff/runs/{run}/stream", get(grid::stream))
        .route(
            "/staff/runs/{run}/students",
            post(staff::add_students).layer(upload),
        )
        .route(
            "/staff/runs/{run}/teardown",
            get(staff::teardown_form).post(staff::teardown),
        )
        .route("/staff/runs/{run}/grades", get(staff::grades))
        .route("/staff/runs/{run}/grades/{file}", get(staff::grades_file))
        .route("/staff/runs/{run}/credentials", post(staff::reissue))
        .route("/staff/runs/{run}/overview", get(overview::page))
        .route("/staff/runs/{run}/overview/{name}", get(overview::svg))
        .route("/staff/runs/{run}/students/{id}", get(drill::page))
        .route("/staff/runs/{run}/students/{id}/reset", post(drill::reset))
        .route("/staff/runs/{run}/students/{id}/node", post(drill::node))
        .route("/staff/runs/{run}/students/{id}/shape", post(drill::shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// What a rewritten request looks like to the routes behind it.
    async fn through_view(method: &str, path: &str) -> (StatusCode, String) {
        let inner = Router::new().fallback(|req: Request| async move {
            let view = req
                .extensions()
                .get::<auth::StaffView>()
                .map(|v| format!("{}/{}@{}", v.run, v.student, v.base))
                .unwrap_or_default();
            format!("{} {view}", req.uri())
        });
        let app = tower::Layer::layer(&axum::middleware::from_fn(staff_view), inner);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn staff_views_become_the_students_pages_read_only() {
        let (s, b) = through_view("GET", "/staff/runs/r1/students/s9/view/tasks/t?x=1").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b, "/tasks/t?x=1 r1/s9@/staff/runs/r1/students/s9/view");
        let (_, b) = through_view("GET", "/staff/runs/r1/students/s9/view").await;
        assert!(b.starts_with("/dashboard "), "{b}");
        let (s, _) = through_view("POST", "/staff/runs/r1/students/s9/view/tasks/t/check").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        let (s, _) = through_view("GET", "/staff/runs/r1/students/s9/view/staff/runs").await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "only a student's pages are viewable"
        );
        let (s, _) = through_view("GET", "/staff/runs/r1/students/s9/view/logout").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Other paths pass untouched, with no view.
        let (_, b) = through_view("GET", "/staff/runs/r1/students/s9").await;
        assert_eq!(b, "/staff/runs/r1/students/s9 ");
        let (_, b) = through_view("GET", "/dashboard").await;
        assert_eq!(b, "/dashboard ");
    }

    #[test]
    fn the_role_table() {
        use auth::{Action::*, Role};
        let all = [
            View,
            Reset,
            NodeControl,
            Shape,
            Reissue,
            Launch,
            Teardown,
            Export,
        ];
        for a in all {
            assert!(Role::Instructor.may(a), "{a:?}");
            assert!(!Role::Student.may(a), "{a:?}");
            assert_eq!(
                Role::Assistant.may(a),
                matches!(a, View | Reset | NodeControl),
                "{a:?}"
            );
        }
    }
}
