//! `applab-bench smtp`: applab's mail server against Postfix (Debian's
//! package), one run, the same durability.
//!
//! Two figures. **Accepted per second**: Postfix's own load generator,
//! smtp-source, sends M messages over C concurrent sessions (connections
//! reused) to each server for a local Maildir user; the clock runs from its
//! start until every message is in the Maildir, so both servers pay the
//! same: the queue file on disk (fsynced) before the 250, the delivery
//! into the Maildir (fsynced). **Relay latency**: single messages for a
//! remote domain, from the 250 the client reads to the moment the next
//! server (a sink of ours, the same for both) has the whole message. Postfix
//! reaches the sink through a transport map, applab through its MX in DNS
//! (one lookup per relay, which Postfix is spared). Rounds alternate
//! between the servers; medians are reported with their ratios.

use crate::imap::Proc;
use crate::origin::{free_port, wait_listening_at};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SmtpArgs {
    /// The applab-node binary.
    #[arg(long)]
    node_binary: PathBuf,
    /// smtp-source's concurrent sessions.
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// Messages per throughput measurement.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Size of each message in bytes (smtp-source -l).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Messages relayed one at a time for the latency figure.
    #[arg(long, default_value_t = 50)]
    relays: usize,
    /// Measurements per server (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the servers' folders and logs (applab's at info level) and
    /// print where they are.
    #[arg(long)]
    keep: bool,
}

/// The sink that plays "the other domain's server": it answers SMTP and
/// notes when each message (by its `X-Bench-Seq`) arrived whole.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn sink(listener: TcpListener, arrivals: Arrivals) {
    for conn in listener.incoming().flatten() {
        let arrivals = arrivals.clone();
        std::thread::spawn(move || {
            let _ = sink_session(conn, &arrivals);
        });
    }
}

fn sink_session(conn: TcpStream, arrivals: &Arrivals) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    w.write_all(b"220 sink.lab ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => w.write_all(b"250-sink.lab\r\n250 PIPELINING\r\n")?,
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                let mut seq = None;
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("X-Bench-Seq: ") {
                        seq = Some(v.trim().to_string());
                    }
                }
                if let Some(s) = seq {
                    arrivals.lock().expect("arrivals").insert(s, Instant::now());
                }
                w.write_all(b"250 2.0.0 ok\r\n")?;
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => w.write_all(b"250 ok\r\n")?,
        }
    }
}

/// The same services as the Postfix interoperability test's instance.
const POSTFIX_SERVICES: &str = include_str!("../../crates/node/tests/clients/postfix-services.cf");

struct Postfix(PathBuf);

