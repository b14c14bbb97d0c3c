//! `applab instructor add|list`: panel accounts for instructors and assistants.

use super::panel_url;
use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::api::{StaffAdded, StaffMember, StaffRequest};
use std::process::ExitCode;

pub async fn instructor_add(conn: &Conn, name: &str, assistant: bool) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let role = if assistant { "assistant" } else { "instructor" };
    let r: StaffAdded = client
        .post(
            "/api/staff",
            &StaffRequest {
                name: name.into(),
                role: role.into(),
            },
        )
        .await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let url = panel_url(&client).await;
        println!(
            "{} {} {}: log in at {}/staff/login with password {}",
            if r.created {
                "added"
            } else {
                "new password for"
            },
            r.role,
            r.name,
            url.trim_end_matches('/'),
            r.password
        );
        eprintln!("(the password is shown only now)");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn instructor_list(conn: &Conn) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let rows: Vec<StaffMember> = client.get("/api/staff", crate::client::NO_QUERY).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in rows {
            println!("{}\t{}", r.name, r.role);
        }
    }
    Ok(ExitCode::SUCCESS)
}
