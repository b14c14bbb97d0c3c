//! The run overview: where a class is stuck, at a glance. Traffic over time
//! per protocol, errors per student and task (each error counted against
//! the first task the student had not passed when it happened), and for
//! labs with a shaped access link, its utilization and the cache hit rate.

use super::auth::{Action, Staff};
use super::staff::run_and_lab;
use super::{render, Chrome, PanelError};
use crate::pictures::plots;
use crate::AppState;
use applab_checks::Status;
use applab_proto::event::{EventKind, NodeEvent};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};

/// Time buckets of the traffic chart.
const BUCKETS: usize = 40;
/// Events read per student (of the 20,000 the capture keeps): bounds the
/// page for a class of 300.
const EVENTS_PER_STUDENT: usize = 5_000;

/// What the plots are drawn from, gathered once per request.
struct Data {
    students: Vec<String>,
    tasks: Vec<String>,
    /// (label per bucket, series per protocol)
    traffic: (Vec<String>, Vec<plots::Series>),
    /// student × task error counts, and the kinds seen in all
    errors: Vec<Vec<u64>>,
    kinds: BTreeMap<String, u64>,
    /// Per student: the access link's utilization, and the hit rate.
    utilization: Vec<Option<f64>>,
    hit_rate: Vec<Option<f64>>,
    caching: bool,
}

fn events_of(st: &AppState, run: &str, student: &str) -> Vec<NodeEvent> {
    let q = applab_controller::captures::Query {
        network: None,
        node: None,
        protocol: None,
        since: None,
        until: None,
        flow: None,
        offset: 0,
        limit: EVENTS_PER_STUDENT,
    };
    st.ctrl.captures.events(run, student, &q).1
}

/// A `X-Cache: HIT`/`MISS` answer: the proxy's word on one request.
fn cache_verdict(e: &EventKind) -> Option<bool> {
    match e {
        EventKind::HttpResponse { headers, .. } => headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-cache"))
            .map(|(_, v)| v.to_ascii_uppercase().starts_with("HIT")),
        _ => None,
    }
}

async fn gather(st: &AppState, run: &str) -> Result<Data, PanelError> {
    let (_, lab) = run_and_lab(st, run).await?;
    let students: Vec<String> = st
        .ctrl
        .store
        .students(run)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let links = st.ctrl.link_status(run);
    // The lab's rate-limited links are its access links.
    let rated: Vec<(String, String)> = applab_controller::links::wanted(&lab, &[])
        .into_iter()
        .filter(|(_, _, s)| s.rate_bps.is_some())
        .map(|(n, w, _)| (n, w))
        .collect();
    // Every stored verdict's first pass, read once for the class.
    let stored = st.ctrl.store.results(run, None).await?;
    let mut first_passed: HashMap<&str, HashMap<(&str, &str), f64>> = HashMap::new();
    for r in &stored {
        if let Some(at) = r.first_passed_at {
            first_passed
                .entry(r.student.as_str())
                .or_default()
                .insert((r.task.as_str(), r.check_id.as_str()), at);
        }
    }
    let mut per_student = Vec::new();
    let (mut t0, mut t1) = (f64::MAX, f64::MIN);
    for sid in &students {
        let evs = events_of(st, run, sid);
        for e in &evs {
            t0 = t0.min(e.event.time);
            t1 = t1.max(e.event.time);
        }
        // When each task first passed: a task passes when its last check does.
        let mine = first_passed.get(sid.as_str());
        let passed_at: Vec<Option<f64>> = lab
            .tasks
            .iter()
            .map(|t| {
                t.checks
                    .iter()
                    .map(|c| {
                        mine.and_then(|m| m.get(&(t.id.as_str(), c.id.as_str())))
                            .copied()
                    })
                    .try_fold(0.0, |at: f64, c| c.map(|c| at.max(c)))
                    .filter(|_| !t.checks.is_empty())
            })
            .collect();
        per_student.push((evs, passed_at));
    }
    let span = (t1 - t0).max(1.0);
    let width = span / BUCKETS as f64;
    let mut series: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut kinds = BTreeMap::new();
    let mut hit_rate = Vec::new();
    let mut utilization = Vec::new();
    let mut any_cache = false;
    for (sid, (evs, passed_at)) in students.iter().zip(&per_student) {
        let mut row = vec![0u64; lab.tasks.len()];
        let (mut hits, mut looks) = (0u64, 0u64);
        for e in evs {
            let p = e.event.kind.protocol();
            if p != "tcp" {
                let b = (((e.event.time - t0) / width) as usize).min(BUCKETS - 1);
                series.entry(p).or_insert_with(|| vec![0.0; BUCKETS])[b] += 1.0;
            }
            if let Some(kind) = e.event.kind.error() {
                *kinds.entry(kind).or_insert(0) += 1;
                let task = passed_at
                    .iter()
                    .position(|at| at.is_none_or(|at| at > e.event.time))
                    .unwrap_or(lab.tasks.len().saturating_sub(1));
                if let Some(c) = row.get_mut(task) {
                    *c += 1;
                }
            }
            if let Some(hit) = cache_verdict(&e.event.kind) {
                looks += 1;
                hits += u64::from(hit);
            }
        }
        any_cache |= looks > 0;
        hit_rate.push((looks > 0).then(|| hits as f64 / looks as f64));
        utilization.push(
            links
                .iter()
                .filter(|l| {
                    l.student == *sid && rated.iter().any(|(n, w)| *n == l.node && *w == l.network)
                })
                .filter_map(|l| l.utilization)
                .reduce(f64::max),
        );
        errors.push(row);
    }
    let labels: Vec<String> = if t0 == f64::MAX {
        Vec::new()
    } else {
        (0..BUCKETS)
            .map(|i| {
                let t = (t0 + width * i as f64).floor();
                // A lab hour needs seconds; a day does not.
                let hms = super::packets::clock(t);
                hms[..if span < 3600.0 { 8 } else { 5 }].to_string()
            })
            .collect()
    };
    Ok(Data {
        tasks: lab.tasks.iter().map(|t| t.title.clone()).collect(),
        caching: !rated.is_empty() || any_cache,
        students,
        traffic: (
            labels,
            series
                .into_iter()
                .map(|(name, values)| plots::Series {
                    name: name.into(),
                    values,
                })
                .collect(),
        ),
        errors,
        kinds,
        utilization,
        hit_rate,
    })
}

