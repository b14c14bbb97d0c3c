//! `applab-node probe KIND`: a node's state as JSON, for the checks
//! (DESIGN.md decision 12). The controller runs it inside the node through
//! the engine and judges what it prints; it changes nothing.
//!
//! - `mail`: the queue, the finished messages with their attempts, every
//!   mailbox and folder (the `mailq` tool's JSON);
//! - `shop`: the cookie shop's carts by cookie id;
//! - `proxy`: the caching proxy's counters (its `/_applab/stats`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum Probe {
    /// A mail node's queue, finished messages, mailboxes and folders.
    Mail {
        /// The mail node's data folder (its `--data`).
        #[arg(long, default_value = "/data/mail")]
        data: PathBuf,
    },
    /// The origin's cookie shop: every cart by its cookie id.
    Shop {
        /// The origin's state folder (its `--state`).
        #[arg(long, default_value = "/data/state")]
        state: PathBuf,
    },
    /// The proxy's hit and miss counters.
    Proxy {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:3128")]
        addr: String,
    },
}

fn shop(state: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let file = state.join("shop.json");
    let carts: serde_json::Value = match std::fs::read_to_string(&file) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        }
        // No visitor yet: no store written.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => anyhow::bail!("{}: {e}", file.display()),
    };
    Ok(serde_json::json!({ "carts": carts }))
}

fn proxy(addr: &str) -> anyhow::Result<serde_json::Value> {
    let addr: std::net::SocketAddr = addr.parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /_applab/stats HTTP/1.0\r\nHost: proxy\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf)?;
    let end = applab_proto::message::header_end(&buf)
        .ok_or_else(|| anyhow::anyhow!("the proxy's answer has no end of header"))?;
    Ok(serde_json::from_slice(&buf[end..])?)
}

pub fn run(p: Probe) -> ExitCode {
    let out = match p {
        Probe::Mail { data } => crate::tools::mailq::collect(&data),
        Probe::Shop { state } => shop(&state),
        Probe::Proxy { addr } => proxy(&addr),
    };
    match out {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}
