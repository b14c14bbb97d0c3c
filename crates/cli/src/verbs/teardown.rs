//! `applab teardown`: a run's topologies (or one student's) and everything of theirs.

use super::print_done;
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{TeardownDone, TeardownRequest};
use std::process::ExitCode;

pub async fn teardown(conn: &Conn, student: Option<&str>) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = TeardownRequest {
        run: conn.run.clone(),
        student: student.map(str::to_string),
    };
    let r: TeardownDone = client.post("/api/teardown", &body).await?;
    if student.is_none() {
        super::forget_run(&conn.data, &r.run);
    }
    let what = match student {
        Some(s) => format!("{s}: topology removed"),
        None => format!("run {}: removed", r.run),
    };
    print_done(conn, &r, &what)
}
