//! `applab-bench origin`: applab's origin against nginx, with wrk, one run.
//!
//! Both servers serve the same folder of small files on loopback, with the
//! same number of worker threads (nginx: worker processes), the same
//! persistent-connection limit, and the same logging: each writes one line
//! per request to a file, gathered in a 64 KiB buffer written at least
//! every 100 ms (nginx's `buffer=64k flush=100ms`, applab's log batching). wrk drives each in turn with keep-alive and with
//! `Connection: close`, the rounds interleaved so drift hits both alike.

use anyhow::{bail, Context, Result};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How both sides of a wrk comparison are run: the same workers each,
/// the same load, the same number of alternating rounds.
#[derive(clap::Args)]
pub struct WrkArgs {
    /// Worker threads for applab; worker processes or threads for the peer.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// wrk threads and connections.
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: usize,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Measurements per server and mode (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(clap::Args)]
pub struct OriginArgs {
    /// The applab-node binary.
    #[arg(long)]
    node_binary: PathBuf,
    /// nginx binary (Debian's package).
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    #[command(flatten)]
    wrk: WrkArgs,
    /// Size of the object requested, in bytes.
    #[arg(long, default_value_t = 1024)]
    object_bytes: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // nginx's master stops its workers on TERM; kill -9 would orphan them.
        unsafe_term(self.child.id());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn wait_listening(port: u16, what: &str) -> Result<()> {
    wait_listening_at(&format!("127.0.0.1:{port}"), what)
}

/// Wait until `addr` accepts a connection (10 s at most).
pub fn wait_listening_at(addr: &str, what: &str) -> Result<()> {
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("{what} did not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

const KEEPALIVE_REQUESTS: u32 = 1000;
const KEEPALIVE_TIMEOUT: u32 = 15;

fn start_applab(a: &OriginArgs, root: &Path, log: &Path) -> Result<Server> {
    let port = free_port()?;
    let child = Command::new(&a.node_binary)
        .arg("origin")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--root")
        .arg(root)
        .args(["--threads", &a.wrk.workers.to_string()])
        .args(["--max-requests", &KEEPALIVE_REQUESTS.to_string()])
        .args(["--idle-timeout", &KEEPALIVE_TIMEOUT.to_string()])
        .args(["--max-connections", "4096"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", a.node_binary.display()))?;
    let s = Server { child, port };
    wait_listening(port, "applab-node origin")?;
    Ok(s)
}

fn start_nginx(a: &OriginArgs, root: &Path, dir: &Path) -> Result<Server> {
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    // Debian's defaults, minus what the comparison must hold equal.
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nworker_processes {w};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log {d}/access.log combined buffer=64k flush=100ms;\n  sendfile on;\n  tcp_nopush on;\n  types {{ text/html html; image/jpeg jpg; }}\n\
               keepalive_requests {kr};\n  keepalive_timeout {kt}s;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            w = a.wrk.workers,
            d = dir.display(),
            kr = KEEPALIVE_REQUESTS,
            kt = KEEPALIVE_TIMEOUT,
            root = root.display(),
        ),
    )?;
    let child = Command::new(&a.nginx)
        .arg("-c")
        .arg(&conf)
        .args(["-e", &dir.join("error.log").to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (apt-get install nginx-light)",
                a.nginx.display()
            )
        })?;
    let s = Server { child, port };
    wait_listening(port, "nginx")?;
    Ok(s)
}

#[derive(Clone, Copy, Default, serde::Serialize)]
pub struct Sample {
    pub rps: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

fn wrk(a: &OriginArgs, port: u16, keepalive: bool) -> Result<Sample> {
    let mut extra = Vec::new();
    if !keepalive {
        extra.extend(["-H".to_string(), "Connection: close".to_string()]);
    }
    extra.push(format!("http://127.0.0.1:{port}/object.html"));
    wrk_sample(a.wrk.wrk_threads, a.wrk.connections, a.wrk.seconds, &extra)
}

/// Run wrk (`extra`: its remaining arguments, the URL last) and read its
/// requests per second, 99th percentile and errors.
pub fn wrk_sample(
    threads: usize,
    connections: usize,
    seconds: u64,
    extra: &[String],
) -> Result<Sample> {
    let mut c = Command::new("wrk");
    c.args(["-t", &threads.to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s")])
        .arg("--latency")
        .args(extra);
    let out = c.output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency_ms(v.trim()))
        .with_context(|| format!("no 99% latency in wrk output:\n{text}"))??;
    // Socket errors and non-2xx answers both count against a server.
    let mut errors = 0;
    for l in text.lines() {
        if let Some(v) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(v) = l.trim().strip_prefix("Socket errors:") {
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    // "connect 0, read 0, write 0, timeout 0": reads count
                    // the server's closes under Connection: close; skip them.
                    if !part.trim().starts_with("read") {
                        errors += n.parse::<u64>().unwrap_or(0);
                    }
                }
            }
        }
    }
    Ok(Sample {
        rps,
        p99_ms: p99,
        errors,
    })
}

fn parse_latency_ms(v: &str) -> Result<f64> {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        bail!("latency {v:?}")
    };
    Ok(num.parse::<f64>()? * mult)
}

/// Medians of applab's and the peer's samples: (applab, peer).
pub struct Compared {
    pub rps: (f64, f64),
    pub p99: (f64, f64),
    pub errors: (u64, u64),
}

/// `rounds` samples of applab (`sample(true)`) and of the peer, the order
/// alternating each round so drift hits both alike; each one printed.
pub fn interleaved(
    rounds: usize,
    mode: &str,
    peer: &str,
    mut sample: impl FnMut(bool) -> Result<Sample>,
) -> Result<Compared> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for mine in order {
            let s = sample(mine)?;
            eprintln!(
                "  {mode:<10} {:<8} round {}: {:>9.0} req/s  p99 {:>7.2} ms  errors {}",
                if mine { "applab" } else { peer },
                round + 1,
                s.rps,
                s.p99_ms,
                s.errors
            );
            if mine {
                ours.push(s)
            } else {
                theirs.push(s)
            }
        }
    }
    let med = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
    Ok(Compared {
        rps: (med(&ours, |s| s.rps), med(&theirs, |s| s.rps)),
        p99: (med(&ours, |s| s.p99_ms), med(&theirs, |s| s.p99_ms)),
        errors: (
            ours.iter().map(|s| s.errors).sum(),
            theirs.iter().map(|s| s.errors).sum(),
        ),
    })
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(a: OriginArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    let body: String = "applab origin benchmark object. "
        .chars()
        .cycle()
        .take(a.object_bytes)
        .collect();
    std::fs::write(root.join("object.html"), &body)?;
    let ngx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&ngx_dir)?;
    let applab_log = dir.path().join("applab.log");
    let applab = start_applab(&a, &root, &applab_log)?;
    let nginx = start_nginx(&a, &root, &ngx_dir)?;
    let mut results = serde_json::Map::new();
    let mut table = Vec::new();
    for (mode, keepalive) in [("keep-alive", true), ("close", false)] {
        let c = interleaved(a.wrk.rounds, mode, "nginx", |mine| {
            wrk(&a, if mine { applab.port } else { nginx.port }, keepalive)
        })?;
        let (o_rps, n_rps, o_p99, n_p99, errors) = (c.rps.0, c.rps.1, c.p99.0, c.p99.1, c.errors);
        table.push((mode, o_rps, n_rps, o_p99, n_p99, errors));
        results.insert(
            mode.to_string(),
            serde_json::json!({
                "applab": {"rps": o_rps, "p99_ms": o_p99, "errors": errors.0},
                "nginx": {"rps": n_rps, "p99_ms": n_p99, "errors": errors.1},
                "throughput_ratio": o_rps / n_rps,
                "p99_ratio": o_p99 / n_p99,
            }),
        );
    }
    let logged = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let (ours_lines, nginx_lines) = (logged(&applab_log), logged(&ngx_dir.join("access.log")));
    drop(applab);
    drop(nginx);
    if a.json {
        results.insert(
            "log_lines".into(),
            serde_json::json!({"applab": ours_lines, "nginx": nginx_lines}),
        );
        println!("{}", serde_json::Value::Object(results));
        return Ok(());
    }
    println!(
        "origin vs nginx: {} B object, {} workers each, wrk -t{} -c{} -d{}s, median of {}",
        a.object_bytes,
        a.wrk.workers,
        a.wrk.wrk_threads,
        a.wrk.connections,
        a.wrk.seconds,
        a.wrk.rounds
    );
    println!(
        "{:<11} {:>12} {:>12} {:>7} {:>11} {:>11} {:>7} {:>9}",
        "mode",
        "applab req/s",
        "nginx req/s",
        "ratio",
        "applab p99",
        "nginx p99",
        "ratio",
        "errors"
    );
    for (mode, o, n, op, np, e) in table {
        println!(
            "{mode:<11} {o:>12.0} {n:>12.0} {:>7.3} {:>8.2} ms {:>8.2} ms {:>7.3} {:>4}/{:<4}",
            o / n,
            op,
            np,
            op / np,
            e.0,
            e.1
        );
    }
    println!("log lines written: applab {ours_lines}, nginx {nginx_lines} (one per request each)");
    Ok(())
}
