//! Who is asking, and what they may see (DESIGN.md decision 13).
//!
//! One session model for every person: a random 256-bit id in an HttpOnly,
//! SameSite=Strict cookie (Secure under TLS), kept in the store as its
//! SHA-256, with a CSRF token that every state-changing request carries.
//! Every page handler takes a [`Subject`]: the one student (of one run)
//! whose things it may show. A student's session yields only themselves;
//! the instructor's pages (a later role) will yield any student of their
//! runs through the same type, so no handler decides access on its own.

use super::{render, PanelError, PanelState};
use crate::AppState;
use applab_controller::store::{now_f, RunRow, SessionRow, StudentRow};
use applab_lab::Lab;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "applab_session";
/// The login form's own token (a double-submit cookie): logging a browser
/// into someone else's account from another site is refused too.
pub const LOGIN_COOKIE: &str = "applab_login";
/// A session ends after this long without a request...
pub const IDLE: Duration = Duration::from_secs(4 * 3600);
/// ...and after this long in any case.
pub const MAX_AGE: Duration = Duration::from_secs(14 * 3600);

/// The kinds of people the panel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Student,
    Assistant,
    Instructor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Assistant => "assistant",
            Role::Instructor => "instructor",
        }
    }

    pub fn is_staff(self) -> bool {
        self != Role::Student
    }

    /// What each role may do on the staff pages: the one table every staff
    /// handler asks (the role matrix test reads it back through the routes).
    pub fn may(self, a: Action) -> bool {
        match self {
            Role::Instructor => true,
            Role::Assistant => matches!(a, Action::View | Action::Reset | Action::NodeControl),
            Role::Student => false,
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "student" => Some(Role::Student),
            "assistant" => Some(Role::Assistant),
            "instructor" => Some(Role::Instructor),
            _ => None,
        }
    }
}

/// What a staff page does, for [`Role::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See runs, the grid, the overview and any student's pages.
    View,
    /// Recreate a student's topology.
    Reset,
    /// Stop or start a student's node.
    NodeControl,
    /// Change a link's delay, rate or loss.
    Shape,
    /// New passwords (and the credentials sheet that shows them).
    Reissue,
    /// Launch a run or add students to it.
    Launch,
    /// Remove a run.
    Teardown,
    /// Download grades.
    Export,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::View => "see the class",
            Action::Reset => "reset a student",
            Action::NodeControl => "stop or start a node",
            Action::Shape => "change a link's shaping",
            Action::Reissue => "issue new credentials",
            Action::Launch => "launch a run or add students",
            Action::Teardown => "tear a run down",
            Action::Export => "download grades",
        }
    }
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub key: String,
    pub role: Role,
    /// The student's id (or a staff account's name).
    pub subject: String,
    pub run: Option<String>,
    pub runs: Vec<String>,
    pub csrf: String,
}

/// A staff member's read-only look at one student's pages: set by
/// [`crate::panel::staff_view`] on `/staff/runs/R/students/S/view/...`,
/// which it rewrites to the student's own path.
#[derive(Debug, Clone)]
pub struct StaffView {
    pub run: String,
    pub student: String,
    pub base: String,
}

/// The one student whose things a request may touch, with their run and lab.
pub struct Subject {
    pub session: Session,
    pub run: RunRow,
    pub student: StudentRow,
    pub lab: Arc<Lab>,
    /// Where this student's pages live ("" for the student's own panel).
    pub base: String,
}

impl Subject {
    /// A staff member watching: nothing on the page changes the student's
    /// lab, and the console only shows.
    pub fn read_only(&self) -> bool {
        self.session.role.is_staff()
    }
}

/// A logged-in instructor or assistant.
pub struct Staff {
    pub session: Session,
    pub role: Role,
}

impl Staff {
    /// Refuse, naming what the role may not do.
    pub fn require(&self, a: Action) -> Result<(), PanelError> {
        if self.role.may(a) {
            Ok(())
        } else {
            Err(PanelError::forbidden(format!(
                "An {} may not {}; ask an instructor.",
                self.role.as_str(),
                a.describe()
            )))
        }
    }
}

