//! The panel at class size: `applab serve` with N logged-in students, each
//! with a live packet stream open, while a model student's traffic flows;
//! page loads of the task and packet pages meanwhile; then consoles with
//! keystroke echo. Peers in the same run: a static asset from the same
//! server (the floor of a page load) and a raw Docker exec with a TTY into
//! the same workstations (the floor of a console's echo). Last, the
//! instructor's class grid (students × 10 tasks) with G instructors' grids
//! open while answers turn cells to pass; its peer is the same matrix as
//! JSON from the API (the data without the page).

use anyhow::{bail, Context, Result};
use applab_runtime::Runtime;
use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct PanelArgs {
    /// Logged-in students, each with a live packet stream.
    #[arg(long, default_value_t = 300)]
    students: usize,
    /// Consoles open at once (on as many students' workstations).
    #[arg(long, default_value_t = 100)]
    consoles: usize,
    /// Seconds of model traffic and page loads.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Page loads in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Instructors with the class grid open (a live stream each).
    #[arg(long, default_value_t = 20)]
    grids: usize,
    #[arg(long)]
    applab: PathBuf,
    #[arg(long)]
    node_binary: PathBuf,
    #[arg(long, default_value = "images")]
    images: PathBuf,
    #[arg(long, default_value = "labs/http-basics")]
    lab: PathBuf,
    #[arg(long)]
    json: bool,
}

/// A class lab with one node per student: the workstation (the consoles'
/// and streams' load without an origin each).
const CLASS_LAB: &str = r#"
[lab]
name = "panel-bench"
title = "Panel bench"
description = "A workstation per student."
[[networks]]
name = "net"
[[nodes]]
name = "ws"
role = "workstation"
limits = { memory = "16M", cpus = 0.1, pids = 32 }
[[nodes.attach]]
network = "net"
[[tasks]]
id = "t"
title = "A task"
file = "t.md"
[[tasks.checks]]
id = "c"
expect = "a request"
[tasks.checks.events]
match = { type = "http_request" }
"#;

/// Nine more tasks, each passed by answering its question: what the grid
/// bench turns to pass while instructors watch.
fn class_lab() -> String {
    let mut lab = CLASS_LAB.to_string();
    for i in 1..=9 {
        lab.push_str(&format!(
            "\n[[tasks]]\nid = \"q{i}\"\ntitle = \"Question {i}\"\nfile = \"t.md\"\n\
             [[tasks.checks]]\nid = \"a\"\nexpect = \"the answer\"\nanswer = \"q\"\n\
             [[tasks.questions]]\nid = \"q\"\ntext = \"What is {i} + 1?\"\nexpected = \"{}\"\n",
            i + 1
        ));
    }
    lab
}

struct Serve {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
    applab: PathBuf,
}

impl Serve {
    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.applab)
            .args(args)
            .env("APPLAB_URL", format!("http://127.0.0.1:{}", self.port))
            .env("APPLAB_DATA", self.data.path())
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!("applab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        for run in ["class", "model"] {
            let _ = self.cli(&["teardown", "--run", run]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_ticks(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 (here 11 and 12 after the name).
    (t(11) + t(12)) / 100.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn roster(path: &Path, ids: &[String]) -> Result<()> {
    let mut t = String::from("id,name,email\n");
    for id in ids {
        t.push_str(&format!("{id},{id},{id}@uni.example\n"));
    }
    std::fs::write(path, t)?;
    Ok(())
}

fn passwords(csv: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(csv)?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.get(1)?.to_string(), f.get(4)?.to_string()))
        })
        .collect())
}

struct Http {
    base: String,
    c: reqwest::Client,
}

impl Http {
    async fn login(&self, id: &str, password: &str) -> Result<String> {
        self.login_at("/login", id, password).await
    }

