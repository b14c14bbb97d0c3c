//! One student, as staff see them: state, answers, check history and the
//! actions (reset, stop/start a node, a link's shaping, new credentials).
//! Their own pages are under `.../view/`, read-only (see
//! [`super::staff_view`]).

use super::auth::{Action, Staff};
use super::pages::{points, shaping_text, status_label};
use super::staff::{run_and_lab, run_or_404};
use super::{render, Chrome, PanelError};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

struct NodeLine {
    name: String,
    role: String,
    class: &'static str,
    label: String,
    running: bool,
}

struct LinkLine {
    node: String,
    network: String,
    shaping: String,
}

struct TaskLine {
    id: String,
    title: String,
    class: &'static str,
    label: &'static str,
}

struct AnswerLine {
    task: String,
    question: String,
    value: String,
    at: String,
}

struct HistoryLine {
    at: String,
    task: String,
    check: String,
    class: &'static str,
    label: &'static str,
    seen: String,
}

#[derive(askama::Template)]
#[template(path = "staff_student.html")]
struct StudentPage {
    c: Chrome,
    id: String,
    name: String,
    email: String,
    phase: String,
    points: String,
    max: String,
    view: String,
    me: String,
    nodes: Vec<NodeLine>,
    links: Vec<LinkLine>,
    attachments: Vec<(String, String)>,
    tasks: Vec<TaskLine>,
    answers: Vec<AnswerLine>,
    history: Vec<HistoryLine>,
    history_total: usize,
    may_reset: bool,
    may_nodes: bool,
    may_shape: bool,
    may_reissue: bool,
    notice: Option<String>,
}

/// Hours, minutes and seconds (UTC) of a stored time.
fn clock(t: f64) -> String {
    super::packets::clock(t.floor())[..8].to_string()
}

#[derive(Deserialize, Default)]
pub struct Notice {
    done: Option<String>,
}

pub async fn page(
    State(st): State<AppState>,
    s: Staff,
    Path((run, id)): Path<(String, String)>,
    axum::extract::Query(n): axum::extract::Query<Notice>,
) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    let (_, lab) = run_and_lab(&st, &run).await?;
    let student = st
        .ctrl
        .store
        .student(&run, &id)
        .await?
        .ok_or_else(|| PanelError::not_found(format!("Run {run} has no student {id:?}.")))?;
    let results = st.ctrl.results(&run, &id).await?;
    let topo = st.ctrl.student_topology(&run, &id).await?;
    let nodes = topo
        .nodes
        .iter()
        .map(|n| {
            let pic = crate::pictures::topology::Node {
                name: n.name.clone(),
                role: n.role.clone(),
                state: n.state,
                healthy: n.healthy,
                stopped_on_purpose: n.stopped_on_purpose,
                attach: Vec::new(),
            };
            let (class, label) = crate::pictures::topology::state_label(&pic);
            NodeLine {
                name: n.name.clone(),
                role: n.role.clone(),
                class,
                label,
                running: !n.stopped_on_purpose,
            }
        })
        .collect();
    let links = topo
        .links
        .iter()
        .map(|l| LinkLine {
            node: l.node.clone(),
            network: l.network.clone(),
            shaping: {
                let t = shaping_text(l.delay_us, l.rate_bps, l.loss);
                if t.is_empty() {
                    "none".into()
                } else {
                    t
                }
            },
        })
        .collect();
    let attachments = lab
        .nodes
        .iter()
        .flat_map(|n| n.attach.iter().map(|a| (n.name.clone(), a.network.clone())))
        .collect();
    let answers = st
        .ctrl
        .store
        .submissions(&run, &id)
        .await?
        .into_iter()
        .rev()
        .map(|a| AnswerLine {
            task: a.task,
            question: a.question,
            value: a.value,
            at: clock(a.at),
        })
        .collect();
    let all = st.ctrl.store.history(&run, &id).await?;
    let history_total = all.len();
    let history = all
        .into_iter()
        .rev()
        .take(200)
        .map(|h| {
            let (class, label) = status_label(
                applab_checks::Status::parse(&h.status).unwrap_or(applab_checks::Status::Error),
            );
            HistoryLine {
                at: clock(h.at),
                task: h.task,
                check: h.check_id,
                class,
                label,
                seen: crate::pictures::clip(&h.seen, 200),
            }
        })
        .collect();
    let me = format!("/staff/runs/{run}/students/{id}");
    render(&StudentPage {
        c: Chrome::staff(
            &s,
            format!("{id} · {run}"),
            Some((&run, &lab.title)),
            "grid",
        ),
        view: format!("{me}/view"),
        me,
        phase: st
            .ctrl
            .phases(&run)
            .get(&id)
            .map(|p| p.to_string())
            .unwrap_or_else(|| applab_controller::Phase::Queued.to_string()),
        points: points(results.points),
        max: points(results.max_points),
        tasks: results
            .tasks
            .iter()
            .map(|t| {
                let (class, label) = status_label(t.status);
                TaskLine {
                    id: t.task.clone(),
                    title: t.title.clone(),
                    class,
                    label,
                }
            })
            .collect(),
        id,
        name: student.name,
        email: student.email,
        nodes,
        links,
        attachments,
        answers,
        history,
        history_total,
        may_reset: s.role.may(Action::Reset),
        may_nodes: s.role.may(Action::NodeControl),
        may_shape: s.role.may(Action::Shape),
        may_reissue: s.role.may(Action::Reissue),
        notice: n.done,
    })
}

