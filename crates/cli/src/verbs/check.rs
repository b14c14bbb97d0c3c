//! `applab check`: the checks evaluated now, with expected and seen.

use super::mark;
use crate::client::Client;
use crate::Conn;
use anyhow::{bail, Result};
use applab_controller::grades::pts as points;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Only this student.
    #[arg(long)]
    pub student: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Recompute every result from what is still recorded, passes included (a regrade).
    #[arg(long)]
    pub recheck: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// Evaluate now and print each student's tasks and checks.
pub async fn check(a: CheckArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = applab_controller::api::CheckRequest {
        run: a.conn.run.clone(),
        student: a.student.clone(),
        recheck: a.recheck,
    };
    let mut res: Vec<applab_controller::grading::StudentResults> =
        client.post("/api/check", &body).await?;
    if let Some(t) = &a.task {
        if !res.iter().any(|s| s.tasks.iter().any(|x| &x.task == t)) {
            bail!("no task {t:?} in this lab");
        }
        for s in &mut res {
            s.tasks.retain(|x| &x.task == t);
        }
    }
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &res {
        println!(
            "{} ({}): {} of {} points",
            s.student,
            s.name,
            points(s.points),
            points(s.max_points)
        );
        for t in &s.tasks {
            println!("  {} {}  {}", mark(t.status), t.task, t.title);
            for c in &t.checks {
                println!("    {} {}: {}", mark(c.status), c.check, c.expected);
                println!("        seen: {}", c.seen);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
