//! `applab-bench capture`: applab's tap against tcpdump on the same bridge,
//! in the same run.
//!
//! A bridge with two network namespaces on it stands in for a student's
//! network: the origin role in one, wrk driving it at full speed from the
//! other. While wrk runs, applab's capture path (an AF_PACKET tap writing
//! every frame to its pcap ring, as the controller runs it) and tcpdump
//! (`-w`, its defaults) both capture on the bridge. Frames at the source are
//! the bridge ports' receive counters. For each capturer: frames captured,
//! drops (source minus captured), CPU seconds per 100k frames. Decoding the
//! captured frames into events and keeping them (the controller's lists)
//! is then timed on its own.

use anyhow::{bail, Context, Result};
use applab_capture::tap::Tap;
use applab_capture::{Decoder, Limits};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// The applab-node binary (the origin under load).
    #[arg(long)]
    node_binary: PathBuf,
    /// Seconds of load per round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk connections; each round alternates keep-alive and `Connection: close`.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

const BR: &str = "abcap0";
const NS: [&str; 2] = ["abcap-srv", "abcap-cli"];
const PORTS: [&str; 2] = ["abcap-s", "abcap-c"];

fn sh(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .with_context(|| args.join(" "))?;
    if !st.success() {
        bail!("{} failed", args.join(" "));
    }
    Ok(())
}

/// With bridge netfilter, bridged frames cross the FORWARD chain, whose
/// policy Docker sets to DROP: let this bridge's own traffic through.
const RULE: [&str; 10] = [
    "FORWARD",
    "-i",
    BR,
    "-o",
    BR,
    "-m",
    "comment",
    "--comment",
    "applab-bench",
    "-j",
];

