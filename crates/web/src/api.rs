//! JSON API handlers: small, one per verb, over one shared state.

use applab_controller::api::*;
use applab_controller::{Controller, RunInfo};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub ctrl: Arc<Controller>,
    pub token: Arc<String>,
    /// The panel's sessions, limits and consoles.
    pub panel: Arc<crate::panel::PanelState>,
}

/// Any failure becomes `{"error": "..."}` with a status.
pub struct ApiError(StatusCode, String);

/// The status is the error's own (`applab_controller::problem`): 404 for
/// an unknown run or student, 409 for a conflict, 503 when the engine fails
/// or does not answer, 500 when the store does, 400 otherwise.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        let status = StatusCode::from_u16(applab_controller::problem::status_of(&e))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/runs", get(runs))
        .route("/api/launch", post(launch))
        .route("/api/status", get(status))
        .route("/api/progress", get(progress))
        .route("/api/reset", post(reset))
        .route("/api/node", post(node))
        .route("/api/shape", post(shape))
        .route("/api/teardown", post(teardown))
        .route("/api/exec", post(exec))
        .route("/api/credentials", post(credentials))
        .route("/api/params", get(params))
        .route("/api/capture/frames", get(capture_frames))
        .route("/api/capture/events", get(capture_events))
        .route("/api/capture/pcap", get(capture_pcap))
        .route("/api/capture/stream", get(capture_stream))
        .route("/api/results", get(results))
        .route("/api/results/matrix", get(results_matrix))
        .route("/api/results/history", get(results_history))
        .route("/api/results/stream", get(results_stream))
        .route("/api/check", post(check))
        .route("/api/answer", post(answer))
        .route("/api/grades", get(grades))
        .route("/api/staff", get(staff_list).post(staff_add))
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/api/health", get(health))
        .merge(api)
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .merge(crate::panel::router().layer(axum::extract::DefaultBodyLimit::max(64 << 10)))
        .layer(middleware::from_fn(crate::panel::security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Constant-time comparison: the token is the instructor's only key.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(given.as_bytes(), st.token.as_bytes()) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong instructor token".into(),
        )
        .into_response();
    }
    next.run(req).await
}

async fn health(State(st): State<AppState>) -> Json<Health> {
    Json(Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_string(),
        panel_url: st.panel.public_url.clone(),
    })
}

async fn runs(State(st): State<AppState>) -> ApiResult<Vec<RunInfo>> {
    let mut out = Vec::new();
    for r in st.ctrl.store.runs().await? {
        let students = st.ctrl.store.students(&r.name).await?.len();
        out.push(RunInfo {
            name: r.name,
            lab: r.lab_name,
            students,
            created_at: r.created_at,
        });
    }
    Ok(Json(out))
}

async fn launch(
    State(st): State<AppState>,
    Json(req): Json<LaunchRequest>,
) -> ApiResult<applab_controller::LaunchResult> {
    let tar = base64::engine::general_purpose::STANDARD
        .decode(req.lab_tar.as_bytes())
        .map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("lab_tar is not base64: {e}"),
            )
        })?;
    Ok(Json(st.ctrl.launch(&req.run, &tar, &req.roster).await?))
}

async fn status(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<applab_controller::RunStatus> {
    let run = st.ctrl.resolve_run(q.run.as_deref()).await?;
    Ok(Json(st.ctrl.status(&run.name).await?))
}

async fn progress(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<applab_controller::api::RunProgress> {
    let run = st.ctrl.resolve_run(q.run.as_deref()).await?;
    Ok(Json(st.ctrl.progress(&run.name).await?))
}

async fn params(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let run = st.ctrl.resolve_run(q.run.as_deref()).await?;
    let student = required(q.student, "student")?;
    Ok(Json(st.ctrl.params(&run.name, &student).await?))
}

async fn reset(State(st): State<AppState>, Json(r): Json<StudentRequest>) -> ApiResult<ResetDone> {
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    st.ctrl.reset(&run.name, &r.student).await?;
    Ok(Json(ResetDone {
        run: run.name,
        student: r.student,
        reset: true,
    }))
}

async fn node(State(st): State<AppState>, Json(r): Json<NodeRequest>) -> ApiResult<NodeDone> {
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    st.ctrl
        .set_node_running(&run.name, &r.student, &r.node, r.running)
        .await?;
    Ok(Json(NodeDone {
        run: run.name,
        student: r.student,
        node: r.node,
        running: r.running,
    }))
}

async fn shape(State(st): State<AppState>, Json(r): Json<ShapeRequest>) -> ApiResult<ShapeDone> {
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    let change = applab_controller::store::LinkOverride {
        node: r.node.clone(),
        network: r.network.clone(),
        delay_us: r.delay_us.map(stored).transpose()?,
        rate_bps: r.rate_bps.map(stored).transpose()?,
        loss: r.loss,
    };
    let students = st
        .ctrl
        .set_link(&run.name, r.student.as_deref(), &change)
        .await?;
    Ok(Json(ShapeDone {
        run: run.name,
        students,
        node: r.node,
        network: r.network,
    }))
}

async fn teardown(
    State(st): State<AppState>,
    Json(r): Json<TeardownRequest>,
) -> ApiResult<TeardownDone> {
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    st.ctrl.teardown(&run.name, r.student.as_deref()).await?;
    Ok(Json(TeardownDone {
        run: run.name,
        student: r.student,
        removed: true,
    }))
}

async fn exec(State(st): State<AppState>, Json(r): Json<ExecRequest>) -> ApiResult<ExecDone> {
    if r.cmd.is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "no command given".into()));
    }
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    let out = st.ctrl.exec(&run.name, &r.student, &r.node, &r.cmd).await?;
    Ok(Json(ExecDone {
        exit_code: out.exit_code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }))
}

