//! The student's pages: dashboard, task (text, checks with their evidence,
//! questions), topology with its node controls.

use super::auth::{check_csrf, csrf_from, Subject};
use super::{markdown, render, Chrome, PanelError};
use crate::pictures::topology;
use crate::AppState;
use applab_checks::Status;
use applab_controller::grading::{StudentResults, TaskView};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A verdict for people: a class for colour and a symbol and word, so
/// colour is never the only signal.
pub fn status_label(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Pass => ("pass", "✓ pass"),
        Status::Fail => ("fail", "✗ fail"),
        Status::Error => ("error", "! error"),
        Status::Pending => ("pending", "… pending"),
    }
}

pub fn points(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

struct TaskRow {
    id: String,
    title: String,
    class: &'static str,
    label: &'static str,
    points: String,
    max: String,
    passed: usize,
    checks: usize,
}

#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    c: Chrome,
    description: String,
    tasks: Vec<TaskRow>,
    points: String,
    max: String,
    next: Option<(String, String)>,
}

fn task_rows(r: &StudentResults) -> Vec<TaskRow> {
    r.tasks
        .iter()
        .map(|t| {
            let (class, label) = status_label(t.status);
            TaskRow {
                id: t.task.clone(),
                title: t.title.clone(),
                class,
                label,
                points: points(t.points),
                max: points(t.max_points),
                passed: t.checks.iter().filter(|c| c.status == Status::Pass).count(),
                checks: t.checks.len(),
            }
        })
        .collect()
}

pub async fn dashboard(State(st): State<AppState>, s: Subject) -> Result<Response, PanelError> {
    let r = st.ctrl.results(&s.run.name, &s.student.id).await?;
    let next = r
        .tasks
        .iter()
        .find(|t| t.status != Status::Pass)
        .map(|t| (t.task.clone(), t.title.clone()));
    render(&Dashboard {
        c: Chrome::of(&s, s.lab.title.clone(), "dashboard"),
        description: s.lab.description.clone(),
        tasks: task_rows(&r),
        points: points(r.points),
        max: points(r.max_points),
        next,
    })
}

/// A link from a verdict to what decided it.
struct EvidenceLink {
    text: String,
    ladder: Option<String>,
    frame: Option<String>,
}

struct CheckRow {
    id: String,
    class: &'static str,
    label: &'static str,
    expected: String,
    seen: String,
    evidence: Vec<EvidenceLink>,
}

struct QuestionRow {
    id: String,
    html: String,
    unit: String,
    last: Option<String>,
    tries: usize,
}

#[derive(askama::Template)]
#[template(path = "task.html")]
struct TaskPage {
    c: Chrome,
    id: String,
    html: String,
    class: &'static str,
    label: &'static str,
    points: String,
    max: String,
    checks: Vec<CheckRow>,
    questions: Vec<QuestionRow>,
    prev: Option<String>,
    next: Option<String>,
}

fn fill(text: &str, params: &BTreeMap<String, String>) -> String {
    // Validation made sure every placeholder is known; if one is not, the
    // text is shown as written rather than not at all.
    applab_lab::template::render(text, params).unwrap_or_else(|_| text.to_string())
}

