//! `applab capture`: a student's frames, protocol events, or a pcap.

use crate::client::Client;
use crate::Conn;
use anyhow::{Context, Result};
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
    let (offset, limit) = (a.offset.to_string(), a.limit.to_string());
    let (since, until) = (
        a.since.map(|t| t.to_string()),
        a.until.map(|t| t.to_string()),
    );
    let mut q: Vec<(&str, &str)> = vec![
        ("student", &a.student),
        ("offset", &offset),
        ("limit", &limit),
    ];
    for (k, v) in [
        ("run", &a.conn.run),
        ("network", &a.network),
        ("node", &a.node),
        ("protocol", &a.protocol),
        ("since", &since),
        ("until", &until),
    ] {
        if let Some(v) = v {
            q.push((k, v.as_str()));
        }
    }
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
    let path = format!("/api/capture/{}", a.what);
    let v: serde_json::Value = client.get(&path, &q).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let items = v[a.what.as_str()].as_array().cloned().unwrap_or_default();
    let who = |node: &serde_json::Value, addr: &serde_json::Value| {
        node.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| addr.as_str().unwrap_or("?").to_string())
    };
    for i in &items {
        if a.what == "frames" {
            println!(
                "{:>6} {:.6} {:<10} {} → {} {:<5} {:>5} {}",
                i["number"],
                i["time"].as_f64().unwrap_or(0.0),
                i["network"].as_str().unwrap_or(""),
                who(&i["src_node"], &i["src"]),
                who(&i["dst_node"], &i["dst"]),
                i["protocol"].as_str().unwrap_or(""),
                i["len"],
                i["info"].as_str().unwrap_or("")
            );
        } else {
            let mut detail = i.clone();
            if let Some(o) = detail.as_object_mut() {
                for k in [
                    "time",
                    "flow",
                    "frame",
                    "client",
                    "server",
                    "network",
                    "client_node",
                    "server_node",
                    "type",
                    "headers",
                ] {
                    o.remove(k);
                }
            }
            println!(
                "{:.6} flow {} frame {} {} → {} {} {}",
                i["time"].as_f64().unwrap_or(0.0),
                i["flow"],
                i["frame"],
                who(&i["client_node"], &i["client"]),
                who(&i["server_node"], &i["server"]),
                i["type"].as_str().unwrap_or(""),
                detail
            );
        }
    }
    println!("({} of {} shown)", items.len(), v["total"]);
    Ok(ExitCode::SUCCESS)
}
