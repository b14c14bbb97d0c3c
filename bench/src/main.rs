//! `applab-bench`: applab against its peers, side by side in one run.
//!
//! `origin` (in `origin.rs`) measures the origin role against nginx;
//! `imap` (in `imap.rs`) the IMAP server against Dovecot; `capture` (in
//! `capture.rs`) the tap against tcpdump; `proxy` (in `proxy.rs`) the
//! caching proxy against Squid and Varnish; `smtp` (in `smtp.rs`) the mail
//! server against Postfix; `checks` (in `checks.rs`) the
//! check engine under a class's events (no peer does this); `panel` (in
//! `panel.rs`) the student panel at class size, against its floors.
//!
//! `launch`: applab against the raw engine, side by side.
//!
//! The peer ("raw") creates the very same networks, volumes and containers
//! as applab would for N students, straight through the engine API with
//! maximum parallelism and no store, no reconcile, no health loop of its
//! own. Both clocks stop when every container answers on its service port,
//! probed the same way from here. Rounds alternate which side goes first.

mod capture;
mod checks;
mod imap;
mod origin;
mod panel;
mod proxy;
mod smtp;

use anyhow::{bail, Context, Result};
use applab_controller::{images, plan, store};
use applab_lab::Lab;
use applab_runtime::docker::DockerRuntime;
use applab_runtime::Runtime;
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "applab-bench",
    about = "applab against its peers, side by side in one run"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Launch N students through applab and through the raw engine.
    Launch(LaunchArgs),
    /// The origin role against nginx, driven by wrk.
    Origin(origin::OriginArgs),
    /// The IMAP server against Dovecot, the same mailboxes and load.
    Imap(imap::ImapArgs),
    /// applab's tap against tcpdump on one bridge under full load.
    Capture(capture::CaptureArgs),
    /// The caching proxy against Squid (forward) and Varnish (reverse).
    Proxy(proxy::ProxyArgs),
    /// The mail server against Postfix: messages accepted and stored per
    /// second (smtp-source), relay latency.
    Smtp(smtp::SmtpArgs),
    /// The check engine: a class's model-student events replayed at lab rates.
    Checks(checks::ChecksArgs),
    /// The panel: logged-in students with live streams, page loads, consoles.
    Panel(panel::PanelArgs),
}

#[derive(clap::Args)]
struct LaunchArgs {
    #[arg(long, default_value_t = 20)]
    students: usize,
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    #[arg(long, default_value = "labs/http-basics")]
    lab: PathBuf,
    /// The applab binary.
    #[arg(long)]
    applab: PathBuf,
    #[arg(long)]
    node_binary: PathBuf,
    #[arg(long, default_value = "images")]
    images: PathBuf,
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Write the controller's debug log here (where each launch and
    /// teardown spends its time: `converged`, `answering`, `torn down`).
    #[arg(long)]
    serve_log: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.cmd {
        Cmd::Launch(a) => rt.block_on(launch(a)),
        Cmd::Checks(a) => rt.block_on(checks::run(a)),
        Cmd::Panel(a) => rt.block_on(panel::run(a)),
        Cmd::Origin(a) => origin::run(a),
        Cmd::Imap(a) => imap::run(a),
        Cmd::Capture(a) => capture::run(a),
        Cmd::Proxy(a) => proxy::run(a),
        Cmd::Smtp(a) => smtp::run(a),
    }
}

/// Every (ip, port) answers a TCP connect.
async fn all_answer(targets: &[(String, u16)]) -> bool {
    let probes = targets.iter().map(|(ip, port)| async move {
        let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
            return false;
        };
        matches!(
            tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect((ip, *port))
            )
            .await,
            Ok(Ok(_))
        )
    });
    join_all(probes).await.into_iter().all(|x| x)
}