impl Staff {
    /// A state-changing staff request: the role may do it, and the form
    /// (or header) carries the session's CSRF token.
    pub fn act(
        &self,
        a: Action,
        headers: &HeaderMap,
        form: Option<&str>,
    ) -> Result<(), PanelError> {
        self.require(a)?;
        check_csrf(&self.session, csrf_from(headers, form).as_deref())
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, st)
            .await
            .map_err(IntoResponse::into_response)?;
        if !session.role.is_staff() {
            return Err(
                PanelError::forbidden("This page is for instructors and assistants.")
                    .into_response(),
            );
        }
        Ok(Staff {
            role: session.role,
            session,
        })
    }
}

/// No session: a page redirects to the login form, anything else gets 401.
pub struct Unauthenticated {
    html: bool,
    next: String,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        if self.html {
            let form = if self.next.starts_with("/staff") {
                "/staff/login"
            } else {
                "/login"
            };
            let to = format!("{form}?next={}", url_escape(&self.next));
            Redirect::to(&to).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not logged in\n",
            )
                .into_response()
        }
    }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Does the client want a page (a browser navigating) rather than data?
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

pub fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>, home: &str) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => home.into(),
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        // A staff view was rewritten to the student's path: come back to the view.
        let view_base = parts
            .extensions
            .get::<StaffView>()
            .map(|v| v.base.clone())
            .unwrap_or_default();
        let unauth = || Unauthenticated {
            html: wants_html(&parts.headers) && parts.method == axum::http::Method::GET,
            next: format!(
                "{view_base}{}",
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            ),
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(unauth());
        };
        let key = sha256_hex(id);
        let row = match st.ctrl.store.session(&key).await {
            Ok(Some(r)) => r,
            _ => return Err(unauth()),
        };
        let Some(role) = Role::parse(&row.role) else {
            return Err(unauth());
        };
        // Slide the idle expiry, at most once a minute per session.
        let now = now_f();
        if now - row.last_seen > 60.0 {
            let until = (now + IDLE.as_secs_f64()).min(row.created_at + MAX_AGE.as_secs_f64());
            let _ = st.ctrl.store.touch_session(&key, until).await;
        }
        Ok(Session {
            runs: row.runs(),
            key,
            role,
            subject: row.subject,
            run: row.run,
            csrf: row.csrf,
        })
    }
}

impl FromRequestParts<AppState> for Subject {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, st)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(view) = parts.extensions.get::<StaffView>().cloned() {
            return staff_subject(st, session, view).await;
        }
        if session.role != Role::Student {
            // Staff reach students through /staff/runs/R/students/S/view/.
            return Err(PanelError::forbidden("this page is a student's").into_response());
        }
        let Some(run_name) = session.run.clone() else {
            return Err(Redirect::to("/runs").into_response());
        };
        let gone = || {
            Unauthenticated {
                html: wants_html(&parts.headers),
                next: "/dashboard".into(),
            }
            .into_response()
        };
        let Ok(Some(run)) = st.ctrl.store.run(&run_name).await else {
            return Err(gone());
        };
        let Ok(Some(student)) = st.ctrl.store.student(&run_name, &session.subject).await else {
            return Err(gone());
        };
        let lab = st
            .ctrl
            .lab(&run)
            .map_err(|e| PanelError::internal(e).into_response())?;
        Ok(Subject {
            session,
            run,
            student,
            lab,
            base: String::new(),
        })
    }
}

/// The student a staff member looks at (any student of any run: staff see
/// every run).
async fn staff_subject(
    st: &AppState,
    session: Session,
    view: StaffView,
) -> Result<Subject, Response> {
    if !session.role.may(Action::View) {
        return Err(
            PanelError::forbidden("These pages are for instructors and assistants.")
                .into_response(),
        );
    }
    let Ok(Some(run)) = st.ctrl.store.run(&view.run).await else {
        return Err(
            PanelError::not_found(format!("There is no run {:?}.", view.run)).into_response(),
        );
    };
    let Ok(Some(student)) = st.ctrl.store.student(&view.run, &view.student).await else {
        return Err(PanelError::not_found(format!(
            "Run {} has no student {:?}.",
            view.run, view.student
        ))
        .into_response());
    };
    let lab = st
        .ctrl
        .lab(&run)
        .map_err(|e| PanelError::internal(e).into_response())?;
    Ok(Subject {
        session,
        run,
        student,
        lab,
        base: view.base,
    })
}

