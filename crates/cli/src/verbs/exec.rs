//! `applab exec`: a command in a student's node.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{ExecDone, ExecRequest};
use std::process::ExitCode;

pub async fn exec(conn: &Conn, student: &str, node: &str, cmd: &[String]) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = ExecRequest {
        run: conn.run.clone(),
        student: student.into(),
        node: node.into(),
        cmd: cmd.to_vec(),
    };
    let r: ExecDone = client.post("/api/exec", &body).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
    }
    Ok(ExitCode::from(r.exit_code.clamp(0, 255) as u8))
}