async fn credentials(
    State(st): State<AppState>,
    Json(r): Json<CredentialsRequest>,
) -> ApiResult<CredentialsDone> {
    let run = st.ctrl.resolve_run(r.run.as_deref()).await?;
    if r.reissue {
        let creds = st.ctrl.reissue(&run.name, r.student.as_deref()).await?;
        Ok(Json(CredentialsDone {
            run: run.name,
            students: None,
            reissued: Some(creds),
        }))
    } else {
        let info = st
            .ctrl
            .credential_info(&run.name, r.student.as_deref())
            .await?;
        Ok(Json(CredentialsDone {
            run: run.name,
            students: Some(info),
            reissued: None,
        }))
    }
}

/// The run (named, or the only one) and a check that the student is in it.
async fn student_run(
    st: &AppState,
    run: Option<&str>,
    student: &str,
) -> Result<applab_controller::store::RunRow, ApiError> {
    let run = st.ctrl.resolve_run(run).await?;
    if st.ctrl.store.student(&run.name, student).await?.is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no student {student:?} in run {}", run.name),
        ));
    }
    Ok(run)
}

async fn capture_frames(
    State(st): State<AppState>,
    Query(q): Query<CaptureQuery>,
) -> ApiResult<FramePage> {
    let run = student_run(&st, q.run.as_deref(), &q.student).await?;
    st.ctrl.ensure_capture_names(&run.name, &q.student).await?;
    let (total, frames) = st.ctrl.captures.frames(&run.name, &q.student, &q.query());
    let taps = st.ctrl.captures.taps_open(&run.name, &q.student);
    Ok(Json(FramePage {
        run: run.name,
        student: q.student,
        total,
        offset: q.offset,
        taps,
        frames,
    }))
}

async fn capture_events(
    State(st): State<AppState>,
    Query(q): Query<CaptureQuery>,
) -> ApiResult<EventPage> {
    let run = student_run(&st, q.run.as_deref(), &q.student).await?;
    st.ctrl.ensure_capture_names(&run.name, &q.student).await?;
    let (total, events) = st.ctrl.captures.events(&run.name, &q.student, &q.query());
    Ok(Json(EventPage {
        run: run.name,
        student: q.student,
        total,
        offset: q.offset,
        events,
    }))
}

/// One network's frames of a student as a pcap file (all of the ring, or
/// the range `since`..`until`).
async fn capture_pcap(
    State(st): State<AppState>,
    Query(q): Query<CaptureQuery>,
) -> Result<Response, ApiError> {
    let run = student_run(&st, q.run.as_deref(), &q.student).await?;
    let lab = st.ctrl.lab(&run)?;
    let network = match &q.network {
        Some(n) => n.clone(),
        None if lab.networks.len() == 1 => lab.networks[0].name.clone(),
        None => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "network is required: this lab has several".into(),
            ))
        }
    };
    if !lab.networks.iter().any(|n| n.name == network) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no network {network:?} in lab {}", lab.name),
        ));
    }
    let secs = |t: Option<f64>, d: f64| std::time::Duration::from_secs_f64(t.unwrap_or(d).max(0.0));
    // Reading the ring (after its thread flushed it) blocks: keep it off
    // the async workers.
    let name = format!("{}-{}-{}.pcap", run.name, q.student, network);
    let (ctrl, run_name, student) = (st.ctrl.clone(), run.name.clone(), q.student.clone());
    let (from, to) = (secs(q.since, 0.0), secs(q.until, 4e9));
    let pcap = tokio::task::spawn_blocking(move || {
        ctrl.captures.pcap(&run_name, &student, &network, from, to)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the capture: {e}"),
        )
    })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.tcpdump.pcap".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        pcap,
    )
        .into_response())
}

