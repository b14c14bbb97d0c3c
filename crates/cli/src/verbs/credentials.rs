//! `applab credentials`: students' panel passwords listed or reissued.

use super::{panel_url, write_credentials, write_new_credentials};
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{CredentialsDone, CredentialsRequest};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CredentialsArgs {
    /// Only this student.
    #[arg(long)]
    pub student: Option<String>,
    /// Replace the passwords (the old ones stop working) and write the new ones.
    #[arg(long)]
    pub reissue: bool,
    /// Where reissued credentials are written (CSV).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn credentials(a: CredentialsArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = CredentialsRequest {
        run: a.conn.run.clone(),
        student: a.student.clone(),
        reissue: a.reissue,
    };
    let r: CredentialsDone = client.post("/api/credentials", &body).await?;
    if a.reissue {
        let creds = r.reissued.unwrap_or_default();
        let run = r.run.as_str();
        let panel = panel_url(&client).await;
        let out = match &a.out {
            Some(p) => {
                write_credentials(p, &creds, &panel)?;
                p.clone()
            }
            None => write_new_credentials(run, &creds, &panel)?,
        };
        if a.conn.json {
            println!(
                "{}",
                json!({ "run": run, "reissued": creds.len(), "file": out })
            );
        } else {
            println!(
                "{} credential(s) reissued; written to {}",
                creds.len(),
                out.display()
            );
        }
    } else if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{:<14} {:<24} {:<28} ISSUED (unix time)",
            "STUDENT", "NAME", "EMAIL"
        );
        for s in r.students.iter().flatten() {
            println!(
                "{:<14} {:<24} {:<28} {}",
                s.id, s.name, s.email, s.issued_at
            );
        }
        println!("(passwords are stored hashed; use --reissue to hand out new ones)");
    }
    Ok(ExitCode::SUCCESS)
}
