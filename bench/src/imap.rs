//! `applab-bench imap`: applab's IMAP server against Dovecot (Debian's
//! package), one run, the same mailboxes.
//!
//! Both servers get identical Maildirs (U users, M messages each, written
//! byte for byte the same) and are driven by the same load: C concurrent
//! clients, each logged in as one of the users with INBOX selected, running
//! a fixed mix of the operations a mail client does most — FETCH of flags,
//! of header fields, of whole messages, STORE of flags, SEARCH, STATUS,
//! NOOP — for a set time. Rounds alternate between the servers; medians of
//! operations per second are reported with their ratio. Dovecot runs as a
//! private instance (its own config, base and log directories).

use anyhow::{bail, Context, Result};
use applab_proto::imap::{Piece, Received, Receiver, ReceiverLimits};
use applab_proto::line::LineReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(clap::Args)]
pub struct ImapArgs {
    /// The applab-node binary.
    #[arg(long)]
    node_binary: PathBuf,
    #[arg(long, default_value = "/usr/sbin/dovecot")]
    dovecot: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Mailboxes (clients are spread over them).
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Messages in each mailbox.
    #[arg(long, default_value_t = 300)]
    messages: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Measurements per server (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A child process stopped (TERM, then KILL after 5 s) when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(port: u16, what: &str, log: &Path) -> Result<()> {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(15) {
            bail!(
                "{what} did not listen on port {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A message of a few KB, varied by its number.
fn message(user: usize, n: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <sender{n}@bench.lab>\r\nFrom: Sender {n} <sender{n}@bench.lab>\r\nTo: user{user}@bench.lab\r\n\
         Subject: benchmark message {n} topic{}\r\nDate: Fri, 27 Nov 2026 10:{:02}:00 +0000\r\nMessage-ID: <{user}.{n}@bench.lab>\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        n % 17,
        n % 60
    );
    for line in 0..(20 + n % 60) {
        m.push_str(&format!(
            "Line {line} of message {n}: the quick brown fox jumps over the lazy dog.\r\n"
        ));
    }
    m.into_bytes()
}

fn fill(dir: &Path, a: &ImapArgs) -> Result<()> {
    for u in 0..a.users {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(format!("user{u}")).join(sub))?;
        }
        for n in 0..a.messages {
            let name = format!("{}.B{u}_{n:05}.bench", 1_795_800_000 + n);
            std::fs::write(dir.join(format!("user{u}/cur/{name}:2,")), message(u, n))?;
        }
    }
    Ok(())
}

fn start_applab(a: &ImapArgs, dir: &Path) -> Result<(Proc, u16)> {
    let data = dir.join("applab");
    fill(&data.join("mailboxes"), a)?;
    let users: String = (0..a.users)
        .map(|u| format!("[[users]]\nname = \"user{u}\"\npassword = \"pw{u}\"\n"))
        .collect();
    std::fs::write(dir.join("users.toml"), users)?;
    let port = free_port()?;
    let smtp = free_port()?;
    let log = dir.join("applab.log");
    let child = Command::new(&a.node_binary)
        .args(["mail", "--domain", "bench.lab", "--data"])
        .arg(&data)
        .args([
            "--smtp",
            &format!("127.0.0.1:{smtp}"),
            "--imap",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--users")
        .arg(dir.join("users.toml"))
        .args(["--max-connections", "1000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", a.node_binary.display()))?;
    let p = Proc(child);
    wait_listening(port, "applab-node mail", &log)?;
    Ok((p, port))
}

fn start_dovecot(a: &ImapArgs, dir: &Path) -> Result<(Proc, u16)> {
    let d = dir.join("dovecot");
    let home = d.join("home");
    for u in 0..a.users {
        fill(&home.join(format!("user{u}")).join("Maildir-tmp"), a)?;
        // Dovecot's layout: ~/Maildir is the INBOX.
        std::fs::rename(
            home.join(format!("user{u}/Maildir-tmp/user{u}")),
            home.join(format!("user{u}/Maildir")),
        )?;
        std::fs::remove_dir_all(home.join(format!("user{u}/Maildir-tmp")))?;
    }
    for sub in ["run", "state"] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    let passwd: String = (0..a.users)
        .map(|u| format!("user{u}:{{PLAIN}}pw{u}::::::\n"))
        .collect();
    std::fs::write(d.join("passwd"), passwd)?;
    let port = free_port()?;
    let p = d.display();
    std::fs::write(
        d.join("dovecot.conf"),
        format!(
            "base_dir = {p}/run\nstate_dir = {p}/state\nlisten = 127.0.0.1\nprotocols = imap\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\nlog_path = {p}/dovecot.log\n\
             mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {p}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={p}/home/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n  service_count = 0\n  process_min_avail = 2\n}}\n\
             service imap {{\n  process_limit = 1024\n}}\n\
             protocol imap {{\n  mail_max_userip_connections = 1000\n}}\n"
        ),
    )?;
    // The mail processes run as nobody; the login processes need the base dir.
    let st = Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(&home)
        .status()?;
    anyhow::ensure!(st.success(), "chown {}", home.display());
    for dir_ in [dir, d.as_path()] {
        let _ = Command::new("chmod").arg("755").arg(dir_).status();
    }
    let log = d.join("dovecot.log");
    let child = Command::new(&a.dovecot)
        .arg("-F")
        .arg("-c")
        .arg(d.join("dovecot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (apt-get install dovecot-imapd)",
                a.dovecot.display()
            )
        })?;
    let p = Proc(child);
    wait_listening(port, "dovecot", &log)?;
    Ok((p, port))
}

struct Client {
    sock: TcpStream,
    lines: LineReader,
    rx: Receiver,
    tag: u64,
}

impl Client {
    async fn connect(port: u16) -> Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        let mut c = Client {
            sock: s,
            lines: LineReader::new(),
            // The same receiver the server and the decoder use; literals
            // (the fetched messages) counted, not kept.
            rx: Receiver::new(ReceiverLimits::DECODER),
            tag: 0,
        };
        c.response().await?;
        Ok(c)
    }

    /// The next whole response, its literals skipped.
    async fn response(&mut self) -> Result<Vec<u8>> {
        loop {
            match self.rx.next(&mut self.lines) {
                Some(Received::Whole(a)) => match a.pieces.into_iter().next() {
                    Some(Piece::Line(l)) => return Ok(l),
                    _ => return Ok(Vec::new()),
                },
                // A response's literal follows at once: no request to answer.
                Some(Received::Continue) => {}
                Some(_) => bail!("the server sent a line over the limit"),
                None => {
                    let mut chunk = [0u8; 16384];
                    let n = self.sock.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("server closed the connection");
                    }
                    self.lines.feed(&chunk[..n]);
                }
            }
        }
    }

    /// Run a command to its tagged completion; true if OK.
    async fn cmd(&mut self, cmd: &str) -> Result<bool> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.sock
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await?;
        loop {
            let line = self.response().await?;
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                return Ok(line[tag.len() + 1..].starts_with(b"OK"));
            }
        }
    }
}