    async fn login_at(&self, form_path: &str, id: &str, password: &str) -> Result<String> {
        let form = self
            .c
            .get(format!("{}{form_path}", self.base))
            .send()
            .await?;
        let login_cookie = form
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("applab_login="))
            .and_then(|v| v.split(';').next())
            .context("no login cookie")?
            .to_string();
        let body = form.text().await?;
        let token = body
            .split(r#"name="token" value=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .context("no login token")?
            .to_string();
        let r = self
            .c
            .post(format!("{}{form_path}", self.base))
            .header("cookie", format!("applab_login={login_cookie}"))
            .form(&[("id", id), ("password", password), ("token", &token)])
            .send()
            .await?;
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("applab_session="))
            .and_then(|v| v.split(';').next())
            .map(|v| format!("applab_session={v}"))
            .with_context(|| format!("{id} did not log in ({})", r.status()))
    }

    async fn timed_get(&self, path: &str, cookie: &str) -> Result<f64> {
        let t = Instant::now();
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .header("accept", "text/html")
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{path}: {}", r.status());
        }
        r.bytes().await?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Read one SSE stream at `path`; for every message's JSON, record now
/// minus its time field (`field`: "t" for packets, "at" for the grid).
async fn stream(
    http: Arc<Http>,
    cookie: String,
    path: &'static str,
    field: &'static str,
    lat: Arc<Mutex<Vec<f64>>>,
    until: Instant,
) {
    let Ok(mut r) = http
        .c
        .get(format!("{}{path}", http.base))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
    else {
        return;
    };
    let mut buf = String::new();
    while Instant::now() < until {
        let chunk = match tokio::time::timeout(until - Instant::now(), r.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let msg: String = buf.drain(..i + 2).collect();
            for l in msg.lines() {
                if let Some(d) = l.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(d) {
                        if let Some(t) = v[field].as_f64() {
                            lat.lock().unwrap().push((now() - t) * 1000.0);
                        }
                    }
                }
            }
        }
    }
}

/// Keystroke echo through the panel's console: ms from sending a letter to
/// seeing it come back.
async fn console_echo(
    port: u16,
    cookie: String,
    rounds: usize,
    all_open: Arc<tokio::sync::Barrier>,
) -> Result<Vec<f64>> {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let mut req = format!("ws://127.0.0.1:{port}/console/ws").into_client_request()?;
    req.headers_mut().insert("cookie", cookie.parse()?);
    let mut ws = match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            all_open.wait().await;
            bail!("console socket: {e}");
        }
    };
    // Wait for the prompt.
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                seen.push_str(&String::from_utf8_lossy(&b[1..]));
                if seen.contains("# ") {
                    break;
                }
            }
        }
    })
    .await;
    // Every console is open before any is timed (one that failed still
    // waits here, so the others are not held up).
    all_open.wait().await;
    if !seen.contains("# ") {
        bail!("no prompt within 30 s");
    }
    let mut out = Vec::new();
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    for i in 0..rounds {
        let ch = letters[i % letters.len()] as char;
        let t = Instant::now();
        ws.send(Message::Text(format!("0{ch}").into())).await?;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Binary(b) = m {
                    if b[1..].contains(&(ch as u8)) {
                        break;
                    }
                }
            }
        })
        .await
        .context("no echo")?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Clear the line and leave.
    let _ = ws.send(Message::Text("0\u{15}".into())).await;
    let _ = ws.close(None).await;
    Ok(out)
}

/// The same keystrokes through a raw Docker exec with a TTY (no panel).
async fn raw_echo(container: String, rounds: usize) -> Result<Vec<f64>> {
    use tokio::io::AsyncWriteExt;
    let rt = applab_runtime::docker::DockerRuntime::connect().await?;
    let c = rt.inspect_container(&container).await?;
    let mut tty = rt
        .exec_tty(&c.id, &["/bin/sh".into()], &["ENV=".into()], 80, 24)
        .await?;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(b)) = tty.output.next().await {
            seen.extend_from_slice(&b);
            if seen.windows(2).any(|w| w == b"# ") {
                break;
            }
        }
    })
    .await
    .context("no prompt (raw)")?;
    let mut out = Vec::new();
    for i in 0..rounds {
        let ch = b"abcdefghijklmnopqrstuvwxyz"[i % 26];
        let t = Instant::now();
        tty.input.write_all(&[ch]).await?;
        tty.input.flush().await?;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(b)) = tty.output.next().await {
                if b.contains(&ch) {
                    break;
                }
            }
        })
        .await
        .context("no echo (raw)")?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tty.input.write_all(b"\x15exit\r").await;
    Ok(out)
}

