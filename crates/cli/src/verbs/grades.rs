//! `applab grades`: a row per student, a column per task.

use crate::client::Client;
use crate::Conn;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct GradesArgs {
    /// csv, json, canvas (Canvas gradebook import) or moodle (keyed by email).
    #[arg(long, default_value = "csv", value_parser = ["csv", "json", "canvas", "moodle"])]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn grades(a: GradesArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let q = applab_controller::api::GradesQuery {
        run: a.conn.run.clone(),
        format: Some(a.format.clone()),
    };
    let bytes = client.get_bytes("/api/grades", &q).await?;
    match &a.output {
        Some(p) => {
            std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("grades written to {}", p.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
