//! `applab capture`: a student's frames, protocol events, or a pcap.

use crate::client::Client;
use crate::Conn;
use anyhow::{Context, Result};
use applab_controller::api::{CaptureQuery, EventPage, FramePage};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// frames (the packet list), events (protocol messages) or pcap.
    #[arg(value_parser = ["frames", "events", "pcap"])]
    pub what: String,
    pub student: String,
    /// Only this network of the lab (required for pcap when it has several).
    #[arg(long)]
    pub network: Option<String>,
    /// Only frames or events to or from this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Only this protocol (frames: HTTP, TCP, DNS, ARP ...; events: http, dns, tcp, malformed).
    #[arg(long)]
    pub protocol: Option<String>,
    /// From this time (seconds since the epoch).
    #[arg(long)]
    pub since: Option<f64>,
    /// Up to this time (seconds since the epoch).
    #[arg(long)]
    pub until: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Where to write the pcap (default: STUDENT-NETWORK.pcap).
    #[arg(short = 'o', long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn capture(a: CaptureArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let q = CaptureQuery {
        run: a.conn.run.clone(),
        student: a.student.clone(),
        network: a.network.clone(),
        node: a.node.clone(),
        protocol: a.protocol.clone(),
        since: a.since,
        until: a.until,
        offset: a.offset,
        limit: Some(a.limit),
    };
    if a.what == "pcap" {
        let bytes = client.get_bytes("/api/capture/pcap", &q).await?;
        let out = a.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "{}-{}.pcap",
                a.student,
                a.network.as_deref().unwrap_or("capture")
            ))
        });
        std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        if a.conn.json {
            println!(
                "{}",
                serde_json::json!({ "file": out, "bytes": bytes.len() })
            );
        } else {
            println!("{} ({} bytes)", out.display(), bytes.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A node's name where the address is one of the student's nodes.
    let who = |node: &Option<String>, addr: &str| node.clone().unwrap_or_else(|| addr.to_string());
    if a.what == "frames" {
        let page: FramePage = client.get("/api/capture/frames", &q).await?;
        if a.conn.json {
            println!("{}", serde_json::to_string_pretty(&page)?);
            return Ok(ExitCode::SUCCESS);
        }
        for f in &page.frames {
            let i = &f.frame;
            println!(
                "{:>6} {:.6} {:<10} {} → {} {:<5} {:>5} {}",
                i.number,
                i.time,
                f.network,
                who(&f.src_node, &i.src),
                who(&f.dst_node, &i.dst),
                i.protocol,
                i.len,
                i.info
            );
        }
        println!("({} of {} shown)", page.frames.len(), page.total);
        return Ok(ExitCode::SUCCESS);
    }
    let page: EventPage = client.get("/api/capture/events", &q).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in &page.events {
        let ev = &e.event;
        // The event's own fields, without those the line already shows.
        let mut detail = serde_json::to_value(ev)?;
        if let Some(o) = detail.as_object_mut() {
            for k in [
                "time", "flow", "frame", "client", "server", "network", "type", "headers",
            ] {
                o.remove(k);
            }
        }
        println!(
            "{:.6} flow {} frame {} {} → {} {} {}",
            ev.time,
            ev.flow,
            ev.frame,
            who(&e.client_node, &ev.client.to_string()),
            who(&e.server_node, &ev.server.to_string()),
            ev.kind.type_name(),
            detail
        );
    }
    println!("({} of {} shown)", page.events.len(), page.total);
    Ok(ExitCode::SUCCESS)
}