pub async fn run(a: PanelArgs) -> Result<()> {
    let data = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(data.path().join("serve.log"))?;
    let child = Command::new(&a.applab)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--data",
            data.path().to_str().unwrap(),
            "--pool",
            "10.240.0.0/14",
        ])
        .args(["--prefix", "28", "--interval", "30"])
        .env("APPLAB_IMAGES", &a.images)
        .env("APPLAB_NODE_BINARY", &a.node_binary)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting applab serve")?;
    let pid = child.id();
    let serve = Serve {
        child,
        port,
        data,
        applab: a.applab.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("applab serve did not come up");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = serve.data.path();
    let class_dir = dir.join("class-lab");
    std::fs::create_dir_all(&class_dir)?;
    std::fs::write(class_dir.join("lab.toml"), class_lab())?;
    std::fs::write(class_dir.join("t.md"), "Bench task.\n")?;
    let ids: Vec<String> = (0..a.students).map(|i| format!("s{i:03}")).collect();
    roster(&dir.join("class.csv"), &ids)?;
    roster(&dir.join("model.csv"), &["model".to_string()])?;
    let t = Instant::now();
    eprintln!(
        "launching {} students (one workstation each) and a model student…",
        a.students
    );
    serve.cli(&[
        "launch",
        class_dir.to_str().unwrap(),
        "--run",
        "class",
        "--roster",
        dir.join("class.csv").to_str().unwrap(),
        "--credentials-out",
        dir.join("class-creds.csv").to_str().unwrap(),
    ])?;
    let lab = a.lab.canonicalize()?;
    serve.cli(&[
        "launch",
        lab.to_str().unwrap(),
        "--run",
        "model",
        "--roster",
        dir.join("model.csv").to_str().unwrap(),
        "--credentials-out",
        dir.join("model-creds.csv").to_str().unwrap(),
    ])?;
    let launched = t.elapsed().as_secs_f64();
    let http = Arc::new(Http {
        base: format!("http://127.0.0.1:{port}"),
        c: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()?,
    });
    let class = passwords(&dir.join("class-creds.csv"))?;
    let model = passwords(&dir.join("model-creds.csv"))?;
    let t = Instant::now();
    let mut cookies = Vec::new();
    for chunk in class.chunks(8) {
        let logins = chunk.iter().map(|(id, pw)| http.login(id, pw));
        for c in futures_util::future::join_all(logins).await {
            cookies.push(c?);
        }
    }
    let model_cookie = http.login(&model[0].0, &model[0].1).await?;
    let login_s = t.elapsed().as_secs_f64();
    eprintln!(
        "{} students logged in in {login_s:.1} s; streams open, model traffic for {} s…",
        cookies.len() + 1,
        a.seconds
    );

    // Every student's stream open; the model's read for latency.
    let until = Instant::now() + Duration::from_secs(a.seconds + 5);
    let lat = Arc::new(Mutex::new(Vec::new()));
    let idle = Arc::new(Mutex::new(Vec::new()));
    let mut streams = Vec::new();
    for c in &cookies {
        streams.push(tokio::spawn(stream(
            http.clone(),
            c.clone(),
            "/packets/stream",
            "t",
            idle.clone(),
            until,
        )));
    }
    for _ in 0..3 {
        streams.push(tokio::spawn(stream(
            http.clone(),
            model_cookie.clone(),
            "/packets/stream",
            "t",
            lat.clone(),
            until,
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    // The model student's traffic: the lab's page fetches, over and over.
    let traffic = {
        let (applab, port, data) = (a.applab.clone(), port, dir.to_path_buf());
        let secs = a.seconds;
        std::thread::spawn(move || {
            Command::new(applab)
                .args(["exec", "model", "ws", "--run", "model", "--", "sh", "-c"])
                .arg(format!(
                    "end=$(( $(date +%s) + {secs} )); while [ $(date +%s) -lt $end ]; do http --page http://origin/index.html >/dev/null; http --page --no-keepalive http://origin/index.html >/dev/null; done"
                ))
                .env("APPLAB_URL", format!("http://127.0.0.1:{port}"))
                .env("APPLAB_DATA", data)
                .output()
        })
    };
    // Page loads meanwhile: task and packet pages of random students.
    let mut task_ms = Vec::new();
    let mut packets_ms = Vec::new();
    let mut static_ms = Vec::new();
    let mut i = 0usize;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        let mut batch = Vec::new();
        for k in 0..a.concurrency {
            let n = (i * 7919 + k) % (cookies.len() + 1);
            let is_model = n == cookies.len();
            let cookie = if is_model {
                model_cookie.clone()
            } else {
                cookies[n].clone()
            };
            let (h, kind) = (http.clone(), (i + k) % 3);
            batch.push(async move {
                let path = match kind {
                    0 => "/tasks/t",
                    1 => "/packets",
                    _ => "/static/panel.css",
                };
                // The model's task has another id.
                let path = if kind == 0 && is_model {
                    "/tasks/connections"
                } else {
                    path
                };
                (kind, h.timed_get(path, &cookie).await)
            });
        }
        for (kind, r) in futures_util::future::join_all(batch).await {
            let ms = r?;
            match kind {
                0 => task_ms.push(ms),
                1 => packets_ms.push(ms),
                _ => static_ms.push(ms),
            }
        }
        i += 1;
    }
    let _ = traffic.join();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_ticks(pid) - cpu0;
    for s in streams {
        let _ = s.await;
    }
    let rss = crate::rss_kib(pid) as f64 / 1024.0;

    // Consoles: N at once, keystroke echo; the raw exec as the peer.
    eprintln!("{} consoles, keystroke echo…", a.consoles);
    let rounds = 20;
    let n = a.consoles.min(cookies.len());
    let all_open = Arc::new(tokio::sync::Barrier::new(n));
    let echo: Vec<_> = cookies
        .iter()
        .take(n)
        .map(|c| tokio::spawn(console_echo(port, c.clone(), rounds, all_open.clone())))
        .collect();
    let mut echo_ms = Vec::new();
    let mut failed = 0;
    for e in echo {
        match e.await? {
            Ok(v) => echo_ms.extend(v),
            Err(e) => {
                failed += 1;
                eprintln!("a console failed: {e:#}");
            }
        }
    }
    let raw: Vec<_> = ids
        .iter()
        .take(a.consoles)
        .map(|id| {
            tokio::spawn(raw_echo(
                applab_controller::plan::object_name("class", id, "ws"),
                rounds,
            ))
        })
        .collect();
    let mut raw_ms = Vec::new();
    for r in raw {
        if let Ok(v) = r.await? {
            raw_ms.extend(v);
        }
    }
    let consoles_rss = crate::rss_kib(pid) as f64 / 1024.0;

    let g = grid(&a, &serve, &http, &ids).await?;

    let lat_n = lat.lock().unwrap().len();
    let (l50, l95, l99) = {
        let mut l = lat.lock().unwrap();
        (pct(&mut l, 0.5), pct(&mut l, 0.95), pct(&mut l, 0.99))
    };
    let r = serde_json::json!({
        "students": cookies.len() + 1,
        "launch_s": launched,
        "login_s": login_s,
        "task_page_ms": { "n": task_ms.len(), "p50": pct(&mut task_ms, 0.5), "p99": pct(&mut task_ms, 0.99) },
        "packets_page_ms": { "n": packets_ms.len(), "p50": pct(&mut packets_ms, 0.5), "p99": pct(&mut packets_ms, 0.99) },
        "static_asset_ms": { "n": static_ms.len(), "p50": pct(&mut static_ms, 0.5), "p99": pct(&mut static_ms, 0.99) },
        "event_to_browser_ms": { "n": lat_n, "p50": l50, "p95": l95, "p99": l99 },
        "idle_stream_events": idle.lock().unwrap().len(),
        "controller_cpu_percent": cpu / wall * 100.0,
        "controller_rss_mib": rss,
        "consoles": { "open": a.consoles - failed, "failed": failed, "n": echo_ms.len(),
            "p50": pct(&mut echo_ms, 0.5), "p95": pct(&mut echo_ms, 0.95),
            "raw_exec_p50": pct(&mut raw_ms, 0.5), "raw_exec_p95": pct(&mut raw_ms, 0.95),
            "controller_rss_mib": consoles_rss },
        "grid": g,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!("panel: {} students logged in, each with a live packet stream (launch {launched:.0} s, logins {login_s:.1} s)", cookies.len() + 1);
    println!(
        "  task page     p50 {:6.1} ms  p99 {:6.1} ms  (target p99 < 50 ms)",
        f(&r["task_page_ms"]["p50"]),
        f(&r["task_page_ms"]["p99"])
    );
    println!(
        "  packets page  p50 {:6.1} ms  p99 {:6.1} ms",
        f(&r["packets_page_ms"]["p50"]),
        f(&r["packets_page_ms"]["p99"])
    );
    println!(
        "  static asset  p50 {:6.1} ms  p99 {:6.1} ms  (peer: the same server's floor; task page p50 ratio {:.2}x)",
        f(&r["static_asset_ms"]["p50"]),
        f(&r["static_asset_ms"]["p99"]),
        f(&r["task_page_ms"]["p50"]) / f(&r["static_asset_ms"]["p50"])
    );
    println!(
        "  capture → browser stream: {lat_n} events, p50 {l50:.0} ms  p95 {l95:.0} ms  p99 {l99:.0} ms  (target p95 < 1000 ms)"
    );
    println!(
        "  controller: {:.0} % of a core over {wall:.0} s, {rss:.0} MiB resident",
        cpu / wall * 100.0
    );
    println!(
        "  consoles: {} open, keystroke echo p50 {:.1} ms  p95 {:.1} ms  (target p95 < 50 ms); raw docker exec p50 {:.1} ms  p95 {:.1} ms; ratio p95 {:.2}x; controller {consoles_rss:.0} MiB",
        a.consoles - failed,
        f(&r["consoles"]["p50"]),
        f(&r["consoles"]["p95"]),
        f(&r["consoles"]["raw_exec_p50"]),
        f(&r["consoles"]["raw_exec_p95"]),
        f(&r["consoles"]["p95"]) / f(&r["consoles"]["raw_exec_p95"]),
    );
    let gp = &r["grid"];
    println!(
        "  class grid ({} students × {} tasks): page p50 {:.1} ms  p99 {:.1} ms  (target p99 < 50 ms), {:.0} KiB; \
         peer: the matrix as JSON p50 {:.1} ms  p99 {:.1} ms; ratio p99 {:.2}x",
        gp["students"], gp["tasks"],
        f(&gp["page_ms"]["p50"]), f(&gp["page_ms"]["p99"]), f(&gp["page_bytes"]) / 1024.0,
        f(&gp["matrix_api_ms"]["p50"]), f(&gp["matrix_api_ms"]["p99"]),
        f(&gp["page_ms"]["p99"]) / f(&gp["matrix_api_ms"]["p99"]),
    );
    println!(
        "  stored result → grid cell stream, {} grids open: {} deliveries of {} results, p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  (target p95 < 1000 ms)",
        gp["grids"], gp["stream_ms"]["n"], gp["answers"],
        f(&gp["stream_ms"]["p50"]), f(&gp["stream_ms"]["p95"]), f(&gp["stream_ms"]["p99"]),
    );
    Ok(())
}

/// The instructor's grid at class size: `grids` instructors with the grid's
/// live stream open while answers turn cells to pass (about 10 a second),
/// and grid page loads meanwhile, beside the same matrix from the JSON API.
async fn grid(
    a: &PanelArgs,
    serve: &Serve,
    http: &Arc<Http>,
    ids: &[String],
) -> Result<serde_json::Value> {
    let staff: serde_json::Value =
        serde_json::from_str(&serve.cli(&["instructor", "add", "bench", "--json"])?)?;
    let pw = staff["password"]
        .as_str()
        .context("no password")?
        .to_string();
    let token = std::fs::read_to_string(serve.data.path().join("instructor.token"))?
        .trim()
        .to_string();
    let mut cookies = Vec::new();
    for _ in 0..a.grids.max(1) {
        cookies.push(http.login_at("/staff/login", "bench", &pw).await?);
    }
    eprintln!(
        "{} instructors' grids open; answers for {} s…",
        a.grids, a.seconds
    );
    let until = Instant::now() + Duration::from_secs(a.seconds + 5);
    let lat = Arc::new(Mutex::new(Vec::new()));
    let mut streams = Vec::new();
    for c in cookies.iter().take(a.grids) {
        streams.push(tokio::spawn(stream(
            http.clone(),
            c.clone(),
            "/staff/runs/class/stream",
            "at",
            lat.clone(),
            until,
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Answers: about ten a second, each passing one student's task.
    let answers = {
        let (http, token, ids) = (http.clone(), token.clone(), ids.to_vec());
        let secs = a.seconds;
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut n = 0usize;
            while t0.elapsed() < Duration::from_secs(secs) && n < ids.len() * 9 {
                let (student, q) = (&ids[n % ids.len()], 1 + (n / ids.len()) % 9);
                let body = serde_json::json!({
                    "run": "class", "student": student, "task": format!("q{q}"),
                    "question": "q", "value": format!("{}", q + 1),
                });
                let r = http
                    .c
                    .post(format!("{}/api/answer", http.base))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };
    let mut page_ms = Vec::new();
    let mut api_ms = Vec::new();
    let mut page_bytes = 0usize;
    let t0 = Instant::now();
    let mut k = 0usize;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        let cookie = &cookies[k % cookies.len()];
        let t = Instant::now();
        let r = http
            .c
            .get(format!("{}/staff/runs/class", http.base))
            .header("cookie", cookie)
            .header("accept", "text/html")
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the grid: {}", r.status());
        }
        page_bytes = r.bytes().await?.len();
        page_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let r = http
            .c
            .get(format!("{}/api/results/matrix?run=class", http.base))
            .bearer_auth(&token)
            .send()
            .await?;
        r.bytes().await?;
        api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        k += 1;
    }
    let answered = answers.await?;
    for s in streams {
        let _ = s.await;
    }
    let mut l = lat.lock().unwrap().clone();
    Ok(serde_json::json!({
        "students": ids.len(), "tasks": 10, "grids": a.grids, "answers": answered,
        "page_ms": { "n": page_ms.len(), "p50": pct(&mut page_ms, 0.5), "p99": pct(&mut page_ms, 0.99) },
        "page_bytes": page_bytes,
        "matrix_api_ms": { "n": api_ms.len(), "p50": pct(&mut api_ms, 0.5), "p99": pct(&mut api_ms, 0.99) },
        "stream_ms": { "n": l.len(), "p50": pct(&mut l, 0.5), "p95": pct(&mut l, 0.95), "p99": pct(&mut l, 0.99) },
    }))
}