/// A form or request's CSRF token must be the session's.
pub fn check_csrf(session: &Session, given: Option<&str>) -> Result<(), PanelError> {
    match given {
        Some(g) if crate::api::same(g.as_bytes(), session.csrf.as_bytes()) => Ok(()),
        _ => Err(PanelError::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this panel (CSRF token missing or wrong). Reload the page and try again.",
        )),
    }
}

/// The token from a form field or, for scripts, the `X-CSRF-Token` header.
pub fn csrf_from(headers: &HeaderMap, form: Option<&str>) -> Option<String> {
    form.map(str::to_string).or_else(|| {
        headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
}

/// Failed logins, counted per account and per address over a window.
pub struct Limiter {
    fails: Mutex<HashMap<String, VecDeque<Instant>>>,
    window: Duration,
    per_account: usize,
    per_address: usize,
}

impl Limiter {
    pub fn new(window: Duration, per_account: usize, per_address: usize) -> Limiter {
        Limiter {
            fails: Mutex::new(HashMap::new()),
            window,
            per_account,
            per_address,
        }
    }

    /// Seconds to wait if the account or the address used up its tries.
    fn blocked(&self, account: &str, addr: Option<IpAddr>) -> Option<u64> {
        let mut fails = self.fails.lock().expect("limiter");
        let now = Instant::now();
        let mut wait = None;
        let mut over = |key: String, limit: usize| {
            if let Some(q) = fails.get_mut(&key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let left = self.window.saturating_sub(now.duration_since(q[0]));
                    let s = left.as_secs().max(1);
                    wait = Some(wait.map_or(s, |w: u64| w.max(s)));
                }
            }
        };
        over(format!("id:{account}"), self.per_account);
        if let Some(a) = addr {
            over(format!("ip:{a}"), self.per_address);
        }
        wait
    }

    fn failed(&self, account: &str, addr: Option<IpAddr>) {
        let mut fails = self.fails.lock().expect("limiter");
        let now = Instant::now();
        // Bounded: a flood of made-up ids cannot grow this without end.
        if fails.len() > 100_000 {
            fails.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        fails
            .entry(format!("id:{account}"))
            .or_default()
            .push_back(now);
        if let Some(a) = addr {
            fails.entry(format!("ip:{a}")).or_default().push_back(now);
        }
    }

    fn succeeded(&self, account: &str) {
        self.fails
            .lock()
            .expect("limiter")
            .remove(&format!("id:{account}"));
    }
}

fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: super::Chrome,
    token: String,
    next: String,
    id: String,
    error: Option<String>,
    /// The instructors' and assistants' form.
    staff: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Which accounts a login form checks: students' (of every run) or staff's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    Students,
    Staff,
}

impl Accounts {
    fn home(self) -> &'static str {
        match self {
            Accounts::Students => "/dashboard",
            Accounts::Staff => "/staff/runs",
        }
    }
}

