//! One file per verb (`applab VERB --help` for each); the helpers the
//! verbs share are here.

mod answer;
mod capture;
mod check;
mod credentials;
mod exec;
mod grades;
mod history;
mod images_build;
mod instructor;
mod launch;
mod nodes;
mod params;
mod serve;
mod shape;
mod status;
mod teardown;
mod use_run;
mod validate;

pub use answer::*;
pub use capture::*;
pub use check::*;
pub use credentials::*;
pub use exec::*;
pub use grades::*;
pub use history::*;
pub use images_build::*;
pub use instructor::*;
pub use launch::*;
pub use nodes::*;
pub use params::*;
pub use serve::*;
pub use shape::*;
pub use status::*;
pub use teardown::*;
pub use use_run::*;
pub use validate::*;

use crate::client::Client;
use crate::Conn;
use anyhow::{Context, Result};
use applab_controller::Credential;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The reply itself with `--json`, else a sentence.
fn print_done(conn: &Conn, r: &impl serde::Serialize, text: &str) -> Result<ExitCode> {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A status with a symbol, never by colour alone.
fn mark(s: applab_checks::Status) -> &'static str {
    match s {
        applab_checks::Status::Pass => "[pass]   ",
        applab_checks::Status::Fail => "[FAIL]   ",
        applab_checks::Status::Pending => "[pending]",
        applab_checks::Status::Error => "[ERROR]  ",
    }
}

/// The panel's address, as the controller tells it.
async fn panel_url(client: &Client) -> String {
    client
        .get::<_, applab_controller::api::Health>("/api/health", crate::client::NO_QUERY)
        .await
        .map(|h| h.panel_url)
        .unwrap_or_default()
}

/// The credentials sheet: one row per student with the panel's address.
fn write_credentials(path: &Path, creds: &[Credential], panel: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    credentials_to(f, creds, panel)
}

/// Write one-time credentials to a new file in the working folder,
/// `credentials-RUN-TIME.csv` (`-TIME-2.csv` … when that name is taken:
/// two launches within one second must not overwrite each other's
/// passwords, which exist nowhere else). The file's path.
fn write_new_credentials(run: &str, creds: &[Credential], panel: &str) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let t = applab_controller::store::now();
    for k in 1u32.. {
        let path = PathBuf::from(match k {
            1 => format!("credentials-{run}-{t}.csv"),
            _ => format!("credentials-{run}-{t}-{k}.csv"),
        });
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                credentials_to(f, creds, panel)?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
    unreachable!("u32 names run out")
}

fn credentials_to(f: std::fs::File, creds: &[Credential], panel: &str) -> Result<()> {
    let mut w = csv::Writer::from_writer(f);
    w.write_record(["run", "id", "name", "email", "password", "panel"])?;
    for c in creds {
        w.write_record([&c.run, &c.id, &c.name, &c.email, &c.password, panel])?;
    }
    w.flush()?;
    Ok(())
}
