//! `applab launch`: a lab for a roster, with a progress bar until every student is ready.

use super::{panel_url, write_credentials, write_new_credentials};
use crate::client::Client;
use crate::{paths, Conn};
use anyhow::{bail, Context, Result};
use applab_controller::api::{RunProgress, StudentProgress};
use applab_controller::{roster, LaunchResult, Phase, RunStatus, StudentState};
use applab_lab::Lab;
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct LaunchArgs {
    /// A lab folder, or the name of a shipped lab (labs/NAME).
    pub lab: String,
    /// CSV with columns id,name,email.
    #[arg(long)]
    pub roster: PathBuf,
    /// Return once the run is recorded, without waiting for topologies.
    #[arg(long)]
    pub no_wait: bool,
    /// Where to write the new students' one-time credentials (CSV).
    #[arg(long)]
    pub credentials_out: Option<PathBuf>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    #[command(flatten)]
    pub conn: Conn,
}

fn lab_path(lab: &str) -> PathBuf {
    let p = PathBuf::from(lab);
    if p.exists() {
        p
    } else {
        paths::shared_dir("labs").join(lab)
    }
}

pub async fn launch(a: LaunchArgs) -> Result<ExitCode> {
    let dir = lab_path(&a.lab);
    let lab = match Lab::load(&dir) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            bail!("the lab has {} error(s); nothing launched", d.0.len());
        }
    };
    let text = std::fs::read_to_string(&a.roster)
        .with_context(|| format!("reading {}", a.roster.display()))?;
    let entries = match roster::parse(&a.roster, &text) {
        Ok(e) => e,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            bail!("the roster has {} bad row(s); nothing launched", errs.len());
        }
    };
    let lab_tar = applab_controller::pack_lab(&lab.dir)?;
    let run = a.conn.run.clone().unwrap_or_else(|| lab.name.clone());
    let client = Client::new(&a.conn)?;
    let req = applab_controller::api::LaunchRequest {
        run: run.clone(),
        lab_tar: base64::engine::general_purpose::STANDARD.encode(&lab_tar),
        roster: entries.clone(),
    };
    let res: LaunchResult = client.post("/api/launch", &req).await?;
    if !res.added.is_empty() {
        let panel = panel_url(&client).await;
        let out = match &a.credentials_out {
            Some(p) => {
                write_credentials(p, &res.added, &panel)?;
                p.clone()
            }
            None => write_new_credentials(&res.run, &res.added, &panel)?,
        };
        if !a.conn.json {
            eprintln!(
                "{} new student(s); their one-time credentials are in {}",
                res.added.len(),
                out.display()
            );
        }
    }
    if !a.conn.json {
        eprintln!(
            "run {}: lab {}, {} added, {} already there",
            res.run,
            res.lab,
            res.added.len(),
            res.kept
        );
    }
    let mut failed = false;
    if !a.no_wait {
        failed = wait_ready(&client, &run, &entries, a.timeout, a.conn.json).await?;
    }
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
    } else if !failed {
        let first = entries.first().map(|e| e.id.as_str()).unwrap_or("STUDENT");
        let ws = lab
            .nodes
            .iter()
            .find(|n| n.role == applab_lab::Role::Workstation)
            .map(|n| n.name.as_str())
            .unwrap_or("ws");
        let other = lab
            .nodes
            .iter()
            .find(|n| n.role != applab_lab::Role::Workstation);
        println!("\nNext:");
        println!("  applab status                      # every student's nodes, live");
        if let Some(o) = other {
            println!(
                "  applab exec {first} {ws} -- tcp --probe {} {}   # from {first}'s workstation",
                o.name,
                o.role.service_port()
            );
        }
        println!("  applab teardown                    # remove the run when the lab is over");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Wait until every roster student is ready (their passes' phases while
/// any is in flight, then the live status); true if any failed.
async fn wait_ready(
    client: &Client,
    run: &str,
    entries: &[roster::Entry],
    timeout: u64,
    quiet: bool,
) -> Result<bool> {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(entries.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} ready {wide_msg}",
        )
        .expect("style")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    let say = |line: String| {
        if quiet {
        } else if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let mine = |id: &str| entries.iter().any(|e| e.id == id);
    loop {
        // While passes are still working, their phases are enough, and
        // cost the engine nothing: the live status (an engine listing and
        // a probe of every node) is asked once no pass is in flight.
        let pr: RunProgress = client.get("/api/progress", &[("run", run)][..]).await?;
        let busy: Vec<&StudentProgress> = pr
            .students
            .iter()
            .filter(|s| mine(&s.id) && s.phase.is_some_and(Phase::in_flight))
            .collect();
        if !busy.is_empty() {
            let mut phases: BTreeMap<Phase, usize> = BTreeMap::new();
            for s in &busy {
                *phases.entry(s.phase.unwrap_or(Phase::Queued)).or_default() += 1;
            }
            let ready: Vec<&StudentProgress> = pr
                .students
                .iter()
                .filter(|s| mine(&s.id) && s.phase == Some(Phase::Ready))
                .collect();
            for s in &ready {
                if reported.get(&s.id).map(String::as_str) != Some("ready") {
                    say(format!("  {:<12} ready", s.id));
                    reported.insert(s.id.clone(), "ready".into());
                }
            }
            pb.set_position(ready.len() as u64);
            pb.set_message(phase_summary(&phases));
            if tokio::time::Instant::now() > deadline {
                pb.finish_and_clear();
                eprintln!("timed out: {}/{} ready", ready.len(), entries.len());
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            continue;
        }
        let st: RunStatus = client.get("/api/status", &[("run", run)][..]).await?;
        let mut ready = 0;
        let mut errors = 0;
        let mut phases: BTreeMap<Phase, usize> = BTreeMap::new();
        for s in st.students.iter().filter(|s| mine(&s.id)) {
            let st_now = match s.state {
                StudentState::Ready => {
                    ready += 1;
                    "ready".to_string()
                }
                StudentState::Failed => {
                    errors += 1;
                    format!("failed: {}", s.error.as_deref().unwrap_or("no detail"))
                }
                StudentState::Starting | StudentState::Degraded => {
                    *phases.entry(s.phase.unwrap_or(Phase::Queued)).or_default() += 1;
                    continue;
                }
            };
            if reported.get(&s.id) != Some(&st_now) {
                say(format!("  {:<12} {}", s.id, st_now));
                reported.insert(s.id.clone(), st_now);
            }
        }
        pb.set_position(ready as u64);
        pb.set_message(phase_summary(&phases));
        if ready == entries.len() {
            pb.finish_and_clear();
            say(format!("all {ready} topologies ready"));
            return Ok(false);
        }
        if ready + errors == entries.len() && errors > 0 {
            pb.finish_and_clear();
            eprintln!(
                "{errors} topolog{} failed; `applab launch` again retries them",
                if errors == 1 { "y" } else { "ies" }
            );
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            pb.finish_and_clear();
            eprintln!("timed out: {ready}/{} ready", entries.len());
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// "3 networks, 2 containers": how many students are at each phase.
fn phase_summary(phases: &BTreeMap<Phase, usize>) -> String {
    phases
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
