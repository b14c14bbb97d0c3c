//! `applab exec`: a command in a student's node.

use super::run_field;
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

pub async fn exec(conn: &Conn, student: &str, node: &str, cmd: &[String]) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = json!({ "run": run_field(conn), "student": student, "node": node, "cmd": cmd });
    let r: serde_json::Value = client.post("/api/exec", &body).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r["stdout"].as_str().unwrap_or(""));
        eprint!("{}", r["stderr"].as_str().unwrap_or(""));
    }
    let code = r["exit_code"].as_i64().unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
