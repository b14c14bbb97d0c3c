//! `applab answer`: a student's answer submitted as the panel's form does.

use super::mark;
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AnswerArgs {
    pub student: String,
    pub task: String,
    pub question: String,
    pub value: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// Submit an answer for a student (instructors and tests; students use the panel).
pub async fn answer(a: AnswerArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = applab_controller::api::AnswerRequest {
        run: a.conn.run.clone(),
        student: a.student.clone(),
        task: a.task.clone(),
        question: a.question.clone(),
        value: a.value.clone(),
    };
    let t: applab_controller::grading::TaskView = client.post("/api/answer", &body).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        println!("{} {}  {}", mark(t.status), t.task, t.title);
        for c in &t.checks {
            println!("    {} {}: {}", mark(c.status), c.check, c.seen);
        }
    }
    Ok(ExitCode::SUCCESS)
}
