//! The class grid: one row per student, one column per task, each cell the
//! task's verdict (a colour and a symbol), live over SSE.
//!
//! Sorting and filtering are query parameters, so the page works without
//! JavaScript; with it, cells change as results are stored.

use super::auth::{Action, Staff};
use super::pages::{points, status_label};
use super::staff::{progress_line, run_and_lab, run_or_404};
use super::{render, Chrome, PanelError};
use crate::AppState;
use applab_checks::Status;
use applab_controller::Phase;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

/// The symbol a cell shows (the word is in its title and for screen readers).
pub fn symbol(s: Status) -> &'static str {
    match s {
        Status::Pass => "✓",
        Status::Fail => "✗",
        Status::Error => "!",
        Status::Pending => "…",
    }
}

struct Column {
    id: String,
    title: String,
    points: String,
    passed: usize,
}

struct Cell {
    task: String,
    class: &'static str,
    symbol: &'static str,
    word: &'static str,
}

struct Row {
    id: String,
    name: String,
    passed: usize,
    /// The topology converged: no phase shown.
    ready: bool,
    phase: String,
    cells: Vec<Cell>,
}

#[derive(askama::Template)]
#[template(path = "staff_grid.html")]
struct GridPage {
    c: Chrome,
    run: String,
    columns: Vec<Column>,
    rows: Vec<Row>,
    total: usize,
    progress: String,
    sort: String,
    state: String,
    task: String,
    may_launch: bool,
    may_teardown: bool,
}

#[derive(Deserialize, Default)]
pub struct GridQuery {
    /// name (default) or progress.
    sort: Option<String>,
    /// Only students with a cell in this state (pass, fail, error, pending)...
    state: Option<String>,
    /// ...in this task (any task when absent).
    task: Option<String>,
}

pub async fn grid(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
    Query(q): Query<GridQuery>,
) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    let (_, lab) = run_and_lab(&st, &run).await?;
    let m = st.ctrl.matrix(&run).await?;
    let phases = st.ctrl.phases(&run);
    let ids: Vec<String> = m.students.iter().map(|r| r.id.clone()).collect();
    let want = q.state.as_deref().and_then(Status::parse);
    let task_col = q
        .task
        .as_deref()
        .and_then(|t| m.tasks.iter().position(|x| x.id == t));
    let mut rows: Vec<Row> = m
        .students
        .iter()
        .filter(|r| match (want, task_col) {
            (Some(w), Some(i)) => r.cells.get(i) == Some(&w),
            (Some(w), None) => r.cells.contains(&w),
            _ => true,
        })
        .map(|r| Row {
            id: r.id.clone(),
            name: r.name.clone(),
            passed: r.cells.iter().filter(|c| **c == Status::Pass).count(),
            ready: phases.get(&r.id).map(|p| p.phase) == Some(Phase::Ready),
            phase: phases
                .get(&r.id)
                .map(|p| p.to_string())
                .unwrap_or_else(|| Phase::Queued.to_string()),
            cells: r
                .cells
                .iter()
                .zip(&m.tasks)
                .map(|(c, t)| {
                    let (class, word) = status_label(*c);
                    Cell {
                        task: t.id.clone(),
                        class,
                        symbol: symbol(*c),
                        word,
                    }
                })
                .collect(),
        })
        .collect();
    let sort = q.sort.clone().unwrap_or_else(|| "name".into());
    if sort == "progress" {
        // Least progress first: who needs help is at the top.
        rows.sort_by(|a, b| a.passed.cmp(&b.passed).then_with(|| a.id.cmp(&b.id)));
    } else {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
    }
    render(&GridPage {
        c: Chrome::staff(
            &s,
            format!("Class · {run}"),
            Some((&run, &lab.title)),
            "grid",
        ),
        columns: m
            .tasks
            .iter()
            .map(|t| Column {
                id: t.id.clone(),
                title: t.title.clone(),
                points: points(t.points),
                passed: t.passed,
            })
            .collect(),
        total: m.students.len(),
        progress: progress_line(&phases, &ids),
        rows,
        run,
        sort,
        state: q.state.unwrap_or_default(),
        task: q.task.unwrap_or_default(),
        may_launch: s.role.may(Action::Launch),
        may_teardown: s.role.may(Action::Teardown),
    })
}

/// Task verdict changes of the run, one `cell` event each.
pub async fn stream(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
) -> Result<Response, PanelError> {
    use axum::response::sse::Event as SseEvent;
    s.require(Action::View)?;
    run_or_404(&st, &run).await?;
    Ok(crate::sse::stream(
        st.ctrl.grader.subscribe(),
        move |c: applab_controller::grading::Change| {
            (c.run == run).then(|| {
                let (class, word) = status_label(c.task_status);
                SseEvent::default()
                    .event("cell")
                    .json_data(serde_json::json!({
                        "student": c.student, "task": c.task, "status": class,
                        "symbol": symbol(c.task_status), "word": word, "at": c.at,
                    }))
            })
        },
    ))
}
