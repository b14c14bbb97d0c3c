//! `applab history`: a student's verdict changes and answers.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{History, RunQuery};
use std::process::ExitCode;

/// A student's verdict changes and answers, oldest first.
pub async fn history(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let q = RunQuery {
        run: conn.run.clone(),
        student: Some(student.into()),
    };
    let v: History = client.get("/api/results/history", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for h in &v.history {
        println!(
            "{:.3}  {}/{}  {}  {}",
            h.at, h.task, h.check_id, h.status, h.seen
        );
    }
    for a in &v.submissions {
        println!("{:.3}  answer {}/{}: {}", a.at, a.task, a.question, a.value);
    }
    Ok(ExitCode::SUCCESS)
}
