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
//! - templates in the top-level `web/templates/`, assets in `web/static/`,
//!   both compiled in: the FROM-scratch controller image serves them.

pub mod auth;
mod console;
mod markdown;
mod packets;
mod pages;

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
}

impl PanelState {
    pub fn new(secure: bool, public_url: String) -> PanelState {
        PanelState {
            secure,
            public_url,
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
        }
    }

    pub fn of(s: &auth::Subject, title: impl Into<String>, tab: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            who: Some(if s.student.name.is_empty() {
                s.student.id.clone()
            } else {
                format!("{} ({})", s.student.name, s.student.id)
            }),
            run: Some(s.run.name.clone()),
            lab: s.lab.title.clone(),
            csrf: s.session.csrf.clone(),
            base: s.base.clone(),
            tab,
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

impl From<anyhow::Error> for PanelError {
    fn from(e: anyhow::Error) -> Self {
        PanelError::new(StatusCode::BAD_REQUEST, format!("{e:#}"))
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
        Some(_) => Redirect::to("/dashboard"),
        None => Redirect::to("/login"),
    }
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
}
