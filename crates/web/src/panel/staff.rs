//! The instructor's pages (issue 15): runs, launching a run from a lab and
//! a roster, late students, teardown, credentials sheets, grades.
//!
//! Every handler takes a [`Staff`] and asks [`Staff::require`] for the one
//! [`Action`] it performs; the role table is [`super::auth::Role::may`].

use super::auth::{check_csrf, csrf_from, Action, Staff};
use super::{render, Chrome, PanelError};
use crate::AppState;
use applab_controller::roster::{self, Entry};
use applab_controller::{Credential, LaunchResult};
use applab_lab::Lab;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::path::{Component, PathBuf};

/// An uploaded lab folder may hold this many files...
const MAX_LAB_FILES: usize = 1000;
/// ...of at most this many bytes in all (the request limit is a bit more).
pub const MAX_UPLOAD: usize = 24 << 20;

pub async fn home() -> Redirect {
    Redirect::to("/staff/runs")
}

struct RunLine {
    name: String,
    lab: String,
    students: usize,
    progress: String,
    created: String,
}

struct LabChoice {
    name: String,
    title: String,
}

#[derive(askama::Template)]
#[template(path = "staff_runs.html")]
struct RunsPage {
    c: Chrome,
    runs: Vec<RunLine>,
    may_launch: bool,
    may_teardown: bool,
    labs: Vec<LabChoice>,
    errors: Vec<String>,
    form_run: String,
    form_lab: String,
}

/// Students by convergence phase, as one line: "2 ready, 1 starting".
pub fn progress_line(
    phases: &std::collections::HashMap<String, applab_controller::Progress>,
    ids: &[String],
) -> String {
    use applab_controller::Phase;
    let (mut ready, mut starting, mut error) = (0, 0, 0);
    for id in ids {
        match phases.get(id).map(|p| p.phase) {
            Some(Phase::Ready) => ready += 1,
            Some(Phase::Failed) => error += 1,
            _ => starting += 1,
        }
    }
    let mut parts = vec![format!("{ready} ready")];
    if starting > 0 {
        parts.push(format!("{starting} starting"));
    }
    if error > 0 {
        parts.push(format!("{error} with errors"));
    }
    parts.join(", ")
}

/// A moment as the staff pages print it, in UTC as the CLI does (the panel
/// has no idea of the class's zone).
pub fn when(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute()
        ),
        Err(_) => format!("{t} (seconds since 1970)"),
    }
}