fn teardown() {
    let mut del = vec!["-D"];
    del.extend_from_slice(&RULE);
    del.push("ACCEPT");
    while Command::new("iptables")
        .args(&del)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {}
    for ns in NS {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("ip")
        .args(["link", "del", BR])
        .stderr(Stdio::null())
        .status();
}

/// The bridge, two namespaces, a veth pair each.
fn setup() -> Result<()> {
    teardown();
    sh(&["ip", "link", "add", BR, "type", "bridge"])?;
    sh(&["ip", "link", "set", BR, "up"])?;
    let mut add = vec!["iptables", "-I"];
    add.extend_from_slice(&RULE);
    add.push("ACCEPT");
    sh(&add)?;
    for (i, (ns, port)) in NS.iter().zip(PORTS).enumerate() {
        sh(&["ip", "netns", "add", ns])?;
        sh(&[
            "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        sh(&["ip", "link", "set", port, "master", BR])?;
        sh(&["ip", "link", "set", port, "up"])?;
        let addr = format!("10.250.0.{}/24", i + 1);
        sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

fn port_rx_packets() -> Result<u64> {
    let mut n = 0;
    for p in PORTS {
        let s = std::fs::read_to_string(format!("/sys/class/net/{p}/statistics/rx_packets"))?;
        n += s.trim().parse::<u64>()?;
    }
    Ok(n)
}

fn thread_cpu() -> Duration {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for the calling thread's CPU clock.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn process_cpu(pid: u32) -> Duration {
    // utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

struct Round {
    source: u64,
    ours: u64,
    ours_kernel_drops: u64,
    ours_cpu: Duration,
    tcpdump: u64,
    tcpdump_cpu: Duration,
    ring: PathBuf,
}

/// Our capture-and-write path on its own thread until `stop`: the
/// controller's host tap (every interface, the bridge passed by its
/// filter and made promiscuous), writing the bridge's ring.
fn our_tap(
    ring_dir: PathBuf,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<(u64, u64, Duration)>> {
    std::thread::spawn(move || {
        let tap_all = Tap::open_all(Duration::from_millis(50))?;
        let index = applab_capture::tap::index_of(BR)? as i32;
        tap_all.add_promisc(index)?;
        tap_all.set_interfaces(&[index])?;
        let mut tap = tap_all;
        let mut ring = applab_capture::ring::Ring::open(&ring_dir, 1 << 30)?;
        let mut buf = vec![0u8; 65536];
        ready.store(true, Ordering::SeqCst);
        let cpu0 = thread_cpu();
        let mut frames = 0u64;
        let mut drops = 0u64;
        let mut last = Instant::now();
        loop {
            if let Some(r) = tap.recv(&mut buf)? {
                if r.ifindex != index {
                    continue;
                }
                ring.write(r.time, r.wire_len as u32, &buf[..r.captured])?;
                frames += 1;
            } else if stop.load(Ordering::SeqCst) {
                break;
            }
            if last.elapsed() > Duration::from_millis(200) {
                ring.flush()?;
                drops += tap.stats().map(|s| s.1).unwrap_or(0);
                last = Instant::now();
            }
        }
        ring.flush()?;
        drops += tap.stats().map(|s| s.1).unwrap_or(0);
        Ok((frames, drops, thread_cpu() - cpu0))
    })
}

fn round(a: &CaptureArgs, dir: &Path, n: usize, keepalive: bool) -> Result<Round> {
    let ring = dir.join(format!("ring-{n}"));
    let pcap = dir.join(format!("tcpdump-{n}.pcap"));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let ours = our_tap(ring.clone(), stop.clone(), ready.clone());
    let mut dump = Command::new("tcpdump")
        .args(["-i", BR, "-n", "-s", "0", "-Z", "root", "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("tcpdump (apt-get install tcpdump)")?;
    // Both listening before the load starts.
    let mut err = dump.stderr.take().expect("piped");
    let mut seen = Vec::new();
    let t = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        use std::io::Read;
        let mut b = [0u8; 256];
        let k = err.read(&mut b).unwrap_or(0);
        if k == 0 || t.elapsed() > Duration::from_secs(10) {
            bail!("tcpdump: {}", String::from_utf8_lossy(&seen));
        }
        seen.extend_from_slice(&b[..k]);
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    while !ready.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = port_rx_packets()?;
    let mut wrk = Command::new("ip");
    wrk.args(["netns", "exec", NS[1], "wrk", "-t1"])
        .arg(format!("-c{}", a.connections))
        .arg(format!("-d{}s", a.seconds));
    if !keepalive {
        wrk.args(["-H", "Connection: close"]);
    }
    let out = wrk
        .arg("http://10.250.0.1/object.html")
        .output()
        .context("wrk (apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Let the last frames drain to both capturers.
    std::thread::sleep(Duration::from_millis(500));
    let source = port_rx_packets()? - before;
    let tcpdump_cpu = process_cpu(dump.id());
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    stop.store(true, Ordering::SeqCst);
    let (frames, drops, cpu) = ours
        .join()
        .map_err(|_| anyhow::anyhow!("tap thread panicked"))??;
    let tcpdump = applab_capture::pcap::read_file(&pcap)?.len() as u64;
    Ok(Round {
        source,
        ours: frames,
        ours_kernel_drops: drops,
        ours_cpu: cpu,
        tcpdump,
        tcpdump_cpu,
        ring,
    })
}

/// Decode (and keep, as the controller does) a ring's frames; CPU time and count.
fn decode(ring: &Path) -> Result<(Duration, u64, u64)> {
    let mut frames = Vec::new();
    for f in applab_capture::ring::files(ring) {
        frames.extend(applab_capture::pcap::read_file(&f)?);
    }
    let cpu0 = thread_cpu();
    let mut d = Decoder::new(Limits::default());
    let mut kept_frames = Vec::with_capacity(frames.len());
    let mut kept_events = Vec::new();
    for f in &frames {
        let mut ev = Vec::new();
        kept_frames.push(d.frame(f.time.as_secs_f64(), &f.data, &mut ev));
        kept_events.extend(ev);
    }
    Ok((
        thread_cpu() - cpu0,
        kept_frames.len() as u64,
        kept_events.len() as u64,
    ))
}

struct Origin(Child);

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(a: CaptureArgs) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench/capture creates a bridge and network namespaces: run it as root");
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    std::fs::write(
        root.join("object.html"),
        "applab capture benchmark object. ".repeat(32),
    )?;
    setup()?;
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            teardown();
        }
    }
    let _cleanup = Cleanup;
    let origin = Origin(
        Command::new("ip")
            .args(["netns", "exec", NS[0]])
            .arg(&a.node_binary)
            .args([
                "origin",
                "--listen",
                "10.250.0.1:80",
                "--threads",
                "1",
                "--max-connections",
                "4096",
            ])
            .arg("--root")
            .arg(&root)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut rounds = Vec::new();
    for n in 0..a.rounds * 2 {
        let keepalive = n % 2 == 0;
        let r = round(&a, dir.path(), n, keepalive)?;
        let per100k = |cpu: Duration, frames: u64| cpu.as_secs_f64() * 1e5 / frames.max(1) as f64;
        eprintln!(
            "  {:<10} source {:>8} frames | applab {:>8} (drops {:>5}, kernel {}) {:.3} CPU s/100k | tcpdump {:>8} (drops {:>5}) {:.3} CPU s/100k",
            if keepalive { "keep-alive" } else { "close" },
            r.source,
            r.ours,
            r.source.saturating_sub(r.ours),
            r.ours_kernel_drops,
            per100k(r.ours_cpu, r.ours),
            r.tcpdump,
            r.source.saturating_sub(r.tcpdump),
            per100k(r.tcpdump_cpu, r.tcpdump),
        );
        rounds.push(r);
    }
    drop(origin);
    let source: u64 = rounds.iter().map(|r| r.source).sum();
    let ours: u64 = rounds.iter().map(|r| r.ours).sum();
    let theirs: u64 = rounds.iter().map(|r| r.tcpdump).sum();
    let ours_cpu: f64 = rounds.iter().map(|r| r.ours_cpu.as_secs_f64()).sum();
    let theirs_cpu: f64 = rounds.iter().map(|r| r.tcpdump_cpu.as_secs_f64()).sum();
    let (mut dec_cpu, mut dec_frames, mut dec_events) = (0.0, 0u64, 0u64);
    for r in &rounds {
        let (c, f, e) = decode(&r.ring)?;
        dec_cpu += c.as_secs_f64();
        dec_frames += f;
        dec_events += e;
    }
    let ours_per = ours_cpu * 1e5 / ours.max(1) as f64;
    let theirs_per = theirs_cpu * 1e5 / theirs.max(1) as f64;
    let dec_per = dec_cpu * 1e5 / dec_frames.max(1) as f64;
    if a.json {
        println!(
            "{:#}",
            serde_json::json!({
                "frames_at_source": source,
                "applab": {"captured": ours, "drops": source.saturating_sub(ours), "cpu_s_per_100k": ours_per},
                "tcpdump": {"captured": theirs, "drops": source.saturating_sub(theirs), "cpu_s_per_100k": theirs_per},
                "cpu_ratio": ours_per / theirs_per,
                "decode": {"frames": dec_frames, "events": dec_events, "cpu_s_per_100k": dec_per},
            })
        );
    } else {
        println!(
            "capture on one bridge, {} rounds of {} s (keep-alive and close alternating):",
            rounds.len(),
            a.seconds
        );
        println!("  frames at source  {source}");
        println!("  applab   captured {ours:>9}  drops {:>6}  capture+write {ours_per:.3} CPU s per 100k frames", source.saturating_sub(ours));
        println!("  tcpdump  captured {theirs:>9}  drops {:>6}  capture+write {theirs_per:.3} CPU s per 100k frames", source.saturating_sub(theirs));
        println!("  CPU ratio applab/tcpdump: {:.3}", ours_per / theirs_per);
        println!("  decoding and keeping (applab only): {dec_per:.3} CPU s per 100k frames ({dec_frames} frames, {dec_events} events)");
    }
    Ok(())
}