fn back(run: &str, id: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/staff/runs/{run}/students/{id}?done={}",
        super::auth::url_escape(done)
    ))
    .into_response()
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// New containers and empty state for the student (their results stay).
pub async fn reset(
    State(st): State<AppState>,
    s: Staff,
    Path((run, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PanelError> {
    s.act(Action::Reset, &headers, f.csrf.as_deref())?;
    run_or_404(&st, &run).await?;
    st.ctrl.reset(&run, &id).await?;
    tracing::info!(
        run,
        student = id,
        by = s.session.subject,
        "reset from the panel"
    );
    Ok(back(&run, &id, "The topology was recreated."))
}

#[derive(Deserialize)]
pub struct NodeForm {
    csrf: Option<String>,
    node: String,
    action: String,
}

pub async fn node(
    State(st): State<AppState>,
    s: Staff,
    Path((run, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<NodeForm>,
) -> Result<Response, PanelError> {
    s.act(Action::NodeControl, &headers, f.csrf.as_deref())?;
    run_or_404(&st, &run).await?;
    let running = super::pages::running_of(&f.action)?;
    st.ctrl
        .set_node_running(&run, &id, &f.node, running)
        .await?;
    Ok(back(
        &run,
        &id,
        &format!(
            "{} {}.",
            f.node,
            if running { "started" } else { "stopped" }
        ),
    ))
}

#[derive(Deserialize)]
pub struct ShapeForm {
    csrf: Option<String>,
    /// "node/network"
    link: String,
    delay_ms: String,
    rate_kbit: String,
    loss_pct: String,
}

/// A number from a form field: empty is "unchanged".
fn number(field: &str, v: &str, max: f64) -> Result<Option<f64>, PanelError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(Some(x)),
        _ => Err(PanelError::new(
            StatusCode::BAD_REQUEST,
            format!("{field}: {v:?} is not a number from 0 to {max}"),
        )),
    }
}

/// A link's delay, rate and loss for this student (as `applab shape`).
pub async fn shape(
    State(st): State<AppState>,
    s: Staff,
    Path((run, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<ShapeForm>,
) -> Result<Response, PanelError> {
    s.act(Action::Shape, &headers, f.csrf.as_deref())?;
    run_or_404(&st, &run).await?;
    let (node, network) = f
        .link
        .split_once('/')
        .ok_or_else(|| PanelError::new(StatusCode::BAD_REQUEST, "link must be node/network"))?;
    let delay = number("delay (ms)", &f.delay_ms, 10_000.0)?;
    let rate = number("rate (kbit/s)", &f.rate_kbit, 10_000_000.0)?;
    let loss = number("loss (%)", &f.loss_pct, 100.0)?;
    let change = applab_controller::store::LinkOverride {
        node: node.into(),
        network: network.into(),
        delay_us: delay.map(|d| (d * 1000.0).round() as i64),
        rate_bps: rate.map(|r| (r * 1000.0).round() as i64),
        loss: loss.map(|l| l / 100.0),
    };
    st.ctrl.set_link(&run, Some(&id), &change).await?;
    tracing::info!(
        run,
        student = id,
        node,
        network,
        by = s.session.subject,
        "link shaped from the panel"
    );
    Ok(back(
        &run,
        &id,
        &format!("The link {node}/{network} was changed."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_numbers_are_bounded() {
        assert_eq!(number("x", "", 10.0).unwrap(), None);
        assert_eq!(number("x", " 2.5 ", 10.0).unwrap(), Some(2.5));
        assert!(number("x", "11", 10.0).is_err());
        assert!(number("x", "-1", 10.0).is_err());
        assert!(number("x", "NaN", 10.0).is_err());
        assert!(number("x", "1e400", 10.0).is_err());
    }

    #[test]
    fn clock_is_hours_minutes_seconds() {
        assert_eq!(clock(1_795_000_000.0), "11:06:40");
    }
}