pub async fn login_form(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Response, PanelError> {
    let next = safe_next(q.next.as_deref(), Accounts::Students.home());
    login_page(
        &st.panel,
        Accounts::Students,
        next,
        String::new(),
        None,
        StatusCode::OK,
    )
}

pub async fn staff_login_form(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Response, PanelError> {
    let next = safe_next(q.next.as_deref(), Accounts::Staff.home());
    login_page(
        &st.panel,
        Accounts::Staff,
        next,
        String::new(),
        None,
        StatusCode::OK,
    )
}

fn login_page(
    panel: &PanelState,
    accounts: Accounts,
    next: String,
    id: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PanelError> {
    let token = random_token();
    let staff = accounts == Accounts::Staff;
    let page = LoginPage {
        c: super::Chrome::anonymous(if staff { "Instructor log in" } else { "Log in" }),
        token: token.clone(),
        next,
        id,
        error,
        staff,
    };
    let mut resp = render(&page)?;
    *resp.status_mut() = status;
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, 3600, panel.secure)
            .parse()
            .expect("cookie"),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct LoginForm {
    id: String,
    password: String,
    token: Option<String>,
    next: Option<String>,
}

pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    connect: Option<axum::extract::Extension<axum::extract::ConnectInfo<crate::Peer>>>,
    Form(f): Form<LoginForm>,
) -> Result<Response, PanelError> {
    log_in(st, Accounts::Students, headers, connect, f).await
}

pub async fn staff_login(
    State(st): State<AppState>,
    headers: HeaderMap,
    connect: Option<axum::extract::Extension<axum::extract::ConnectInfo<crate::Peer>>>,
    Form(f): Form<LoginForm>,
) -> Result<Response, PanelError> {
    log_in(st, Accounts::Staff, headers, connect, f).await
}

/// One login for both kinds of account: the same token check, limits,
/// hashing and session; only where the hashes come from differs.
async fn log_in(
    st: AppState,
    accounts: Accounts,
    headers: HeaderMap,
    connect: Option<axum::extract::Extension<axum::extract::ConnectInfo<crate::Peer>>>,
    f: LoginForm,
) -> Result<Response, PanelError> {
    let next = safe_next(f.next.as_deref(), accounts.home());
    let addr = connect.map(|c| c.0 .0 .0.ip());
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty()
        || !crate::api::same(
            f.token.as_deref().unwrap_or("").as_bytes(),
            expected.as_bytes(),
        )
    {
        return login_page(
            &st.panel,
            accounts,
            next,
            f.id,
            Some("The login form expired (or cookies are off). Try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let id: String = f.id.trim().chars().take(128).collect();
    // Staff and students are counted apart: a class guessing at "instructor"
    // cannot lock a student out, nor the other way round.
    let account_key = match accounts {
        Accounts::Students => id.clone(),
        Accounts::Staff => format!("staff:{id}"),
    };
    if let Some(wait) = st.panel.limiter.blocked(&account_key, addr) {
        tracing::warn!(id, ?addr, "login refused: too many failures");
        return login_page(
            &st.panel,
            accounts,
            next,
            id,
            Some(format!(
                "Too many failed logins. Try again in {wait} s{}.",
                if accounts == Accounts::Students {
                    ", or ask your instructor for new credentials"
                } else {
                    ""
                }
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    // (what the session opens, the password hash that opens it)
    let candidates: Vec<(String, String)> = match accounts {
        Accounts::Students => st.ctrl.store.enrollments(&id).await?,
        Accounts::Staff => st
            .ctrl
            .store
            .staff(&id)
            .await?
            .map(|r| vec![(r.role, r.password_hash)])
            .unwrap_or_default(),
    };
    let password = f.password.clone();
    // Argon2 is slow on purpose: off the async workers, a few at a time.
    let _slot = st
        .panel
        .hashing
        .acquire()
        .await
        .map_err(PanelError::internal)?;
    let matched = tokio::task::spawn_blocking(move || {
        if candidates.is_empty() {
            // The same work for an unknown id as for a wrong password.
            let _ = applab_controller::credentials::verify(&password, dummy_hash());
            return Vec::new();
        }
        candidates
            .into_iter()
            .filter(|(_, hash)| applab_controller::credentials::verify(&password, hash))
            .map(|(what, _)| what)
            .collect::<Vec<String>>()
    })
    .await
    .map_err(PanelError::internal)?;
    drop(_slot);
    if matched.is_empty() {
        st.panel.limiter.failed(&account_key, addr);
        tracing::info!(id, ?addr, "login failed");
        return login_page(
            &st.panel,
            accounts,
            next,
            id,
            Some(match accounts {
                Accounts::Students => "Wrong student id or password.".into(),
                Accounts::Staff => "Wrong account name or password.".into(),
            }),
            StatusCode::UNAUTHORIZED,
        );
    }
    st.panel.limiter.succeeded(&account_key);
    let session_id = random_token();
    let now = now_f();
    let (role, run, runs) = match accounts {
        Accounts::Students => {
            let run = (matched.len() == 1).then(|| matched[0].clone());
            (Role::Student, run, matched)
        }
        Accounts::Staff => (
            Role::parse(&matched[0]).unwrap_or(Role::Assistant),
            None,
            Vec::new(),
        ),
    };
    let row = SessionRow {
        id_hash: sha256_hex(&session_id),
        role: role.as_str().into(),
        subject: id.clone(),
        run: run.clone(),
        runs: serde_json::to_string(&runs).unwrap_or_else(|_| "[]".into()),
        csrf: random_token(),
        created_at: now,
        expires_at: now + IDLE.as_secs_f64(),
        last_seen: now,
    };
    st.ctrl.store.create_session(&row).await?;
    tracing::info!(id, role = role.as_str(), runs = runs.len(), "logged in");
    let to = if role == Role::Student && run.is_none() {
        "/runs".into()
    } else {
        next
    };
    let mut resp = Redirect::to(&to).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session_id,
            MAX_AGE.as_secs(),
            st.panel.secure,
        )
        .parse()
        .expect("cookie"),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", 0, st.panel.secure)
            .parse()
            .expect("cookie"),
    );
    Ok(resp)
}

/// The hash of a random password nobody knows, with the same parameters as
/// the students', so an unknown id costs the same time as a known one.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| applab_controller::credentials::hash(&random_token()).unwrap_or_default())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(st): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PanelError> {
    check_csrf(&session, csrf_from(&headers, f.csrf.as_deref()).as_deref())?;
    st.ctrl.store.end_session(&session.key).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, st.panel.secure)
            .parse()
            .expect("cookie"),
    );
    Ok(resp)
}

#[derive(askama::Template)]
#[template(path = "runs.html")]
struct RunsPage {
    c: super::Chrome,
    runs: Vec<(String, String, bool)>,
}

/// A student enrolled in several runs picks one.
pub async fn runs_form(
    State(st): State<AppState>,
    session: Session,
) -> Result<Response, PanelError> {
    let mut runs = Vec::new();
    for r in &session.runs {
        if let Some(row) = st.ctrl.store.run(r).await? {
            let title = st
                .ctrl
                .lab(&row)
                .map(|l| l.title.clone())
                .unwrap_or(row.lab_name);
            runs.push((r.clone(), title, session.run.as_deref() == Some(r)));
        }
    }
    let mut c = super::Chrome::anonymous("Pick a run");
    c.csrf = session.csrf.clone();
    c.who = Some(session.subject.clone());
    render(&RunsPage { c, runs })
}

#[derive(Deserialize)]
pub struct RunForm {
    run: String,
    csrf: Option<String>,
}

pub async fn pick_run(
    State(st): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<RunForm>,
) -> Result<Response, PanelError> {
    check_csrf(&session, csrf_from(&headers, f.csrf.as_deref()).as_deref())?;
    if !session.runs.contains(&f.run) {
        return Err(PanelError::new(
            StatusCode::FORBIDDEN,
            "You are not enrolled in that run.",
        ));
    }
    st.ctrl.store.set_session_run(&session.key, &f.run).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_one() {
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(!applab_controller::credentials::verify("x", dummy_hash()));
    }

    #[test]
    fn only_local_paths_are_followed() {
        let h = "/dashboard";
        assert_eq!(safe_next(Some("/tasks/a"), h), "/tasks/a");
        assert_eq!(safe_next(Some("//evil.example/"), h), "/dashboard");
        assert_eq!(safe_next(Some("https://evil.example/"), h), "/dashboard");
        assert_eq!(safe_next(Some("/\\evil"), h), "/dashboard");
        assert_eq!(safe_next(None, "/staff/runs"), "/staff/runs");
    }

    #[test]
    fn the_limiter_counts_per_account_and_per_address() {
        let l = Limiter::new(Duration::from_secs(60), 3, 5);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.blocked("s1", Some(a)).is_none());
            l.failed("s1", Some(a));
        }
        assert!(l.blocked("s1", Some(a)).is_some(), "the account is locked");
        assert!(l.blocked("s2", Some(a)).is_none(), "another account is not");
        l.failed("s2", Some(a));
        l.failed("s3", Some(a));
        assert!(l.blocked("s4", Some(a)).is_some(), "the address is locked");
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.blocked("s4", Some(b)).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; applab_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