/// The labs of the labs folder the panel was started with.
fn lab_choices(st: &AppState) -> Vec<LabChoice> {
    let Some(dir) = &st.panel.labs else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if !p.join("lab.toml").is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let title = match Lab::load(&p) {
                Ok(l) => l.title,
                Err(d) => format!("(has {} error(s))", d.0.len()),
            };
            out.push(LabChoice { name, title });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

async fn runs_page(
    st: &AppState,
    s: &Staff,
    errors: Vec<String>,
    form_run: String,
    form_lab: String,
) -> Result<Response, PanelError> {
    let mut runs = Vec::new();
    for r in st.ctrl.store.runs().await? {
        let ids: Vec<String> = st
            .ctrl
            .store
            .students(&r.name)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let lab = st
            .ctrl
            .lab(&r)
            .map(|l| l.title.clone())
            .unwrap_or_else(|_| r.lab_name.clone());
        runs.push(RunLine {
            progress: progress_line(&st.ctrl.phases(&r.name), &ids),
            students: ids.len(),
            name: r.name,
            lab,
            created: when(r.created_at),
        });
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut resp = render(&RunsPage {
        c: Chrome::staff(s, "Runs", None, "runs"),
        runs,
        may_launch: s.role.may(Action::Launch),
        may_teardown: s.role.may(Action::Teardown),
        labs: lab_choices(st),
        errors,
        form_run,
        form_lab,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub async fn runs(State(st): State<AppState>, s: Staff) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    runs_page(&st, &s, Vec::new(), String::new(), String::new()).await
}

/// What a launch or "add students" form sent.
#[derive(Default)]
struct Upload {
    csrf: Option<String>,
    run: String,
    lab: String,
    roster_name: String,
    roster: Vec<u8>,
    roster_text: String,
    /// (relative path inside the uploaded folder, bytes)
    lab_files: Vec<(String, Vec<u8>)>,
}

async fn read_upload(mut m: Multipart) -> Result<Upload, Vec<String>> {
    let mut u = Upload::default();
    let mut total = 0usize;
    loop {
        let field = match m.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(vec![format!("the upload broke off: {e}")]),
        };
        let name = field.name().unwrap_or("").to_string();
        let file = field.file_name().map(str::to_string);
        let data = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(vec![format!("the upload broke off: {e}")]),
        };
        total += data.len();
        if total > MAX_UPLOAD {
            return Err(vec![format!(
                "the upload is larger than {} MiB",
                MAX_UPLOAD >> 20
            )]);
        }
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match name.as_str() {
            "csrf" => u.csrf = Some(text()),
            "run" => u.run = text(),
            "lab" => u.lab = text(),
            "roster_text" => u.roster_text = String::from_utf8_lossy(&data).into_owned(),
            "roster" if !data.is_empty() => {
                u.roster_name = file.unwrap_or_else(|| "roster.csv".into());
                u.roster = data.to_vec();
            }
            "lab_files" => {
                if let Some(f) = file.filter(|f| !f.is_empty()) {
                    if u.lab_files.len() >= MAX_LAB_FILES {
                        return Err(vec![format!(
                            "the lab folder has more than {MAX_LAB_FILES} files"
                        )]);
                    }
                    u.lab_files.push((f, data.to_vec()));
                }
            }
            _ => {}
        }
    }
    Ok(u)
}

/// The roster from the form: an uploaded CSV file, or pasted text.
fn roster_of(u: &Upload) -> Result<Vec<Entry>, Vec<String>> {
    let (name, text) = if !u.roster.is_empty() {
        let text = String::from_utf8(u.roster.clone()).map_err(|_| {
            vec![format!(
                "{}: the roster is not UTF-8 text (save it as CSV, UTF-8)",
                u.roster_name
            )]
        })?;
        (u.roster_name.clone(), text)
    } else if !u.roster_text.trim().is_empty() {
        ("roster (pasted)".to_string(), u.roster_text.clone())
    } else {
        return Err(vec![
            "No roster: upload a CSV file with the columns id,name,email, or paste one.".into(),
        ]);
    };
    let entries = roster::parse(std::path::Path::new(&name), &text)?;
    if entries.is_empty() {
        return Err(vec![format!("{name}: the roster has no students")]);
    }
    Ok(entries)
}

/// A path inside an uploaded folder, without the folder's own name; `None`
/// for anything that could leave the folder.
fn upload_path(name: &str) -> Option<PathBuf> {
    let p = std::path::Path::new(name);
    let mut parts = p.components();
    // The browser sends "folder/inside/file": drop "folder".
    match parts.next() {
        Some(Component::Normal(_)) => {}
        _ => return None,
    }
    let mut out = PathBuf::new();
    for c in parts {
        match c {
            Component::Normal(x) => out.push(x),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The lab to launch: one of the labs folder, or an uploaded folder
/// written to a scratch folder (removed when `Scratch` drops).
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn lab_of(st: &AppState, u: &Upload) -> Result<(Lab, Scratch), Vec<String>> {
    if !u.lab_files.is_empty() {
        let folder = u.lab_files[0]
            .0
            .split('/')
            .next()
            .unwrap_or("lab")
            .to_string();
        let dir = st
            .ctrl
            .cfg
            .data_dir
            .join("uploads")
            .join(hex::encode(rand::random::<[u8; 8]>()));
        let scratch = Scratch(Some(dir.clone()));
        for (name, data) in &u.lab_files {
            let Some(rel) = upload_path(name) else {
                return Err(vec![format!("{name}: not a path inside the lab folder")]);
            };
            let to = dir.join(rel);
            let written = to
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::write(&to, data));
            if let Err(e) = written {
                return Err(vec![format!("{name}: could not keep the upload: {e}")]);
            }
        }
        if !dir.join("lab.toml").is_file() {
            return Err(vec![format!(
                "{folder}/: the uploaded folder has no lab.toml at its top"
            )]);
        }
        let shown = dir.to_string_lossy().into_owned();
        return match Lab::load(&dir) {
            Ok(lab) => Ok((lab, scratch)),
            Err(d) => Err(d
                .0
                .iter()
                .map(|e| e.to_string().replace(&shown, &folder))
                .collect()),
        };
    }
    let Some(labs) = &st.panel.labs else {
        return Err(vec![
            "This panel has no labs folder: upload a lab folder.".into()
        ]);
    };
    if u.lab.is_empty() {
        return Err(vec!["Choose a lab, or upload a lab folder.".into()]);
    }
    // A folder name of the labs folder: never a path the form made up.
    let dir = labs.join(&u.lab);
    let plain = !u.lab.contains('/')
        && std::path::Path::new(&u.lab)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain || !dir.join("lab.toml").is_file() {
        return Err(vec![format!(
            "There is no lab {:?} in the labs folder.",
            u.lab
        )]);
    }
    match Lab::load(&dir) {
        Ok(lab) => Ok((lab, Scratch(None))),
        Err(d) => Err(d.0.iter().map(|e| e.to_string()).collect()),
    }
}

#[derive(askama::Template)]
#[template(path = "staff_sheet.html")]
struct SheetPage {
    c: Chrome,
    heading: String,
    note: String,
    url: String,
    creds: Vec<Credential>,
}

fn sheet(
    st: &AppState,
    s: &Staff,
    run: &str,
    lab: &str,
    heading: String,
    note: String,
    creds: Vec<Credential>,
) -> Result<Response, PanelError> {
    render(&SheetPage {
        c: Chrome::staff(
            s,
            format!("Credentials · {run}"),
            Some((run, lab)),
            "grades",
        ),
        heading,
        note,
        url: st.panel.public_url.clone(),
        creds,
    })
}

/// Launch a run: the lab and the roster are checked whole first, and their
/// errors shown at their line; nothing starts until both are clean.
pub async fn launch(
    State(st): State<AppState>,
    s: Staff,
    headers: HeaderMap,
    m: Multipart,
) -> Result<Response, PanelError> {
    s.require(Action::Launch)?;
    let u = match read_upload(m).await {
        Ok(u) => u,
        Err(errors) => return runs_page(&st, &s, errors, String::new(), String::new()).await,
    };
    check_csrf(
        &s.session,
        csrf_from(&headers, u.csrf.as_deref()).as_deref(),
    )?;
    let mut errors = Vec::new();
    let lab = match lab_of(&st, &u) {
        Ok(l) => Some(l),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let entries = match roster_of(&u) {
        Ok(e) => e,
        Err(e) => {
            errors.extend(e);
            Vec::new()
        }
    };
    let run = match (&lab, u.run.is_empty()) {
        (Some((l, _)), true) => l.name.clone(),
        _ => u.run.clone(),
    };
    if lab.is_some() && !applab_controller::valid_run_name(&run) {
        errors.push(format!(
            "Run name {run:?}: use 1-24 of a-z, 0-9 and '-', not starting with '-'."
        ));
    }
    if !run.is_empty() && st.ctrl.store.run(&run).await?.is_some() {
        errors.push(format!(
            "A run named {run} exists already: add students on its class page, or choose another name."
        ));
    }
    let Some((lab, _scratch)) = lab.filter(|_| errors.is_empty()) else {
        return runs_page(&st, &s, errors, u.run, u.lab).await;
    };
    let tar = applab_controller::pack_lab(&lab.dir)?;
    let res: LaunchResult = st.ctrl.launch(&run, &tar, &entries).await?;
    tracing::info!(
        run,
        lab = lab.name,
        by = s.session.subject,
        students = res.added.len(),
        "launched from the panel"
    );
    sheet(
        &st,
        &s,
        &run,
        &lab.title,
        format!("Run {run} launched: {} students", res.added.len()),
        "Print this page or hand each student their card now: the passwords are shown only once. \
         Their topologies are being set up; the class page shows the progress."
            .into(),
        res.added,
    )
}

/// Late students: a roster (file or pasted) added to a running run.
pub async fn add_students(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
    headers: HeaderMap,
    m: Multipart,
) -> Result<Response, PanelError> {
    s.require(Action::Launch)?;
    let row = run_or_404(&st, &run).await?;
    let u = read_upload(m)
        .await
        .map_err(|e| PanelError::new(StatusCode::BAD_REQUEST, e.join("\n")))?;
    check_csrf(
        &s.session,
        csrf_from(&headers, u.csrf.as_deref()).as_deref(),
    )?;
    let entries = roster_of(&u).map_err(|e| {
        PanelError::new(
            StatusCode::BAD_REQUEST,
            format!("Nothing was added. {}", e.join("\n")),
        )
    })?;
    let lab = st.ctrl.lab(&row)?;
    let res = st.ctrl.launch(&run, &[], &entries).await?;
    sheet(
        &st,
        &s,
        &run,
        &lab.title,
        format!(
            "{} student(s) added to {run} ({} already there)",
            res.added.len(),
            res.kept
        ),
        "Print this page or hand each student their card now: the passwords are shown only once."
            .into(),
        res.added,
    )
}

/// A run (404 if none) and its lab.
pub async fn run_and_lab(
    st: &AppState,
    run: &str,
) -> Result<(applab_controller::store::RunRow, std::sync::Arc<Lab>), PanelError> {
    let row = run_or_404(st, run).await?;
    let lab = st.ctrl.lab(&row)?;
    Ok((row, lab))
}

pub async fn run_or_404(
    st: &AppState,
    run: &str,
) -> Result<applab_controller::store::RunRow, PanelError> {
    st.ctrl
        .store
        .run(run)
        .await?
        .ok_or_else(|| PanelError::not_found(format!("There is no run {run:?}.")))
}

#[derive(askama::Template)]
#[template(path = "staff_teardown.html")]
struct TeardownPage {
    c: Chrome,
    run: String,
    lab: String,
    count: usize,
    /// The ids, or the first of them and how many more.
    names: String,
    containers: usize,
    networks: usize,
    passed: usize,
    error: Option<String>,
}

async fn teardown_page(
    st: &AppState,
    s: &Staff,
    run: &str,
    error: Option<String>,
) -> Result<Response, PanelError> {
    let (_, lab) = run_and_lab(st, run).await?;
    let students: Vec<String> = st
        .ctrl
        .store
        .students(run)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let passed = st
        .ctrl
        .store
        .results(run, None)
        .await?
        .iter()
        .filter(|r| r.status == "pass")
        .count();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = render(&TeardownPage {
        c: Chrome::staff(
            s,
            format!("Tear down {run}"),
            Some((run, &lab.title)),
            "runs",
        ),
        run: run.into(),
        lab: lab.title.clone(),
        containers: students.len() * lab.nodes.len(),
        networks: students.len() * lab.networks.len(),
        count: students.len(),
        names: if students.len() > 20 {
            format!(
                "{} and {} more",
                students[..20].join(", "),
                students.len() - 20
            )
        } else {
            students.join(", ")
        },
        passed,
        error,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub async fn teardown_form(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
) -> Result<Response, PanelError> {
    s.require(Action::Teardown)?;
    teardown_page(&st, &s, &run, None).await
}

#[derive(Deserialize)]
pub struct TeardownForm {
    csrf: Option<String>,
    confirm: String,
}

pub async fn teardown(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
    headers: HeaderMap,
    Form(f): Form<TeardownForm>,
) -> Result<Response, PanelError> {
    s.act(Action::Teardown, &headers, f.csrf.as_deref())?;
    run_or_404(&st, &run).await?;
    if f.confirm.trim() != run {
        return teardown_page(
            &st,
            &s,
            &run,
            Some(format!(
                "Type the run's name, {run}, to confirm. Nothing was removed."
            )),
        )
        .await;
    }
    st.ctrl.teardown(&run, None).await?;
    tracing::info!(run, by = s.session.subject, "torn down from the panel");
    Ok(Redirect::to("/staff/runs").into_response())
}

struct GradeLine {
    id: String,
    name: String,
    points: String,
    max: String,
    passed: usize,
}

#[derive(askama::Template)]
#[template(path = "staff_grades.html")]
struct GradesPage {
    c: Chrome,
    run: String,
    tasks: usize,
    rows: Vec<GradeLine>,
    may_export: bool,
    may_reissue: bool,
}

pub async fn grades(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
) -> Result<Response, PanelError> {
    s.require(Action::View)?;
    let (_, lab) = run_and_lab(&st, &run).await?;
    let m = st.ctrl.matrix(&run).await?;
    let rows = m
        .students
        .iter()
        .map(|r| GradeLine {
            id: r.id.clone(),
            name: r.name.clone(),
            points: super::pages::points(r.points),
            max: super::pages::points(r.max_points),
            passed: r
                .cells
                .iter()
                .filter(|c| **c == applab_checks::Status::Pass)
                .count(),
        })
        .collect();
    render(&GradesPage {
        c: Chrome::staff(
            &s,
            format!("Grades · {run}"),
            Some((&run, &lab.title)),
            "grades",
        ),
        run,
        tasks: m.tasks.len(),
        rows,
        may_export: s.role.may(Action::Export),
        may_reissue: s.role.may(Action::Reissue),
    })
}

/// A gradebook file: csv, json, canvas or moodle.
pub async fn grades_file(
    State(st): State<AppState>,
    s: Staff,
    Path((run, file)): Path<(String, String)>,
) -> Result<Response, PanelError> {
    use applab_controller::grades::{render, Format};
    s.require(Action::Export)?;
    run_or_404(&st, &run).await?;
    let (stem, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| PanelError::not_found("grades.csv, .json, -canvas.csv or -moodle.csv"))?;
    let format = match (stem, ext) {
        ("grades", "csv") => Format::Csv,
        ("grades", "json") => Format::Json,
        ("grades-canvas", "csv") => Format::Canvas,
        ("grades-moodle", "csv") => Format::Moodle,
        _ => {
            return Err(PanelError::not_found(
                "grades.csv, grades.json, grades-canvas.csv or grades-moodle.csv",
            ))
        }
    };
    let m = st.ctrl.matrix(&run).await?;
    let body = render(&m, format)?;
    tracing::info!(run, by = s.session.subject, file, "grades downloaded");
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{run}-{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ReissueForm {
    csrf: Option<String>,
    /// Empty: every student of the run.
    #[serde(default)]
    student: String,
}

/// New passwords, shown once on a printable sheet (the old ones stop
/// working and their sessions end).
pub async fn reissue(
    State(st): State<AppState>,
    s: Staff,
    Path(run): Path<String>,
    headers: HeaderMap,
    Form(f): Form<ReissueForm>,
) -> Result<Response, PanelError> {
    s.act(Action::Reissue, &headers, f.csrf.as_deref())?;
    let (_, lab) = run_and_lab(&st, &run).await?;
    let who = (!f.student.is_empty()).then_some(f.student.as_str());
    let creds = st.ctrl.reissue(&run, who).await?;
    tracing::info!(run, by = s.session.subject, student = ?who, "credentials reissued from the panel");
    sheet(
        &st,
        &s,
        &run,
        &lab.title,
        match who {
            Some(id) => format!("New credentials for {id}"),
            None => format!("New credentials for all {} students of {run}", creds.len()),
        },
        "The old passwords no longer work. Print this page now: the new passwords are shown only once."
            .into(),
        creds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploaded_paths_stay_inside_the_folder() {
        assert_eq!(
            upload_path("mylab/tasks/01.md"),
            Some(PathBuf::from("tasks/01.md"))
        );
        assert_eq!(
            upload_path("mylab/lab.toml"),
            Some(PathBuf::from("lab.toml"))
        );
        assert_eq!(upload_path("mylab"), None);
        assert_eq!(upload_path("mylab/../../etc/passwd"), None);
        assert_eq!(upload_path("/etc/passwd"), None);
        assert_eq!(upload_path("../x"), None);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_795_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn progress_counts_each_phase() {
        let mut p = std::collections::HashMap::new();
        use applab_controller::{Phase, Progress};
        p.insert("a".to_string(), Progress::at(Phase::Ready));
        p.insert("b".to_string(), Progress::failed("no image".into()));
        p.insert("d".to_string(), Progress::at(Phase::Containers));
        let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            progress_line(&p, &ids),
            "1 ready, 2 starting, 1 with errors"
        );
    }
}
