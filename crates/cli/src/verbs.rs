//! One function per verb.

use crate::client::Client;
use crate::{paths, Conn};
use anyhow::{bail, Context, Result};
use applab_controller::{images, roster, Controller, Credential, LaunchResult, RunStatus};
use applab_lab::Lab;
use applab_runtime::docker::DockerRuntime;
use base64::Engine;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct SourceArgs {
    /// Folder with one sub-folder per image (default: ./images or the install's).
    #[arg(long, env = "APPLAB_IMAGES")]
    pub images: Option<PathBuf>,
    /// The static applab-node binary (default: beside this binary).
    #[arg(long, env = "APPLAB_NODE_BINARY")]
    pub node_binary: Option<PathBuf>,
    /// A static busybox for the workstation (Debian's busybox-static).
    #[arg(long, env = "APPLAB_BUSYBOX", default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Use the lab images listed in this manifest instead of building them
    /// (the controller image's way).
    #[arg(long, env = "APPLAB_IMAGE_MANIFEST")]
    pub image_manifest: Option<PathBuf>,
}

impl SourceArgs {
    fn sources(&self, with_controller: bool) -> images::Sources {
        images::Sources {
            images_dir: self
                .images
                .clone()
                .unwrap_or_else(|| paths::shared_dir("images")),
            node_binary: self
                .node_binary
                .clone()
                .unwrap_or_else(|| paths::sibling_binary("applab-node")),
            busybox: self.busybox.clone(),
            applab_binary: with_controller
                .then(|| std::env::current_exe().unwrap_or_else(|_| "applab".into())),
            labs_dir: with_controller.then(|| paths::shared_dir("labs")),
            manifest: self.image_manifest.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the API (students' bridges are refused whatever this is).
    #[arg(long, env = "APPLAB_LISTEN", default_value = "0.0.0.0:7700")]
    pub listen: SocketAddr,
    /// Store, lab snapshots and the instructor token.
    #[arg(long, env = "APPLAB_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Address pool for student networks (keep it clear of the host's).
    #[arg(long, env = "APPLAB_POOL", default_value = "10.213.0.0/16")]
    pub pool: ipnet::Ipv4Net,
    /// Prefix length of one student network.
    #[arg(long, default_value_t = 26)]
    pub prefix: u8,
    /// Students set up at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// Seconds between full reconcile passes.
    #[arg(long, default_value_t = 15)]
    pub interval: u64,
    /// Pcap kept per student network, in MiB (oldest frames dropped first).
    #[arg(long, default_value_t = 64)]
    pub capture_mib: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "APPLAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "APPLAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The panel's address as students type it (printed, and put on the
    /// credentials sheets); default: this host's address and the port.
    #[arg(long, env = "APPLAB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The labs the instructor's panel offers to launch (default: the
    /// installed `labs/` folder).
    #[arg(long, env = "APPLAB_LABS")]
    pub labs: Option<PathBuf>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// The address students reach the panel at: the host's address on its
/// default route (no packet is sent to find it), or loopback.
fn public_url(scheme: &str, local: SocketAddr) -> String {
    let ip = if local.ip().is_unspecified() {
        std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|u| u.connect("192.0.2.1:9").map(|_| u))
            .and_then(|u| u.local_addr())
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    } else {
        local.ip()
    };
    format!("{scheme}://{}/", SocketAddr::new(ip, local.port()))
}

pub async fn serve(a: ServeArgs) -> Result<ExitCode> {
    if a.prefix <= a.pool.prefix_len() || a.prefix > 29 {
        bail!(
            "--prefix {} must be longer than the pool's /{} and at most 29",
            a.prefix,
            a.pool.prefix_len()
        );
    }
    let rt = Arc::new(
        DockerRuntime::connect()
            .await
            .context("connecting to the Docker engine")?,
    );
    let cfg = applab_controller::Config {
        data_dir: a.data.clone(),
        pool: a.pool,
        prefix: a.prefix,
        parallel: a.parallel,
        interval: Duration::from_secs(a.interval.max(1)),
        sources: a.sources.sources(false),
        capture_bytes: a.capture_mib << 20,
    };
    let ctrl = Controller::new(cfg, rt).await?;
    let token = instructor_token(&a.data)?;
    ctrl.images().await.context("preparing lab images")?;
    ctrl.install_grader();
    tokio::spawn(ctrl.clone().run_loop());
    tokio::spawn(ctrl.clone().grade_loop());
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        tracing::info!("shutting down");
    };
    let labs = a.labs.clone().unwrap_or_else(|| paths::shared_dir("labs"));
    let opts = applab_web::ServeOptions {
        listen: a.listen,
        tls: a.tls_cert.clone().zip(a.tls_key.clone()),
        labs: labs.is_dir().then_some(labs),
    };
    let bound = applab_web::bind(&ctrl, &opts).await?;
    let url = a
        .public_url
        .clone()
        .unwrap_or_else(|| public_url(bound.scheme(), bound.local));
    // Students and the instructor read this line; it goes to stderr with the
    // log, and to stdout for scripts.
    eprintln!("applab panel: {url} (students log in with their credentials sheet)");
    if let Some(password) = ctrl.first_instructor().await? {
        eprintln!(
            "applab panel: instructor login at {}/staff/login: account instructor, password {password} \
             (shown once; `applab instructor add NAME` makes more accounts)",
            url.trim_end_matches('/')
        );
    }
    println!("{url}");
    applab_web::serve(ctrl, bound, token, url, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The instructor token: made once, kept in DATA/instructor.token (0600).
fn instructor_token(data: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = data.join("instructor.token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{token}")?;
    eprintln!("instructor token written to {}", p.display());
    Ok(token)
}

pub fn validate(paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut failed = false;
    let mut report = Vec::new();
    for p in paths {
        match Lab::load(p) {
            Ok(lab) => {
                if !json {
                    println!(
                        "{}: ok: lab {} ({} nodes, {} networks, {} tasks, {} parameters)",
                        p.display(),
                        lab.name,
                        lab.nodes.len(),
                        lab.networks.len(),
                        lab.tasks.len(),
                        lab.parameters.len()
                    );
                }
                report.push(json!({ "path": p, "ok": true, "lab": lab.name }));
            }
            Err(d) => {
                failed = true;
                if !json {
                    for e in &d.0 {
                        eprintln!("{e}");
                    }
                }
                let errors: Vec<_> = d
                    .0
                    .iter()
                    .map(|e| json!({ "file": e.file, "line": e.line, "col": e.col, "message": e.message }))
                    .collect();
                report.push(json!({ "path": p, "ok": false, "errors": errors }));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(clap::Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Only these roles (default: every folder under images/).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn images_build(a: ImagesArgs) -> Result<ExitCode> {
    let src = a.sources.sources(true);
    let roles = if a.roles.is_empty() {
        images::roles(&src.images_dir)?
    } else {
        a.roles.clone()
    };
    let rt = DockerRuntime::connect()
        .await
        .context("connecting to the Docker engine")?;
    let multi = MultiProgress::new();
    let bars: BTreeMap<String, ProgressBar> = roles
        .iter()
        .map(|r| {
            let pb = multi.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>12} {wide_msg}").expect("style"),
            );
            pb.set_prefix(r.clone());
            pb.set_message("waiting");
            (r.clone(), pb)
        })
        .collect();
    let built = images::ensure(&rt, &src, &roles, &|p| match p {
        images::Progress::Start { role } => {
            bars[role].set_message("hashing the build context");
            bars[role].enable_steady_tick(Duration::from_millis(100));
        }
        images::Progress::Line { role, line } => bars[role].set_message(line.to_string()),
        images::Progress::Done { image } => {
            let what = if image.built { "built" } else { "unchanged" };
            bars[&image.role].finish_with_message(format!(
                "{what}: {} ({:.1} MB)",
                image.tag,
                image.bytes as f64 / 1e6
            ));
        }
    })
    .await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&built.values().collect::<Vec<_>>())?
        );
    } else if multi.is_hidden() {
        for i in built.values() {
            println!(
                "{}: {} {} ({} bytes, {})",
                i.role,
                i.tag,
                i.version_tag,
                i.bytes,
                if i.built { "built" } else { "unchanged" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct LaunchArgs {
    /// A lab folder, or the name of a shipped lab (labs/NAME).
    pub lab: String,
    /// CSV with columns id,name,email.
    #[arg(long)]
    pub roster: PathBuf,
    /// Return once the run is recorded, without waiting for topologies.
    #[arg(long)]
    pub no_wait: bool,
    /// Where to write the new students' one-time credentials (CSV).
    #[arg(long)]
    pub credentials_out: Option<PathBuf>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    #[command(flatten)]
    pub conn: Conn,
}

fn lab_path(lab: &str) -> PathBuf {
    let p = PathBuf::from(lab);
    if p.exists() {
        p
    } else {
        paths::shared_dir("labs").join(lab)
    }
}

pub async fn launch(a: LaunchArgs) -> Result<ExitCode> {
    let dir = lab_path(&a.lab);
    let lab = match Lab::load(&dir) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            bail!("the lab has {} error(s); nothing launched", d.0.len());
        }
    };
    let text = std::fs::read_to_string(&a.roster)
        .with_context(|| format!("reading {}", a.roster.display()))?;
    let entries = match roster::parse(&a.roster, &text) {
        Ok(e) => e,
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            bail!("the roster has {} bad row(s); nothing launched", errs.len());
        }
    };
    let lab_tar = applab_controller::pack_lab(&lab.dir)?;
    let run = a.conn.run.clone().unwrap_or_else(|| lab.name.clone());
    let client = Client::new(&a.conn)?;
    let req = applab_web::LaunchRequest {
        run: run.clone(),
        lab_tar: base64::engine::general_purpose::STANDARD.encode(&lab_tar),
        roster: entries.clone(),
    };
    let res: LaunchResult = client.post("/api/launch", &req).await?;
    if !res.added.is_empty() {
        let out = a.credentials_out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "credentials-{}-{}.csv",
                res.run,
                applab_controller::store::now()
            ))
        });
        write_credentials(&out, &res.added, &panel_url(&client).await)?;
        if !a.conn.json {
            eprintln!(
                "{} new student(s); their one-time credentials are in {}",
                res.added.len(),
                out.display()
            );
        }
    }
    if !a.conn.json {
        eprintln!(
            "run {}: lab {}, {} added, {} already there",
            res.run,
            res.lab,
            res.added.len(),
            res.kept
        );
    }
    let mut failed = false;
    if !a.no_wait {
        failed = wait_ready(&client, &run, &entries, a.timeout, a.conn.json).await?;
    }
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
    } else if !failed {
        let first = entries.first().map(|e| e.id.as_str()).unwrap_or("STUDENT");
        let ws = lab
            .nodes
            .iter()
            .find(|n| n.role == applab_lab::Role::Workstation)
            .map(|n| n.name.as_str())
            .unwrap_or("ws");
        let other = lab
            .nodes
            .iter()
            .find(|n| n.role != applab_lab::Role::Workstation);
        println!("\nNext:");
        println!("  applab status                      # every student's nodes, live");
        if let Some(o) = other {
            println!(
                "  applab exec {first} {ws} -- tcp --probe {} {}   # from {first}'s workstation",
                o.name,
                o.role.service_port()
            );
        }
        println!("  applab teardown                    # remove the run when the lab is over");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The panel's address, as the controller tells it.
async fn panel_url(client: &Client) -> String {
    client
        .get::<serde_json::Value>("/api/health", &[])
        .await
        .ok()
        .and_then(|h| h["panel_url"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The credentials sheet: one row per student with the panel's address.
fn write_credentials(path: &Path, creds: &[Credential], panel: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut w = csv::Writer::from_writer(f);
    w.write_record(["run", "id", "name", "email", "password", "panel"])?;
    for c in creds {
        w.write_record([&c.run, &c.id, &c.name, &c.email, &c.password, panel])?;
    }
    w.flush()?;
    Ok(())
}

/// Poll the status until every roster student is ready; true if any failed.
async fn wait_ready(
    client: &Client,
    run: &str,
    entries: &[roster::Entry],
    timeout: u64,
    quiet: bool,
) -> Result<bool> {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(entries.len() as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} ready {wide_msg}",
        )
        .expect("style")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    let say = |line: String| {
        if quiet {
        } else if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let st: RunStatus = client.get("/api/status", &[("run", run)]).await?;
        let mut ready = 0;
        let mut errors = 0;
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for s in st
            .students
            .iter()
            .filter(|s| entries.iter().any(|e| e.id == s.id))
        {
            let st_now = if s.state == "ready" {
                ready += 1;
                "ready".to_string()
            } else if s.state.starts_with("error") {
                errors += 1;
                s.state.clone()
            } else {
                *phases
                    .entry(s.phase.clone().unwrap_or_else(|| "queued".into()))
                    .or_default() += 1;
                continue;
            };
            if reported.get(&s.id) != Some(&st_now) {
                say(format!("  {:<12} {}", s.id, st_now));
                reported.insert(s.id.clone(), st_now);
            }
        }
        pb.set_position(ready as u64);
        pb.set_message(
            phases
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if ready == entries.len() {
            pb.finish_and_clear();
            say(format!("all {ready} topologies ready"));
            return Ok(false);
        }
        if ready + errors == entries.len() && errors > 0 {
            pb.finish_and_clear();
            eprintln!(
                "{errors} topolog{} failed; `applab launch` again retries them",
                if errors == 1 { "y" } else { "ies" }
            );
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            pb.finish_and_clear();
            eprintln!("timed out: {ready}/{} ready", entries.len());
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

fn run_field(conn: &Conn) -> serde_json::Value {
    json!(conn.run)
}

pub async fn status(conn: &Conn) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let mut q = Vec::new();
    if let Some(r) = &conn.run {
        q.push(("run", r.as_str()));
    }
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
        let short = match s.state.strip_prefix("error: ") {
            Some(why) => {
                problems.push(format!("{}: {why}", s.id));
                "error"
            }
            None => s.state.as_str(),
        };
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
                n.state,
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

#[derive(clap::Args)]
pub struct ShapeArgs {
    /// A student id, or `all` for every student of the run.
    pub student: String,
    pub node: String,
    pub network: String,
    /// One-way delay, e.g. 100ms (applies in both directions).
    #[arg(long)]
    pub delay: Option<String>,
    /// Rate in each direction, e.g. 150mbit; `none` lifts the limit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Loss probability per frame each way, e.g. 0.01.
    #[arg(long)]
    pub loss: Option<f64>,
    #[command(flatten)]
    pub conn: Conn,
}

/// Change a link's shaping while the lab runs.
pub async fn shape(a: ShapeArgs) -> Result<ExitCode> {
    let delay_us = match &a.delay {
        Some(d) => Some(
            applab_lab::parse_duration_us(d)
                .with_context(|| format!("--delay {d:?}: use e.g. 100ms"))?,
        ),
        None => None,
    };
    let rate_bps = match a.rate.as_deref() {
        Some("none") => Some(0),
        Some(r) => Some(
            applab_lab::parse_rate_bps(r)
                .with_context(|| format!("--rate {r:?}: use e.g. 150mbit"))?,
        ),
        None => None,
    };
    if delay_us.is_none() && rate_bps.is_none() && a.loss.is_none() {
        bail!("nothing to change: give --delay, --rate or --loss");
    }
    let client = Client::new(&a.conn)?;
    let student = (a.student != "all").then_some(a.student.as_str());
    let body = json!({
        "run": run_field(&a.conn), "student": student, "node": a.node, "network": a.network,
        "delay_us": delay_us, "rate_bps": rate_bps, "loss": a.loss,
    });
    let r: serde_json::Value = client.post("/api/shape", &body).await?;
    let n = r["students"].as_array().map(|v| v.len()).unwrap_or(0);
    print_done(
        &a.conn,
        &r,
        &format!(
            "{}/{}: shaping changed for {n} student(s)",
            a.node, a.network
        ),
    )
}

pub async fn reset(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let r: serde_json::Value = client
        .post(
            "/api/reset",
            &json!({ "run": run_field(conn), "student": student }),
        )
        .await?;
    print_done(conn, &r, &format!("{student}: topology recreated"))
}

pub async fn node(conn: &Conn, student: &str, node: &str, running: bool) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body =
        json!({ "run": run_field(conn), "student": student, "node": node, "running": running });
    let r: serde_json::Value = client.post("/api/node", &body).await?;
    print_done(
        conn,
        &r,
        &format!(
            "{student}/{node}: {}",
            if running { "started" } else { "stopped" }
        ),
    )
}

pub async fn teardown(conn: &Conn, student: Option<&str>) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let r: serde_json::Value = client
        .post(
            "/api/teardown",
            &json!({ "run": run_field(conn), "student": student }),
        )
        .await?;
    let what = match student {
        Some(s) => format!("{s}: topology removed"),
        None => format!("run {}: removed", r["run"].as_str().unwrap_or("?")),
    };
    print_done(conn, &r, &what)
}

fn print_done(conn: &Conn, r: &serde_json::Value, text: &str) -> Result<ExitCode> {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn exec(conn: &Conn, student: &str, node: &str, cmd: &[String]) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let body = json!({ "run": run_field(conn), "student": student, "node": node, "cmd": cmd });
    let r: serde_json::Value = client.post("/api/exec", &body).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r["stdout"].as_str().unwrap_or(""));
        eprint!("{}", r["stderr"].as_str().unwrap_or(""));
    }
    let code = r["exit_code"].as_i64().unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

#[derive(clap::Args)]
pub struct CredentialsArgs {
    /// Only this student.
    #[arg(long)]
    pub student: Option<String>,
    /// Replace the passwords (the old ones stop working) and write the new ones.
    #[arg(long)]
    pub reissue: bool,
    /// Where reissued credentials are written (CSV).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn credentials(a: CredentialsArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = json!({ "run": run_field(&a.conn), "student": a.student, "reissue": a.reissue });
    let r: serde_json::Value = client.post("/api/credentials", &body).await?;
    if a.reissue {
        let creds: Vec<Credential> = serde_json::from_value(r["reissued"].clone())?;
        let run = r["run"].as_str().unwrap_or("run");
        let out = a.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "credentials-{run}-{}.csv",
                applab_controller::store::now()
            ))
        });
        write_credentials(&out, &creds, &panel_url(&client).await)?;
        if a.conn.json {
            println!(
                "{}",
                json!({ "run": run, "reissued": creds.len(), "file": out })
            );
        } else {
            println!(
                "{} credential(s) reissued; written to {}",
                creds.len(),
                out.display()
            );
        }
    } else if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{:<14} {:<24} {:<28} ISSUED (unix time)",
            "STUDENT", "NAME", "EMAIL"
        );
        for s in r["students"].as_array().into_iter().flatten() {
            println!(
                "{:<14} {:<24} {:<28} {}",
                s["id"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or(""),
                s["email"].as_str().unwrap_or(""),
                s["issued_at"]
            );
        }
        println!("(passwords are stored hashed; use --reissue to hand out new ones)");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn params(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let mut q = vec![("student", student)];
    if let Some(r) = &conn.run {
        q.push(("run", r.as_str()));
    }
    let p: BTreeMap<String, String> = client.get("/api/params", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        for (k, v) in p {
            println!("{k} = {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

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

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Only this student.
    #[arg(long)]
    pub student: Option<String>,
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Recompute every result from what is still recorded, passes included (a regrade).
    #[arg(long)]
    pub recheck: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// Evaluate now and print each student's tasks and checks.
pub async fn check(a: CheckArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = serde_json::json!({ "run": a.conn.run, "student": a.student, "recheck": a.recheck });
    let mut res: Vec<applab_controller::grading::StudentResults> =
        client.post("/api/check", &body).await?;
    if let Some(t) = &a.task {
        if !res.iter().any(|s| s.tasks.iter().any(|x| &x.task == t)) {
            bail!("no task {t:?} in this lab");
        }
        for s in &mut res {
            s.tasks.retain(|x| &x.task == t);
        }
    }
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &res {
        println!(
            "{} ({}): {} of {} points",
            s.student,
            s.name,
            points(s.points),
            points(s.max_points)
        );
        for t in &s.tasks {
            println!("  {} {}  {}", mark(t.status), t.task, t.title);
            for c in &t.checks {
                println!("    {} {}: {}", mark(c.status), c.check, c.expected);
                println!("        seen: {}", c.seen);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A status with a symbol, never by colour alone.
fn mark(s: applab_checks::Status) -> &'static str {
    match s {
        applab_checks::Status::Pass => "[pass]   ",
        applab_checks::Status::Fail => "[FAIL]   ",
        applab_checks::Status::Pending => "[pending]",
        applab_checks::Status::Error => "[ERROR]  ",
    }
}

use applab_controller::grades::pts as points;

#[derive(clap::Args)]
pub struct GradesArgs {
    /// csv, json, canvas (Canvas gradebook import) or moodle (keyed by email).
    #[arg(long, default_value = "csv", value_parser = ["csv", "json", "canvas", "moodle"])]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

pub async fn grades(a: GradesArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let mut q = vec![("format", a.format.as_str())];
    if let Some(r) = &a.conn.run {
        q.push(("run", r.as_str()));
    }
    let bytes = client.get_bytes("/api/grades", &q).await?;
    match &a.output {
        Some(p) => {
            std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("grades written to {}", p.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct AnswerArgs {
    pub student: String,
    pub task: String,
    pub question: String,
    pub value: String,
    #[command(flatten)]
    pub conn: Conn,
}

/// Submit an answer for a student (instructors and tests; students use the panel).
pub async fn answer(a: AnswerArgs) -> Result<ExitCode> {
    let client = Client::new(&a.conn)?;
    let body = serde_json::json!({
        "run": a.conn.run, "student": a.student, "task": a.task,
        "question": a.question, "value": a.value,
    });
    let t: applab_controller::grading::TaskView = client.post("/api/answer", &body).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        println!("{} {}  {}", mark(t.status), t.task, t.title);
        for c in &t.checks {
            println!("    {} {}: {}", mark(c.status), c.check, c.seen);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A student's verdict changes and answers, oldest first.
pub async fn history(conn: &Conn, student: &str) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let mut q = vec![("student", student)];
    if let Some(r) = &conn.run {
        q.push(("run", r.as_str()));
    }
    let v: serde_json::Value = client.get("/api/results/history", &q).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "{:.3}  {}/{}  {}  {}",
            h["at"].as_f64().unwrap_or(0.0),
            h["task"].as_str().unwrap_or(""),
            h["check_id"].as_str().unwrap_or(""),
            h["status"].as_str().unwrap_or(""),
            h["seen"].as_str().unwrap_or("")
        );
    }
    for a in v["submissions"].as_array().into_iter().flatten() {
        println!(
            "{:.3}  answer {}/{}: {}",
            a["at"].as_f64().unwrap_or(0.0),
            a["task"].as_str().unwrap_or(""),
            a["question"].as_str().unwrap_or(""),
            a["value"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn instructor_add(conn: &Conn, name: &str, assistant: bool) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let role = if assistant { "assistant" } else { "instructor" };
    let r: applab_web::StaffAdded = client
        .post(
            "/api/staff",
            &applab_web::StaffReq {
                name: name.into(),
                role: role.into(),
            },
        )
        .await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let url = panel_url(&client).await;
        println!(
            "{} {} {}: log in at {}/staff/login with password {}",
            if r.created {
                "added"
            } else {
                "new password for"
            },
            r.role,
            r.name,
            url.trim_end_matches('/'),
            r.password
        );
        eprintln!("(the password is shown only now)");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn instructor_list(conn: &Conn) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let rows: Vec<serde_json::Value> = client.get("/api/staff", &[]).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in rows {
            println!(
                "{}\t{}",
                r["name"].as_str().unwrap_or(""),
                r["role"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