/// One client's loop: the operation mix until `until`; (ops, failures, latencies in µs).
async fn client(
    port: u16,
    id: usize,
    a_users: usize,
    messages: usize,
    until: Instant,
) -> Result<(u64, u64, Vec<u32>)> {
    let u = id % a_users;
    let mut c = Client::connect(port).await?;
    anyhow::ensure!(
        c.cmd(&format!("LOGIN user{u} pw{u}")).await?,
        "login refused"
    );
    anyhow::ensure!(c.cmd("SELECT INBOX").await?, "select refused");
    let mut seed = 0x9E3779B97F4A7C15u64 ^ id as u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ops, mut fails) = (0u64, 0u64);
    let mut lat = Vec::new();
    while Instant::now() < until {
        let pick = rnd() % 100;
        let m = 1 + (rnd() % messages as u64);
        let cmd = match pick {
            0..=24 => format!(
                "FETCH {}:{} (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
                m,
                (m + 9).min(messages as u64)
            ),
            25..=44 => format!("FETCH {m} BODY.PEEK[]"),
            45..=59 => "FETCH 1:* (FLAGS)".to_string(),
            60..=67 => format!("STORE {m} +FLAGS.SILENT (\\Flagged)"),
            68..=74 => format!("STORE {m} -FLAGS.SILENT (\\Flagged)"),
            75..=84 => format!("SEARCH SUBJECT topic{}", rnd() % 17),
            85..=89 => "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)".to_string(),
            _ => "NOOP".to_string(),
        };
        let t = Instant::now();
        if c.cmd(&cmd).await? {
            ops += 1;
        } else {
            fails += 1;
        }
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    let _ = c.cmd("LOGOUT").await;
    Ok((ops, fails, lat))
}