fn traffic_svg(d: &Data) -> String {
    plots::lines(
        "The class's protocol messages over time, per protocol",
        "time (UTC)",
        "messages",
        &d.traffic.0,
        &d.traffic.1,
    )
}

fn errors_svg(d: &Data) -> String {
    plots::heat(
        "Errors per student and task",
        &d.students,
        &d.tasks,
        &d.errors,
    )
}

fn caching_svg(d: &Data) -> String {
    plots::paired_bars(
        "Access link utilization and cache hit rate per student",
        &d.students,
        ("access link utilization (last seconds)", &d.utilization),
        ("cache hit rate (X-Cache: HIT)", &d.hit_rate),
    )
}

#[derive(askama::Template)]
#[template(path = "staff_overview.html")]
struct OverviewPage {
    c: Chrome,
    base: String,
    traffic: String,
    errors: String,
    caching_svg: String,
    caching: bool,
    kinds: Vec<(String, u64)>,
    stuck: Vec<(String, usize)>,
    students: usize,
}

pub async fn page(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    let (_, lab) = run_and_lab(&st, &run).await?;
    let d = gather(&st, &run).await?;
    // Where each student is: their first task not passed.
    let m = st.ctrl.matrix(&run).await?;
    let mut stuck: Vec<(String, usize)> = m
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.title.clone(),
                m.students
                    .iter()
                    .filter(|r| r.cells.iter().position(|c| *c != Status::Pass) == Some(i))
                    .count(),
            )
        })
        .collect();
    stuck.push((
        "every task passed".into(),
        m.students
            .iter()
            .filter(|r| r.cells.iter().all(|c| *c == Status::Pass))
            .count(),
    ));
    render(&OverviewPage {
        c: Chrome::staff(
            &s,
            format!("Overview · {run}"),
            Some((&run, &lab.title)),
            "overview",
        ),
        base: format!("/staff/runs/{run}/overview"),
        traffic: traffic_svg(&d),
        errors: errors_svg(&d),
        caching_svg: caching_svg(&d),
        caching: d.caching,
        kinds: d.kinds.into_iter().collect(),
        students: d.students.len(),
        stuck,
    })
}

/// One plot alone: traffic.svg, errors.svg or caching.svg.
pub async fn svg(
    State(st): State<AppState>,
    s: Staff,
    Path((run, name)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    let d = gather(&st, &run).await?;
    let body = match name.as_str() {
        "traffic.svg" => traffic_svg(&d),
        "errors.svg" => errors_svg(&d),
        "caching.svg" => caching_svg(&d),
        _ => {
            return Err(PanelError::not_found(
                "traffic.svg, errors.svg or caching.svg",
            ))
        }
    };
    // Alone, the picture takes the panel's colours from its stylesheet.
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<?xml-stylesheet href=\"/static/panel.css\" type=\"text/css\"?>\n{body}"
    );
    Ok((
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        body,
    )
        .into_response())
}
