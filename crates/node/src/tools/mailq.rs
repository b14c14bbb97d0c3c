//! `mailq`: what a mail node holds, for the instructor, the checks and the
//! tests: the queue (each message's envelope, attempts and last error), the
//! messages finished (with their attempts), and every mailbox (each message's envelope headers and trace). Run inside a
//! mail node (`applab exec STUDENT mail-a -- applab-node tool mailq`).

use crate::mail::store::Store;
use mail_parser::MessageParser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The mail node's data folder (its `--data`).
    #[arg(long, default_value = "/data/mail")]
    pub data: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn message_summary(path: &Path) -> serde_json::Value {
    let raw = std::fs::read(path).unwrap_or_default();
    let p = MessageParser::default().parse_headers(&raw[..]);
    // Received lines as written: the raw header text, unfolded.
    let raw_headers: Vec<(String, String)> = p
        .as_ref()
        .map(|m| {
            m.headers()
                .iter()
                .map(|h| {
                    let v = raw
                        .get(h.offset_start as usize..h.offset_end as usize)
                        .map(|b| {
                            String::from_utf8_lossy(b)
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    (h.name.as_str().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    let all = |n: &str| -> Vec<String> {
        raw_headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .collect()
    };
    serde_json::json!({
        "file": path.file_name().map(|f| f.to_string_lossy().to_string()),
        "bytes": raw.len(),
        "return_path": all("Return-Path").first(),
        "delivered_to": all("Delivered-To").first(),
        "from": all("From").first(),
        "to": all("To").first(),
        "subject": all("Subject").first(),
        "message_id": all("Message-ID").first(),
        "received": all("Received"),
    })
}

pub fn collect(data: &Path) -> anyhow::Result<serde_json::Value> {
    let store = Store::at(data, "mailq");
    let queue = store
        .read_queue()
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.display()))?;
    let done = store.read_done();
    let mut boxes = serde_json::Map::new();
    let mut all_folders = serde_json::Map::new();
    if let Ok(rd) = std::fs::read_dir(data.join("mailboxes")) {
        let mut users: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        users.sort();
        for u in users {
            let msgs: Vec<serde_json::Value> = crate::mail::maildir::list(&u)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let mut v = message_summary(&e.path);
                    v["flags"] = e.flags.clone().into();
                    v
                })
                .collect();
            // IMAP folders other than INBOX: Maildir++ `.Name` folders.
            let mut folders = serde_json::Map::new();
            for e in std::fs::read_dir(&u).into_iter().flatten().flatten() {
                let fname = e.file_name().to_string_lossy().to_string();
                if let Some(f) = fname.strip_prefix('.') {
                    if e.path().join("cur").is_dir() {
                        let list: Vec<serde_json::Value> = crate::mail::maildir::list(&e.path())
                            .unwrap_or_default()
                            .iter()
                            .map(|m| message_summary(&m.path))
                            .collect();
                        folders.insert(f.to_string(), list.into());
                    }
                }
            }
            let name = u
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if !folders.is_empty() {
                all_folders.insert(name.clone(), folders.into());
            }
            boxes.insert(name, serde_json::Value::Array(msgs));
        }
    }
    Ok(
        serde_json::json!({ "queue": queue, "done": done, "mailboxes": boxes, "folders": all_folders }),
    )
}

pub fn run(args: Args) -> ExitCode {
    let v = match collect(&args.data) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mailq: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{v:#}");
        return ExitCode::SUCCESS;
    }
    let q = v["queue"].as_array().cloned().unwrap_or_default();
    println!("queue: {} message(s)", q.len());
    for e in &q {
        println!(
            "  {}  from <{}>  {} bytes  {} attempt(s)",
            e["id"].as_str().unwrap_or(""),
            e["from"].as_str().unwrap_or(""),
            e["size"],
            e["attempts"]
        );
        for r in e["rcpts"].as_array().into_iter().flatten() {
            println!(
                "    to <{}>: {}  {}",
                r["address"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r["last"].as_str().unwrap_or("")
            );
        }
    }
    for (user, msgs) in v["mailboxes"].as_object().into_iter().flatten() {
        let msgs = msgs.as_array().cloned().unwrap_or_default();
        println!("mailbox {user}: {} message(s)", msgs.len());
        for m in msgs {
            println!(
                "  {}  from {}  subject {}",
                m["file"].as_str().unwrap_or(""),
                m["from"].as_str().unwrap_or("-"),
                m["subject"].as_str().unwrap_or("-")
            );
        }
    }
    ExitCode::SUCCESS
}
