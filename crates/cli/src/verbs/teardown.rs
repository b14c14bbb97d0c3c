//! `applab teardown`: a run's topologies (or one student's) and everything of theirs.

use super::{print_done, run_field};
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

pub async fn teardown(conn: &Conn, student: Option<&str>) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let r: serde_json::Value = client
        .post(
            "/api/teardown",
            &json!({ "run": run_field(conn), "student": student }),
        )
        .await?;
    if student.is_none() {
        if let Some(run) = r["run"].as_str() {
            super::forget_run(&conn.data, run);
        }
    }
    let what = match student {
        Some(s) => format!("{s}: topology removed"),
        None => format!("run {}: removed", r["run"].as_str().unwrap_or("?")),
    };
    print_done(conn, &r, &what)
}