pub async fn task(
    State(st): State<AppState>,
    s: Subject,
    Path(task): Path<String>,
) -> Result<Response, PanelError> {
    let Some(pos) = s.lab.tasks.iter().position(|t| t.id == task) else {
        return Err(PanelError::not_found(format!(
            "This lab has no task {task:?}."
        )));
    };
    let t = &s.lab.tasks[pos];
    let params = st.ctrl.params(&s.run.name, &s.student.id).await?;
    let r = st.ctrl.results(&s.run.name, &s.student.id).await?;
    let view: Option<&TaskView> = r.tasks.iter().find(|v| v.task == task);
    let submissions = st
        .ctrl
        .store
        .submissions(&s.run.name, &s.student.id)
        .await?;
    let base = s.base.clone();
    let checks = view
        .map(|v| {
            v.checks
                .iter()
                .map(|c| {
                    let (class, label) = status_label(c.status);
                    CheckRow {
                        id: c.check.clone(),
                        class,
                        label,
                        expected: c.expected.clone(),
                        seen: c.seen.clone(),
                        evidence: c
                            .evidence
                            .iter()
                            .take(10)
                            .map(|e| EvidenceLink {
                                text: super::super::pictures::clip(&e.text, 160),
                                ladder: match (&e.network, e.flow) {
                                    (Some(n), Some(f)) => Some(format!(
                                        "{base}/packets/ladder/{}/{f}{}",
                                        super::auth::url_escape(n),
                                        e.event.map(|id| format!("#ev-{id}")).unwrap_or_default()
                                    )),
                                    _ => None,
                                },
                                frame: match (&e.network, e.frame) {
                                    (Some(n), Some(fr)) => Some(format!(
                                        "{base}/packets/frames/{}/{fr}",
                                        super::auth::url_escape(n)
                                    )),
                                    _ => None,
                                },
                            })
                            .collect(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let questions = t
        .questions
        .iter()
        .map(|q| {
            let mine: Vec<_> = submissions
                .iter()
                .filter(|x| x.task == task && x.question == q.id)
                .collect();
            QuestionRow {
                id: q.id.clone(),
                html: markdown::to_html(&fill(&q.text, &params)),
                unit: q.unit.clone().unwrap_or_default(),
                last: mine.last().map(|x| x.value.clone()),
                tries: mine.len(),
            }
        })
        .collect();
    let (class, label) = status_label(view.map(|v| v.status).unwrap_or(Status::Pending));
    render(&TaskPage {
        c: Chrome::of(&s, t.title.clone(), "tasks"),
        id: t.id.clone(),
        html: markdown::to_html(&fill(&t.text, &params)),
        class,
        label,
        points: points(view.map(|v| v.points).unwrap_or(0.0)),
        max: points(t.points),
        checks,
        questions,
        prev: pos.checked_sub(1).map(|i| s.lab.tasks[i].id.clone()),
        next: s.lab.tasks.get(pos + 1).map(|t| t.id.clone()),
    })
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// "Check now": probes and evaluation at once, then back to the task.
pub async fn check_now(
    State(st): State<AppState>,
    s: Subject,
    Path(task): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PanelError> {
    check_csrf(
        &s.session,
        csrf_from(&headers, f.csrf.as_deref()).as_deref(),
    )?;
    if !s.lab.tasks.iter().any(|t| t.id == task) {
        return Err(PanelError::not_found(format!(
            "This lab has no task {task:?}."
        )));
    }
    st.ctrl
        .check_now(&s.run.name, Some(&s.student.id), false)
        .await?;
    Ok(Redirect::to(&format!("{}/tasks/{task}#checks", s.base)).into_response())
}

#[derive(Deserialize)]
pub struct AnswerForm {
    csrf: Option<String>,
    question: String,
    value: String,
}

pub async fn answer(
    State(st): State<AppState>,
    s: Subject,
    Path(task): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AnswerForm>,
) -> Result<Response, PanelError> {
    check_csrf(
        &s.session,
        csrf_from(&headers, f.csrf.as_deref()).as_deref(),
    )?;
    st.ctrl
        .answer(
            &s.run.name,
            &s.student.id,
            &task,
            &f.question,
            f.value.trim(),
        )
        .await?;
    Ok(Redirect::to(&format!("{}/tasks/{task}#q-{}", s.base, f.question)).into_response())
}

/// The student's own result changes as server-sent events (the pages
/// update their verdicts without a reload).
pub async fn results_stream(State(st): State<AppState>, s: Subject) -> Response {
    use axum::response::sse::Event as SseEvent;
    let (run, student) = (s.run.name, s.student.id);
    crate::sse::stream(
        st.ctrl.grader.subscribe(),
        move |c: applab_controller::grading::Change| {
            (c.run == run && c.student == student).then(|| {
                let (class, label) = status_label(c.status);
                SseEvent::default()
                    .event("result")
                    .json_data(serde_json::json!({
                        "task": c.task, "check": c.check, "status": class,
                        "label": label, "seen": c.seen,
                    }))
            })
        },
    )
}

struct NodeRow {
    name: String,
    role: String,
    class: &'static str,
    label: String,
    addresses: String,
    control: Option<(&'static str, &'static str)>,
}

struct LinkRow {
    node: String,
    network: String,
    shaping: String,
    measured: String,
}

#[derive(askama::Template)]
#[template(path = "topology.html")]
struct TopologyPage {
    c: Chrome,
    svg: String,
    nodes: Vec<NodeRow>,
    links: Vec<LinkRow>,
    mechanism: String,
}

pub fn shaping_text(delay_us: u64, rate_bps: Option<u64>, loss: f64) -> String {
    let mut parts = Vec::new();
    if delay_us > 0 {
        parts.push(format!("delay {} ms", points(delay_us as f64 / 1000.0)));
    }
    if let Some(r) = rate_bps {
        parts.push(if r >= 1_000_000 {
            format!("{} Mbit/s", points(r as f64 / 1e6))
        } else {
            format!("{} kbit/s", points(r as f64 / 1e3))
        });
    }
    if loss > 0.0 {
        parts.push(format!("loss {} %", points(loss * 100.0)));
    }
    parts.join(" · ")
}

async fn topology_of(
    st: &AppState,
    s: &Subject,
) -> Result<(String, Vec<NodeRow>, Vec<LinkRow>, String), PanelError> {
    let t = st.ctrl.student_topology(&s.run.name, &s.student.id).await?;
    let subnets = st
        .ctrl
        .store
        .subnets_of(&s.run.name, &s.student.id)
        .await
        .unwrap_or_default();
    let nets: Vec<topology::Net> = s
        .lab
        .networks
        .iter()
        .map(|n| topology::Net {
            name: n.name.clone(),
            subnet: subnets.get(&n.name).cloned(),
        })
        .collect();
    let params = st.ctrl.params(&s.run.name, &s.student.id).await?;
    // The engine names a student's networks; the student knows the lab's names.
    let engine_net = |n: &str| applab_controller::plan::object_name(&s.run.name, &s.student.id, n);
    let mut pics = Vec::new();
    let mut rows = Vec::new();
    for ln in &s.lab.nodes {
        let Some(ns) = t.nodes.iter().find(|n| n.name == ln.name) else {
            continue;
        };
        let attach = ln
            .attach
            .iter()
            .map(|a| {
                let l = t
                    .links
                    .iter()
                    .find(|l| l.node == ln.name && l.network == a.network);
                topology::Attach {
                    network: a.network.clone(),
                    address: ns.addresses.get(&engine_net(&a.network)).cloned(),
                    aliases: a.aliases.iter().map(|x| fill(x, &params)).collect(),
                    shaping: l
                        .map(|l| shaping_text(l.delay_us, l.rate_bps, l.loss))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let pic = topology::Node {
            name: ns.name.clone(),
            role: ns.role.clone(),
            state: ns.state,
            healthy: ns.healthy,
            stopped_on_purpose: ns.stopped_on_purpose,
            attach,
        };
        let (class, label) = topology::state_label(&pic);
        let control = ln.student_controls.then_some({
            if ns.stopped_on_purpose {
                ("start", "Start")
            } else {
                ("stop", "Stop")
            }
        });
        rows.push(NodeRow {
            name: ns.name.clone(),
            role: ns.role.clone(),
            class,
            label,
            addresses: ln
                .attach
                .iter()
                .filter_map(|a| {
                    ns.addresses
                        .get(&engine_net(&a.network))
                        .map(|ip| format!("{ip} on {}", a.network))
                })
                .collect::<Vec<_>>()
                .join(", "),
            control,
        });
        pics.push(pic);
    }
    let links = t
        .links
        .iter()
        .filter(|l| l.delay_us > 0 || l.rate_bps.is_some() || l.loss > 0.0)
        .map(|l| LinkRow {
            node: l.node.clone(),
            network: l.network.clone(),
            shaping: shaping_text(l.delay_us, l.rate_bps, l.loss),
            measured: l
                .measured
                .as_ref()
                .map(|m| {
                    format!(
                        "{:.0} kbit/s to the node, {:.0} kbit/s from it{}",
                        m.to_node_bps / 1e3,
                        m.from_node_bps / 1e3,
                        m.utilization
                            .map(|u| format!(", {:.0} % used", u * 100.0))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "not measured".into()),
        })
        .collect();
    Ok((topology::svg(&nets, &pics), rows, links, t.shaping))
}

pub async fn topology(State(st): State<AppState>, s: Subject) -> Result<Response, PanelError> {
    let (svg, nodes, links, mechanism) = topology_of(&st, &s).await?;
    render(&TopologyPage {
        c: Chrome::of(&s, "Topology", "topology"),
        svg,
        nodes,
        links,
        mechanism,
    })
}

pub async fn topology_svg(State(st): State<AppState>, s: Subject) -> Result<Response, PanelError> {
    let (svg, ..) = topology_of(&st, &s).await?;
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        svg,
    )
        .into_response())
}

/// A node form's action: "start" (true) or "stop" (false).
pub fn running_of(action: &str) -> Result<bool, PanelError> {
    match action {
        "start" => Ok(true),
        "stop" => Ok(false),
        other => Err(PanelError::new(
            StatusCode::BAD_REQUEST,
            format!("action must be start or stop, not {other:?}"),
        )),
    }
}

#[derive(Deserialize)]
pub struct NodeForm {
    csrf: Option<String>,
    action: String,
}

/// Stop or start a node the lab lets students control.
pub async fn node_control(
    State(st): State<AppState>,
    s: Subject,
    Path(node): Path<String>,
    headers: HeaderMap,
    Form(f): Form<NodeForm>,
) -> Result<Response, PanelError> {
    check_csrf(
        &s.session,
        csrf_from(&headers, f.csrf.as_deref()).as_deref(),
    )?;
    let running = running_of(&f.action)?;
    match s.lab.node(&node) {
        None => {
            return Err(PanelError::not_found(format!(
                "This lab has no node {node:?}."
            )))
        }
        Some(n) if !n.student_controls => {
            return Err(PanelError::forbidden(format!(
                "This lab does not let students stop or start {node}."
            )))
        }
        Some(_) => {}
    }
    st.ctrl
        .set_node_running(&s.run.name, &s.student.id, &node, running)
        .await?;
    Ok(Redirect::to(&format!("{}/topology", s.base)).into_response())
}
