//! `lookup NAME [TYPE] [@SERVER]`: a small dig. Shows the question, the
//! answer, authority and additional sections, the flags, and whether the
//! answer came over UDP or TCP (after a truncated UDP answer, or `--tcp`).

use crate::dns::client;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name to look up (`crepes.lab`); a trailing dot is added.
    pub name: String,
    /// Record type (A, MX, NS, SOA, CNAME, TXT, AAAA, ANY) and/or `@SERVER`
    /// (an address or name, with `:PORT` if not 53).
    #[arg(value_name = "TYPE|@SERVER")]
    pub rest: Vec<String>,
    /// Ask over TCP from the start.
    #[arg(long)]
    pub tcp: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    super::finish("lookup", super::block_on(lookup(args)))
}

async fn lookup(args: Args) -> anyhow::Result<ExitCode> {
    let mut qtype = RecordType::A;
    let mut server = None;
    for r in &args.rest {
        if let Some(s) = r.strip_prefix('@') {
            server = Some(client::server_addr(s, 53).await?);
        } else {
            qtype = RecordType::from_str(&r.to_ascii_uppercase())
                .map_err(|_| anyhow::anyhow!("{r:?} is not a record type (A, MX, NS, ...)"))?;
        }
    }
    let server = match server {
        Some(s) => s,
        None => client::system_server().ok_or_else(|| {
            anyhow::anyhow!("no @SERVER given and no nameserver in /etc/resolv.conf")
        })?,
    };
    let fqdn = if args.name.ends_with('.') {
        args.name.clone()
    } else {
        format!("{}.", args.name)
    };
    let name = Name::from_ascii(&fqdn).map_err(|e| anyhow::anyhow!("{:?}: {e}", args.name))?;
    let t0 = Instant::now();
    let ans = client::query(
        server,
        &name,
        qtype,
        args.tcp,
        Duration::from_secs_f64(args.timeout.max(0.1)),
    )
    .await?;
    let took = t0.elapsed();
    let m = &ans.message;
    if args.json {
        let rec = |r: &Record| {
            serde_json::json!({
                "name": r.name.to_ascii(), "ttl": r.ttl, "type": r.record_type().to_string(),
                "data": r.data.to_string(),
            })
        };
        let v = serde_json::json!({
            "server": server.to_string(),
            "transport": ans.transport.name(),
            "truncated_udp": ans.truncated_udp,
            "id": m.metadata.id,
            "rcode": client::rcode_name(m.metadata.response_code),
            "flags": flags(m),
            "question": m.queries.iter().map(|q| serde_json::json!({"name": q.name.to_ascii(), "type": q.query_type.to_string()})).collect::<Vec<_>>(),
            "answer": m.answers.iter().map(rec).collect::<Vec<_>>(),
            "authority": m.authorities.iter().map(rec).collect::<Vec<_>>(),
            "additional": m.additionals.iter().map(rec).collect::<Vec<_>>(),
            "ms": took.as_secs_f64() * 1e3,
        });
        println!("{v:#}");
    } else {
        print!("{}", render(m, server, &ans, took));
    }
    Ok(
        if m.metadata.response_code == hickory_proto::op::ResponseCode::NoError {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        },
    )
}

fn flags(m: &Message) -> Vec<&'static str> {
    let md = &m.metadata;
    [
        (true, "qr"),
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| f)
    .collect()
}

fn render(
    m: &Message,
    server: std::net::SocketAddr,
    ans: &client::Answer,
    took: Duration,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let how = if ans.truncated_udp {
        "TCP (the UDP answer was truncated, TC set)".to_string()
    } else {
        ans.transport.name().to_string()
    };
    let _ = writeln!(
        s,
        ";; server {server}, over {how}, {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    let _ = writeln!(
        s,
        ";; id {}  status {}  flags {}",
        m.metadata.id,
        client::rcode_name(m.metadata.response_code),
        flags(m).join(" ")
    );
    let _ = writeln!(s, "\n;; QUESTION");
    for q in &m.queries {
        let _ = writeln!(s, "{}\t\tIN\t{}", q.name, q.query_type);
    }
    for (title, recs) in [
        ("ANSWER", &m.answers),
        ("AUTHORITY", &m.authorities),
        ("ADDITIONAL", &m.additionals),
    ] {
        let _ = writeln!(s, "\n;; {title} ({})", recs.len());
        for r in recs.iter() {
            let _ = writeln!(
                s,
                "{}\t{}\tIN\t{}\t{}",
                r.name,
                r.ttl,
                r.record_type(),
                r.data
            );
        }
    }
    s
}
