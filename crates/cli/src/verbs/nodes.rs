//! `applab reset`, `applab stop`, `applab start`: a student's topology or one node.

use super::print_done;
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{NodeDone, NodeRequest, ResetDone, StudentRequest};
use std::process::ExitCode;

pub async fn reset(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = StudentRequest {
        run: conn.run.clone(),
        student: student.into(),
    };
    let r: ResetDone = client.post("/api/reset", &body).await?;
    print_done(conn, &r, &format!("{student}: topology recreated"))
}

pub async fn node(conn: &Conn, student: &str, node: &str, running: bool) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = NodeRequest {
        run: conn.run.clone(),
        student: student.into(),
        node: node.into(),
        running,
    };
    let r: NodeDone = client.post("/api/node", &body).await?;
    print_done(
        conn,
        &r,
        &format!(
            "{student}/{node}: {}",
            if running { "started" } else { "stopped" }
        ),
    )
}
