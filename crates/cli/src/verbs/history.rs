//! `applab history`: a student's verdict changes and answers.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use std::process::ExitCode;

/// A student's verdict changes and answers, oldest first.
pub async fn history(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let mut q = vec![("student", student)];
    if let Some(r) = &conn.run {
        q.push(("run", r.as_str()));
    }
    let v: serde_json::Value = client.get("/api/results/history", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "{:.3}  {}/{}  {}  {}",
            h["at"].as_f64().unwrap_or(0.0),
            h["task"].as_str().unwrap_or(""),
            h["check_id"].as_str().unwrap_or(""),
            h["status"].as_str().unwrap_or(""),
            h["seen"].as_str().unwrap_or("")
        );
    }
    for a in v["submissions"].as_array().into_iter().flatten() {
        println!(
            "{:.3}  answer {}/{}: {}",
            a["at"].as_f64().unwrap_or(0.0),
            a["task"].as_str().unwrap_or(""),
            a["question"].as_str().unwrap_or(""),
            a["value"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