/// Wait until the run's containers (2 per student) all answer.
async fn wait_answering(rt: &DockerRuntime, run: &str, expect: usize, lab: &Lab) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let cs = rt.list_containers(&[(plan::RUN, run)]).await?;
        let mut targets = Vec::new();
        for c in &cs {
            let node = c.labels.get(plan::NODE).cloned().unwrap_or_default();
            let role = lab.node(&node).map(|n| n.role).context("unknown node")?;
            if let Some(ip) = c.addresses.values().next() {
                targets.push((ip.clone(), role.service_port()));
            }
        }
        if targets.len() == expect && all_answer(&targets).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{run}: not all {expect} containers answered in time ({} with an address)",
                targets.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may hold spaces: utime, stime
    // are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The engine's CPU seconds so far: dockerd, containerd and the shims.
fn engine_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| {
                matches!(c.trim(), "dockerd" | "containerd" | "docker-proxy")
                    || c.starts_with("containerd-shim")
            })
        })
        .map(cpu_secs)
        .sum()
}

async fn containers_memory(rt: &DockerRuntime, run: &str) -> Result<u64> {
    let cs = rt.list_containers(&[(plan::RUN, run)]).await?;
    let mems = join_all(cs.iter().map(|c| rt.memory_usage(&c.id))).await;
    Ok(mems.into_iter().filter_map(|m| m.ok()).sum())
}

