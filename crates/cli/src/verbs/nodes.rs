//! `applab reset`, `applab stop`, `applab start`: a student's topology or one node.

use super::{print_done, run_field};
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

pub async fn reset(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let r: serde_json::Value = client
        .post(
            "/api/reset",
            &json!({ "run": run_field(conn), "student": student }),
        )
        .await?;
    print_done(conn, &r, &format!("{student}: topology recreated"))
}

pub async fn node(conn: &Conn, student: &str, node: &str, running: bool) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body =
        json!({ "run": run_field(conn), "student": student, "node": node, "running": running });
    let r: serde_json::Value = client.post("/api/node", &body).await?;
    print_done(
        conn,
        &r,
        &format!(
            "{student}/{node}: {}",
            if running { "started" } else { "stopped" }
        ),
    )
}
