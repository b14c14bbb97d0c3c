//! `applab params`: a student's parameter values.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use std::collections::BTreeMap;
use std::process::ExitCode;

pub async fn params(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let mut q = vec![("student", student)];
    if let Some(r) = &conn.run {
        q.push(("run", r.as_str()));
    }
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