/// The raw engine: the same objects, all at once.
async fn raw_launch(
    rt: &DockerRuntime,
    lab: &Lab,
    run: &str,
    n: usize,
    imgs: &BTreeMap<String, images::Image>,
) -> Result<Duration> {
    let run_row = store::RunRow {
        name: run.to_string(),
        lab_name: lab.name.clone(),
        lab_dir: lab.dir.to_string_lossy().into_owned(),
        secret: b"bench".to_vec(),
        created_at: 0,
    };
    let pool: ipnet::Ipv4Net = "10.231.0.0/16".parse()?;
    let mut subnets = pool.subnets(26)?;
    let mut plans = Vec::new();
    for i in 0..n {
        let s = store::StudentRow {
            run: run.into(),
            id: format!("b{i:03}"),
            name: String::new(),
            email: String::new(),
            password_hash: String::new(),
            issued_at: 0,
            generation: 1,
            added_at: 0,
        };
        let nets: BTreeMap<String, ipnet::Ipv4Net> = lab
            .networks
            .iter()
            .map(|net| (net.name.clone(), subnets.next().expect("pool")))
            .collect();
        plans.push(plan::plan("bench-raw", &run_row, lab, &s, &nets, imgs)?);
    }
    let t0 = Instant::now();
    let results = join_all(plans.iter().map(|p| async move {
        join_all(p.networks.iter().map(|net| rt.create_network(&net.spec)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        join_all(p.nodes.iter().map(|node| async move {
            rt.create_volume(&node.volume, &node.volume_labels).await?;
            let id = rt.create_container(&node.spec).await?;
            if let Some(tar) = plan::content_tar(lab, &node.node, &p.params)
                .map_err(|e| applab_runtime::Error::Engine(e.to_string()))?
            {
                rt.upload(&id, plan::DATA_DIR, tar).await?;
            }
            rt.start_container(&id).await
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, applab_runtime::Error>(())
    }))
    .await;
    for r in results {
        r?;
    }
    wait_answering(rt, run, n * lab.nodes.len(), lab).await?;
    Ok(t0.elapsed())
}

async fn raw_teardown(rt: &DockerRuntime, run: &str) -> Result<Duration> {
    let t0 = Instant::now();
    let f = [(plan::RUN, run)];
    let cs = rt.list_containers(&f).await?;
    join_all(cs.iter().map(|c| rt.remove_container(&c.id)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let containers = t0.elapsed();
    let nets = rt.list_networks(&f).await?;
    join_all(nets.iter().map(|n| rt.remove_network(&n.id)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let networks = t0.elapsed() - containers;
    let vols = rt.list_volumes(&f).await?;
    join_all(vols.iter().map(|v| rt.remove_volume(&v.name)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    if !cs.is_empty() {
        // The same phases applab's collect logs (containers_ms ...).
        println!(
            "  raw teardown: containers {} ms, networks {} ms, volumes {} ms",
            containers.as_millis(),
            networks.as_millis(),
            (t0.elapsed() - containers - networks).as_millis()
        );
    }
    Ok(t0.elapsed())
}

struct Applab {
    child: std::process::Child,
    data: tempfile::TempDir,
    url: String,
}

impl Applab {
    fn start(a: &LaunchArgs) -> Result<Applab> {
        let data = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&a.applab)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--pool",
                "10.232.0.0/16",
                "--parallel",
                "64",
            ])
            .arg("--data")
            .arg(data.path())
            .env("APPLAB_IMAGES", &a.images)
            .env("APPLAB_NODE_BINARY", &a.node_binary)
            .env(
                "RUST_LOG",
                if a.serve_log.is_some() {
                    "applab_controller=debug,warn"
                } else {
                    "warn"
                },
            )
            .stdout(Stdio::null())
            .stderr(match &a.serve_log {
                Some(p) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                ),
                None => Stdio::null(),
            })
            .spawn()?;
        let app = Applab {
            child,
            data,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && app.data.path().join("instructor.token").exists()
            {
                return Ok(app);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("applab serve did not start")
    }

    fn cmd(&self, a: &LaunchArgs, args: &[&str]) -> Result<()> {
        let st = Command::new(&a.applab)
            .args(args)
            .env("APPLAB_URL", &self.url)
            .env("APPLAB_DATA", self.data.path())
            .current_dir(self.data.path())
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("applab {args:?} failed");
        }
        Ok(())
    }
}

impl Drop for Applab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// One side's figures in a round.
struct Side {
    up: Duration,
    down: Duration,
    /// The containers' memory, summed.
    mem: u64,
    /// CPU seconds of the engine's processes during the launch.
    engine_cpu: f64,
}

/// applab's controller during its launch: CPU seconds, RSS before and after (KiB).
struct Controller {
    cpu: f64,
    idle_rss: u64,
    busy_rss: u64,
}

/// The peer: the same objects straight through the engine, then removed.
async fn raw_round(
    rt: &DockerRuntime,
    lab: &Lab,
    n: usize,
    imgs: &BTreeMap<String, images::Image>,
) -> Result<Side> {
    let run = "benchraw";
    let _ = raw_teardown(rt, run).await;
    let e0 = engine_cpu();
    let up = raw_launch(rt, lab, run, n, imgs).await?;
    let engine_cpu = engine_cpu() - e0;
    let mem = containers_memory(rt, run).await?;
    let down = raw_teardown(rt, run).await?;
    Ok(Side {
        up,
        down,
        mem,
        engine_cpu,
    })
}

/// applab: serve, launch, wait for the same answers, tear down.
async fn applab_round(
    a: &LaunchArgs,
    rt: &DockerRuntime,
    lab: &Lab,
    n: usize,
    roster: &tempfile::NamedTempFile,
) -> Result<(Side, Controller)> {
    let app = Applab::start(a)?;
    let idle_rss = rss_kib(app.child.id());
    let (c0, e0) = (cpu_secs(app.child.id()), engine_cpu());
    let t0 = Instant::now();
    app.cmd(
        a,
        &[
            "launch",
            a.lab.to_str().unwrap_or("labs/http-basics"),
            "--roster",
            roster.path().to_str().unwrap_or(""),
            "--run",
            "bench",
            "--json",
        ],
    )?;
    // `applab launch` returned when every student was ready, as an
    // instructor waits; then the same check the raw side ends with.
    // (Polling the engine here instead, while applab builds, would load
    // the engine during applab's launch only: an unfair peer.)
    wait_answering(rt, "bench", n * lab.nodes.len(), lab).await?;
    let up = t0.elapsed();
    let (cpu, engine_cpu) = (cpu_secs(app.child.id()) - c0, engine_cpu() - e0);
    let busy_rss = rss_kib(app.child.id());
    let mem = containers_memory(rt, "bench").await?;
    let t1 = Instant::now();
    app.cmd(a, &["teardown", "--run", "bench"])?;
    let down = t1.elapsed();
    drop(app);
    Ok((
        Side {
            up,
            down,
            mem,
            engine_cpu,
        },
        Controller {
            cpu,
            idle_rss,
            busy_rss,
        },
    ))
}

async fn launch(mut a: LaunchArgs) -> Result<()> {
    // Children run in their own folders: make every path absolute.
    for p in [&mut a.applab, &mut a.node_binary, &mut a.images, &mut a.lab] {
        *p = p
            .canonicalize()
            .with_context(|| format!("{}", p.display()))?;
    }
    let rt = DockerRuntime::connect().await?;
    let lab = Lab::load(&a.lab).map_err(|d| anyhow::anyhow!("{d}"))?;
    let src = images::Sources {
        images_dir: a.images.clone(),
        node_binary: a.node_binary.clone(),
        busybox: a.busybox.clone(),
        applab_binary: None,
        labs_dir: None,
        manifest: None,
    };
    let roles: Vec<String> = lab
        .nodes
        .iter()
        .map(|n| n.role.name().to_string())
        .collect();
    let imgs = images::ensure(&rt, &src, &roles, &|_| {}).await?;
    let n = a.students;
    let roster = tempfile::NamedTempFile::new()?;
    let mut text = String::from("id,name,email\n");
    for i in 0..n {
        text.push_str(&format!("b{i:03},Bench {i},b{i}@bench.example\n"));
    }
    std::fs::write(roster.path(), text)?;
    println!(
        "launch benchmark: {n} students of {} ({} containers), {} round(s)",
        lab.name,
        n * lab.nodes.len(),
        a.rounds
    );
    let mut ratios = Vec::new();
    for round in 1..=a.rounds {
        // Which goes first alternates: the second of a pair runs on an
        // engine that has just made and removed 100s of objects, and
        // neither side should always be the one that pays for it.
        let raw_first = round % 2 == 1;
        let (raw, (app, ctl)) = if raw_first {
            let raw = raw_round(&rt, &lab, n, &imgs).await?;
            (raw, applab_round(&a, &rt, &lab, n, &roster).await?)
        } else {
            let app = applab_round(&a, &rt, &lab, n, &roster).await?;
            (raw_round(&rt, &lab, n, &imgs).await?, app)
        };
        ratios.push((
            app.up.as_secs_f64() / raw.up.as_secs_f64(),
            app.down.as_secs_f64() / raw.down.as_secs_f64(),
        ));
        let per_topology = app.mem as f64 / n as f64;
        let ctrl_per_topology =
            ctl.busy_rss.saturating_sub(ctl.idle_rss) as f64 * 1024.0 / n as f64;
        println!(
            "round {round} ({} first):",
            if raw_first { "raw engine" } else { "applab" }
        );
        println!(
            "  launch   raw engine {:>7.2} s   applab {:>7.2} s   ratio {:.3}",
            raw.up.as_secs_f64(),
            app.up.as_secs_f64(),
            app.up.as_secs_f64() / raw.up.as_secs_f64()
        );
        println!(
            "  launch CPU: engine {:.1} s for the raw launch, {:.1} s for applab's; the controller {:.1} s",
            raw.engine_cpu, app.engine_cpu, ctl.cpu
        );
        println!(
            "  teardown raw engine {:>7.2} s   applab {:>7.2} s   ratio {:.3}",
            raw.down.as_secs_f64(),
            app.down.as_secs_f64(),
            app.down.as_secs_f64() / raw.down.as_secs_f64()
        );
        println!(
            "  memory per topology: containers {:.2} MiB (raw engine's {:.2} MiB); controller +{:.3} MiB per topology (RSS {:.1} -> {:.1} MiB); ratio {:.3}",
            mib(per_topology as u64),
            mib(raw.mem / n as u64),
            ctrl_per_topology / (1024.0 * 1024.0),
            ctl.idle_rss as f64 / 1024.0,
            ctl.busy_rss as f64 / 1024.0,
            (per_topology + ctrl_per_topology) / per_topology
        );
    }
    if ratios.len() > 1 {
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!(
            "median over {} rounds: launch ratio {:.3}, teardown ratio {:.3} (applab / raw engine)",
            ratios.len(),
            median(ratios.iter().map(|r| r.0).collect()),
            median(ratios.iter().map(|r| r.1).collect())
        );
    }
    Ok(())
}
