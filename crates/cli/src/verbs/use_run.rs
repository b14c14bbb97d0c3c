//! `applab use RUN`: the run every other verb works on when `--run` is not
//! given (kept in DATA/current-run), so a newcomer with several runs types
//! the short commands. `applab use` shows it and lists the runs.

use crate::client::Client;
use crate::Conn;
use anyhow::{bail, Context, Result};
use applab_controller::RunInfo;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn file(data: &Path) -> PathBuf {
    data.join("current-run")
}

/// The run `applab use` chose, if any.
pub fn current_run(data: &Path) -> Option<String> {
    let s = std::fs::read_to_string(file(data)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Forget the chosen run when it is the one named (it was torn down).
pub fn forget_run(data: &Path, run: &str) {
    if current_run(data).as_deref() == Some(run) {
        let _ = std::fs::remove_file(file(data));
    }
}

pub async fn use_run(conn: &Conn, run: Option<&str>, clear: bool) -> Result<ExitCode> {
    let path = file(&conn.data);
    if clear {
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        println!("no default run: commands need --run when several runs exist");
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(conn)?;
    let runs: Vec<RunInfo> = client.get("/api/runs", crate::client::NO_QUERY).await?;
    match run {
        Some(r) => {
            if !runs.iter().any(|x| x.name == r) {
                bail!(
                    "no run named {r:?} (runs: {})",
                    runs.iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            std::fs::write(&path, format!("{r}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            println!("commands without --run now work on run {r}");
        }
        None => {
            let current = current_run(&conn.data);
            if conn.json {
                println!("{}", serde_json::json!({ "current": current }));
                return Ok(ExitCode::SUCCESS);
            }
            for x in &runs {
                let star = if current.as_deref() == Some(x.name.as_str()) {
                    "*"
                } else {
                    " "
                };
                println!(
                    "{star} {:<16} {:<14} {} students",
                    x.name, x.lab, x.students
                );
            }
            match current {
                Some(_) => println!("(* is the default run: `applab use --clear` to forget it)"),
                None => println!("no default run: `applab use RUN` chooses one"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