struct Sample {
    ops_per_s: f64,
    p99_ms: f64,
    fails: u64,
}

async fn measure(a: &ImapArgs, port: u16) -> Result<Sample> {
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| tokio::spawn(client(port, i, a.users, a.messages, until)))
        .collect();
    let (mut ops, mut fails, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await??;
        ops += o;
        fails += f;
        lat.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or(0) as f64 / 1e3;
    Ok(Sample {
        ops_per_s: ops as f64 / secs,
        p99_ms: p99,
        fails,
    })
}

pub fn run(a: ImapArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_applab, ours_port) = start_applab(&a, dir.path())?;
    let (_dovecot, theirs_port) = start_dovecot(&a, dir.path())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // One warm-up each: the first SELECT builds the indexes (both servers).
    rt.block_on(async {
        let w = ImapArgs {
            seconds: 1,
            ..a.clone_for_warmup()
        };
        measure(&w, ours_port).await?;
        measure(&w, theirs_port).await
    })?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_applab in order {
            let port = if is_applab { ours_port } else { theirs_port };
            let s = rt.block_on(measure(&a, port))?;
            eprintln!(
                "  {:<8} round {}: {:>8.0} ops/s  p99 {:>6.2} ms  failures {}",
                if is_applab { "applab" } else { "dovecot" },
                round + 1,
                s.ops_per_s,
                s.p99_ms,
                s.fails
            );
            if is_applab {
                ours.push(s)
            } else {
                theirs.push(s)
            }
        }
    }
    let med =
        |v: &[Sample], f: fn(&Sample) -> f64| crate::origin::median(v.iter().map(f).collect());
    let (o, t) = (med(&ours, |s| s.ops_per_s), med(&theirs, |s| s.ops_per_s));
    let (op, tp) = (med(&ours, |s| s.p99_ms), med(&theirs, |s| s.p99_ms));
    let fails = (
        ours.iter().map(|s| s.fails).sum::<u64>(),
        theirs.iter().map(|s| s.fails).sum::<u64>(),
    );
    if a.json {
        println!(
            "{:#}",
            serde_json::json!({
                "clients": a.clients, "users": a.users, "messages": a.messages, "seconds": a.seconds, "rounds": a.rounds,
                "applab": {"ops_per_s": o, "p99_ms": op, "failures": fails.0},
                "dovecot": {"ops_per_s": t, "p99_ms": tp, "failures": fails.1},
                "throughput_ratio": o / t,
            })
        );
    } else {
        println!(
            "IMAP, {} clients on {} mailboxes of {} messages, median of {} x {} s:",
            a.clients, a.users, a.messages, a.rounds, a.seconds
        );
        println!(
            "  applab   {o:>8.0} ops/s  p99 {op:>6.2} ms  failures {}",
            fails.0
        );
        println!(
            "  dovecot  {t:>8.0} ops/s  p99 {tp:>6.2} ms  failures {}",
            fails.1
        );
        println!("  ratio applab/dovecot: {:.3}", o / t);
    }
    Ok(())
}

impl ImapArgs {
    fn clone_for_warmup(&self) -> ImapArgs {
        ImapArgs {
            node_binary: self.node_binary.clone(),
            dovecot: self.dovecot.clone(),
            clients: self.clients,
            users: self.users,
            messages: self.messages,
            seconds: self.seconds,
            rounds: 1,
            json: self.json,
        }
    }
}