/// A student's protocol events as they are decoded, as server-sent events
/// (one `data:` line of JSON per event). A subscriber that falls behind by
/// more than the channel holds is told how many it missed.
async fn capture_stream(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> Result<Response, ApiError> {
    use axum::response::sse::Event as SseEvent;
    let student = required(q.student, "student")?;
    let run = student_run(&st, q.run.as_deref(), &student).await?;
    st.ctrl.ensure_capture_names(&run.name, &student).await?;
    let rx = st.ctrl.captures.subscribe(&run.name, &student);
    Ok(crate::sse::stream(rx, |e| {
        Some(SseEvent::default().event("event").json_data(&e))
    }))
}

/// A count as the store keeps it (SQLite integers are signed).
fn stored(v: u64) -> Result<i64, ApiError> {
    i64::try_from(v).map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("{v} is too large")))
}

fn required(v: Option<String>, what: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, format!("{what} is required")))
}

/// A student's results, task by task, check by check.
async fn results(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<applab_controller::grading::StudentResults> {
    let student = required(q.student, "student")?;
    let run = student_run(&st, q.run.as_deref(), &student).await?;
    Ok(Json(st.ctrl.results(&run.name, &student).await?))
}

/// The run's class × task matrix.
async fn results_matrix(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<applab_controller::grading::Matrix> {
    let run = st.ctrl.resolve_run(q.run.as_deref()).await?;
    Ok(Json(st.ctrl.matrix(&run.name).await?))
}

/// A student's verdict changes and answers, oldest first.
async fn results_history(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> ApiResult<History> {
    let student = required(q.student, "student")?;
    let run = student_run(&st, q.run.as_deref(), &student).await?;
    let history = st.ctrl.store.history(&run.name, &student).await?;
    let submissions = st.ctrl.store.submissions(&run.name, &student).await?;
    Ok(Json(History {
        run: run.name,
        student,
        history,
        submissions,
    }))
}

/// Result changes as they are stored, as server-sent events: a run's, or
/// one student's.
async fn results_stream(
    State(st): State<AppState>,
    Query(q): Query<RunQuery>,
) -> Result<Response, ApiError> {
    use axum::response::sse::Event as SseEvent;
    let run = match &q.student {
        Some(s) => student_run(&st, q.run.as_deref(), s).await?,
        None => st.ctrl.resolve_run(q.run.as_deref()).await?,
    };
    let (run, student) = (run.name, q.student);
    Ok(crate::sse::stream(
        st.ctrl.grader.subscribe(),
        move |c: applab_controller::grading::Change| {
            (c.run == run && student.as_ref().is_none_or(|s| *s == c.student))
                .then(|| SseEvent::default().event("result").json_data(&c))
        },
    ))
}

/// Evaluate now (probes first), and return the results.
async fn check(
    State(st): State<AppState>,
    Json(r): Json<CheckRequest>,
) -> ApiResult<Vec<applab_controller::grading::StudentResults>> {
    let run = match &r.student {
        Some(s) => student_run(&st, r.run.as_deref(), s).await?,
        None => st.ctrl.resolve_run(r.run.as_deref()).await?,
    };
    Ok(Json(
        st.ctrl
            .check_now(&run.name, r.student.as_deref(), r.recheck)
            .await?,
    ))
}

async fn answer(
    State(st): State<AppState>,
    Json(r): Json<AnswerRequest>,
) -> ApiResult<applab_controller::grading::TaskView> {
    let run = student_run(&st, r.run.as_deref(), &r.student).await?;
    Ok(Json(
        st.ctrl
            .answer(&run.name, &r.student, &r.task, &r.question, &r.value)
            .await?,
    ))
}

async fn grades(
    State(st): State<AppState>,
    Query(q): Query<GradesQuery>,
) -> Result<Response, ApiError> {
    use applab_controller::grades::{render, Format};
    let run = st.ctrl.resolve_run(q.run.as_deref()).await?;
    let f = Format::parse(q.format.as_deref().unwrap_or("csv"))?;
    let m = st.ctrl.matrix(&run.name).await?;
    let body = render(&m, f)?;
    Ok(([(axum::http::header::CONTENT_TYPE, f.content_type())], body).into_response())
}

/// An instructor or assistant account for the panel.
async fn staff_add(
    State(st): State<AppState>,
    Json(r): Json<StaffRequest>,
) -> ApiResult<StaffAdded> {
    let (password, created) = st.ctrl.add_staff(&r.name, &r.role).await?;
    Ok(Json(StaffAdded {
        name: r.name,
        role: r.role,
        password,
        created,
    }))
}

async fn staff_list(State(st): State<AppState>) -> ApiResult<Vec<StaffMember>> {
    let rows = st.ctrl.store.staff_list().await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| StaffMember {
                name: r.name,
                role: r.role,
                created_at: r.created_at,
            })
            .collect(),
    ))
}
