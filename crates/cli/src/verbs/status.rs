//! `applab status`: every student's topology, the shaping mechanism and the links' traffic.

use crate::client::Client;
use crate::Conn;
use anyhow::Result;
use applab_controller::RunStatus;
use std::process::ExitCode;

pub async fn status(conn: &Conn) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let q = applab_controller::api::RunQuery {
        run: conn.run.clone(),
        student: None,
    };
    let st: RunStatus = client.get("/api/status", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "run {} · lab {} · engine {} · {} student(s)",
        st.run,
        st.lab,
        st.engine,
        st.students.len()
    );
    println!(
        "{:<14} {:<10} {:<12} {:<12} {:<9} {:<7} ADDRESS",
        "STUDENT", "STATE", "NODE", "ROLE", "CONTAINER", "HEALTH"
    );
    let mut problems = Vec::new();
    for s in &st.students {
        if let Some(why) = &s.error {
            problems.push(format!("{}: {why}", s.id));
        }
        let short = s.state.as_str();
        for (i, n) in s.nodes.iter().enumerate() {
            let (id, state) = if i == 0 {
                (s.id.as_str(), short)
            } else {
                ("", "")
            };
            let health = if n.healthy {
                "ok"
            } else if n.stopped_on_purpose {
                "stopped"
            } else {
                "down"
            };
            let addrs: Vec<String> = n.addresses.values().cloned().collect();
            println!(
                "{:<14} {:<10} {:<12} {:<12} {:<9} {:<7} {}",
                id,
                state,
                n.name,
                n.role,
                n.state.as_str(),
                health,
                addrs.join(" ")
            );
        }
    }
    for p in problems {
        println!("{p}");
    }
    println!("link shaping: {}", st.shaping);
    if !st.links.is_empty() {
        println!(
            "{:<14} {:<12} {:<12} {:>9} {:>12} {:>6} {:>12} {:>12} {:>6}",
            "STUDENT", "NODE", "NETWORK", "DELAY", "RATE", "LOSS", "TO NODE", "FROM NODE", "UTIL"
        );
        for l in &st.links {
            println!(
                "{:<14} {:<12} {:<12} {:>9} {:>12} {:>6} {:>12} {:>12} {:>6}",
                l.student,
                l.node,
                l.network,
                format!("{}ms", l.delay_us as f64 / 1000.0),
                l.rate_bps.map(bits).unwrap_or_else(|| "-".into()),
                format!("{}%", l.loss * 100.0),
                bits(l.to_node_bps as u64),
                bits(l.from_node_bps as u64),
                l.utilization
                    .map(|u| format!("{u:.3}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// 15400000 → "15.4 Mbit/s".
fn bits(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000 => format!("{:.1} Mbit/s", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kbit/s", b as f64 / 1e3),
        b => format!("{b} bit/s"),
    }
}