impl Postfix {
    fn ctl(&self, verb: &str) -> Result<()> {
        let out = Command::new("postfix")
            .arg("-c")
            .arg(self.0.join("conf"))
            .arg(verb)
            .output()
            .context("postfix is installed (bench/smtp installs it)")?;
        if !out.status.success() {
            bail!(
                "postfix {verb}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.ctl("stop");
    }
}

/// Postfix as a private instance for a.lab on 127.0.0.3: virtual
/// Maildir delivery for bob, sink.lab through a transport map.
fn start_postfix(dir: &Path, port: u16, sink_port: u16) -> Result<Postfix> {
    for sub in ["conf", "queue", "data", "vmail"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let run = |c: &mut Command| -> Result<()> {
        anyhow::ensure!(c.status()?.success(), "{c:?}");
        Ok(())
    };
    run(Command::new("chown").arg("postfix").arg(dir.join("data")))?;
    run(Command::new("chown").arg("nobody").arg(dir.join("vmail")))?;
    run(Command::new("chmod").arg("755").arg(dir))?;
    let p = dir.display();
    std::fs::write(
        dir.join("conf/main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {p}/queue\ndata_directory = {p}/data\n\
             mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mail.a.lab\n\
             mydomain = a.lab\nmyorigin = a.lab\nmydestination =\ninet_interfaces = loopback-only\n\
             inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             virtual_mailbox_domains = a.lab\nvirtual_mailbox_base = {p}/vmail\n\
             virtual_mailbox_maps = texthash:{p}/conf/vmailbox\nvirtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\ntransport_maps = texthash:{p}/conf/transport\n\
             maillog_file = {p}/maillog\nmaillog_file_prefixes = /tmp, /var\n\
             disable_dns_lookups = yes\nsmtpd_client_connection_count_limit = 0\n\
             smtpd_client_message_rate_limit = 0\ndefault_process_limit = 200\n\
             alias_maps =\nalias_database =\nbiff = no\n"
        ),
    )?;
    std::fs::write(dir.join("conf/vmailbox"), "bob@a.lab bob/Maildir/\n")?;
    std::fs::write(
        dir.join("conf/transport"),
        format!("sink.lab smtp:[127.0.0.5]:{sink_port}\n"),
    )?;
    std::fs::write(
        dir.join("conf/master.cf"),
        format!(
            "127.0.0.3:{port} inet n - n - - smtpd\n{}",
            POSTFIX_SERVICES
        ),
    )?;
    let pf = Postfix(dir.to_path_buf());
    pf.ctl("start")?;
    wait_listening_at(&format!("127.0.0.3:{port}"), "postfix")?;
    Ok(pf)
}

/// applab's mail role for a.lab on 127.0.0.1, with its DNS (sink.lab's MX
/// is the sink).
fn start_applab(a: &SmtpArgs, dir: &Path, port: u16, sink_port: u16) -> Result<(Proc, Proc)> {
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones)?;
    std::fs::write(
        zones.join("sink.lab.zone"),
        "$ORIGIN sink.lab.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 30\n\
         @ IN MX 10 mx\nmx IN A 127.0.0.5\n",
    )?;
    std::fs::write(
        dir.join("users.toml"),
        "[[users]]\nname = \"bob\"\npassword = \"bob-pw\"\n",
    )?;
    let dns_addr = format!("127.0.0.1:{}", free_port()?);
    let log = |name: &str| std::fs::File::create(dir.join(name));
    let dns = Proc(
        Command::new(&a.node_binary)
            .args(["dns", "--listen", &dns_addr, "--zones"])
            .arg(&zones)
            .stdout(Stdio::null())
            .stderr(log("dns.log")?)
            .spawn()
            .context("applab-node dns")?,
    );
    let smtp = format!("127.0.0.1:{port}");
    let mail = Proc(
        Command::new(&a.node_binary)
            .args(["mail", "--domain", "a.lab", "--smtp", &smtp])
            .args(["--resolver", &dns_addr, "--relay-from", "127.0.0.0/8"])
            .args(["--relay-port", &sink_port.to_string()])
            .args(["--max-connections", "1000"])
            .args(["--pop3", &format!("127.0.0.1:{}", free_port()?)])
            .args(["--imap", &format!("127.0.0.1:{}", free_port()?)])
            .arg("--users")
            .arg(dir.join("users.toml"))
            .arg("--data")
            .arg(dir.join("data"))
            .env("RUST_LOG", if a.keep { "info" } else { "warn" })
            .stdout(Stdio::null())
            .stderr(log("mail.log")?)
            .spawn()
            .context("applab-node mail")?,
    );
    wait_listening_at(&smtp, "applab")?;
    Ok((dns, mail))
}

fn maildir_count(md: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|s| std::fs::read_dir(md.join(s)).map_or(0, |r| r.count()))
        .sum()
}

/// smtp-source's M messages to `host` until all are in `maildir`: messages/s.
fn throughput(a: &SmtpArgs, host: &str, maildir: &Path) -> Result<f64> {
    let before = maildir_count(maildir);
    let t = Instant::now();
    let out = Command::new("smtp-source")
        .args(["-d", "-s", &a.sessions.to_string()])
        .args(["-m", &a.messages.to_string(), "-l", &a.size.to_string()])
        .args([
            "-f",
            "alice@client.lab",
            "-t",
            "bob@a.lab",
            "-M",
            "client.lab",
        ])
        .arg(host)
        .output()
        .context("smtp-source (Debian's postfix package)")?;
    if !out.status.success() {
        bail!("smtp-source: {}", String::from_utf8_lossy(&out.stderr));
    }
    while maildir_count(maildir) < before + a.messages {
        if t.elapsed() > Duration::from_secs(300) {
            bail!(
                "{host}: {} of {} messages delivered",
                maildir_count(maildir) - before,
                a.messages
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(a.messages as f64 / t.elapsed().as_secs_f64())
}

/// Wait until the server's queue holds nothing (applab: its queue folder;
/// Postfix: `postqueue -p`).
fn wait_queue_empty(applab: bool, root: &Path) -> Result<()> {
    let t = Instant::now();
    loop {
        let empty = if applab {
            std::fs::read_dir(root.join("applab/data/queue"))?
                .next()
                .is_none()
        } else {
            let out = Command::new("postqueue")
                .arg("-c")
                .arg(root.join("postfix/conf"))
                .arg("-p")
                .output()?;
            String::from_utf8_lossy(&out.stdout).contains("Mail queue is empty")
        };
        if empty {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the queue never emptied");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One message at a time for sink.lab: ms from the 250 to the sink.
fn relay_latency(a: &SmtpArgs, host: &str, tag: &str, arrivals: &Arrivals) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    let s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut reply = || -> Result<String> {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if r.read_line(&mut l)? == 0 {
                bail!("{host} closed the connection");
            }
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    w.write_all(b"EHLO client.lab\r\n")?;
    reply()?;
    for i in 0..a.relays {
        let seq = format!("{tag}-{i}");
        w.write_all(b"MAIL FROM:<alice@a.lab>\r\nRCPT TO:<carol@sink.lab>\r\nDATA\r\n")?;
        for _ in 0..3 {
            reply()?;
        }
        w.write_all(
            format!(
                "From: alice@a.lab\r\nTo: carol@sink.lab\r\nSubject: relay {seq}\r\n\
                 Message-ID: <{seq}@client.lab>\r\nX-Bench-Seq: {seq}\r\n\r\nbody\r\n.\r\n"
            )
            .as_bytes(),
        )?;
        let rep = reply()?;
        if !rep.starts_with("250") {
            bail!("{host}: {rep}");
        }
        let acked = Instant::now();
        let t = Instant::now();
        let arrived = loop {
            if let Some(at) = arrivals.lock().expect("arrivals").get(&seq) {
                break *at;
            }
            if t.elapsed() > Duration::from_secs(20) {
                bail!("{host}: relay {seq} never reached the sink");
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        out.push(arrived.saturating_duration_since(acked).as_secs_f64() * 1e3);
    }
    let _ = w.write_all(b"QUIT\r\n");
    Ok(out)
}

fn percentile(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

pub fn run(a: SmtpArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().to_path_buf();
    // Kept: the folder outlives the run.
    let _guard = if a.keep {
        eprintln!("keeping the servers' folders in {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let sink_port = free_port()?;
    let listener = TcpListener::bind(("127.0.0.5", sink_port))?;
    let arrivals: Arrivals = Arc::default();
    {
        let arrivals = arrivals.clone();
        std::thread::spawn(move || sink(listener, arrivals));
    }
    let port = free_port()?;
    let _applab = start_applab(&a, &root.join("applab"), port, sink_port)?;
    let _postfix = start_postfix(&root.join("postfix"), port, sink_port)?;
    let ours = format!("127.0.0.1:{port}");
    let theirs = format!("127.0.0.3:{port}");
    let our_md = root.join("applab/data/mailboxes/bob");
    let their_md = root.join("postfix/vmail/bob/Maildir");
    let (mut tput, mut lat) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..a.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let (host, md, name) = if k == 0 {
                (&ours, &our_md, "applab")
            } else {
                (&theirs, &their_md, "postfix")
            };
            let rate = throughput(&a, host, md)?;
            // Latency from a settled server: the burst's bookkeeping done.
            wait_queue_empty(k == 0, &root)?;
            let l = relay_latency(&a, host, &format!("{name}{round}"), &arrivals)?;
            let (p50, p99) = (percentile(l.clone(), 50), percentile(l.clone(), 99));
            eprintln!(
                "  {name:<8} round {}: {rate:>7.0} messages/s accepted and stored  relay p50 {p50:>6.2} ms  p99 {p99:>6.2} ms",
                round + 1
            );
            tput[k].push(rate);
            lat[k].extend(l);
        }
    }
    let med = |v: &[f64]| crate::origin::median(v.to_vec());
    let (ot, tt) = (med(&tput[0]), med(&tput[1]));
    let (o50, t50) = (
        percentile(lat[0].clone(), 50),
        percentile(lat[1].clone(), 50),
    );
    let (o99, t99) = (
        percentile(lat[0].clone(), 99),
        percentile(lat[1].clone(), 99),
    );
    if a.json {
        println!(
            "{:#}",
            serde_json::json!({
                "sessions": a.sessions, "messages": a.messages, "size": a.size,
                "relays": a.relays, "rounds": a.rounds,
                "applab": {"messages_per_s": ot, "relay_p50_ms": o50, "relay_p99_ms": o99},
                "postfix": {"messages_per_s": tt, "relay_p50_ms": t50, "relay_p99_ms": t99},
                "throughput_ratio": ot / tt,
                "relay_p50_ratio": o50 / t50,
            })
        );
    } else {
        println!(
            "SMTP, smtp-source -s {} -m {} -l {}, median of {} rounds; {} relays one at a time:",
            a.sessions, a.messages, a.size, a.rounds, a.relays
        );
        println!("  applab   {ot:>7.0} messages/s  relay p50 {o50:>6.2} ms  p99 {o99:>6.2} ms");
        println!("  postfix  {tt:>7.0} messages/s  relay p50 {t50:>6.2} ms  p99 {t99:>6.2} ms");
        println!(
            "  ratio applab/postfix: throughput {:.3}, relay latency p50 {:.3} (lower is better)",
            ot / tt,
            o50 / t50
        );
    }
    Ok(())
}
