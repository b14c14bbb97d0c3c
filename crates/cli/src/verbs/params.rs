//! `applab params`: a student's parameter values.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use std::collections::BTreeMap;
use std::process::ExitCode;

pub async fn params(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let q = applab_controller::api::RunQuery {
        run: conn.run.clone(),
        student: Some(student.into()),
    };
    let p: BTreeMap<String, String> = client.get("/api/params", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        for (k, v) in p {
            println!("{k} = {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
