//! `applab-bench proxy`: applab's caching proxy against Squid (forward
//! mode) and Varnish (reverse mode), both Debian's packages, one run.
//!
//! One applab origin serves the object to all three, fresh for an hour.
//! The hit path: wrk through each proxy after a warm-up request, so every
//! measured request is a hit (forward: absolute-form targets, set by a
//! wrk script; reverse: plain requests). The miss path: requests for
//! objects never asked for before, one at a time, through applab's proxy
//! and straight to the origin; the difference of the medians is what the
//! proxy adds to a miss (Squid's figure is printed beside it).

use crate::origin::{
    free_port, interleaved, median, wait_listening, wrk_sample, Sample, Server, WrkArgs,
};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ProxyArgs {
    /// The applab-node binary.
    #[arg(long)]
    node_binary: PathBuf,
    #[arg(long, default_value = "/usr/sbin/squid")]
    squid: PathBuf,
    #[arg(long, default_value = "/usr/sbin/varnishd")]
    varnishd: PathBuf,
    #[command(flatten)]
    wrk: WrkArgs,
    /// Size of the object, in bytes.
    #[arg(long, default_value_t = 12500)]
    object_bytes: usize,
    /// Misses timed one by one for the added latency.
    #[arg(long, default_value_t = 500)]
    misses: usize,
    #[arg(long)]
    json: bool,
}

fn start_node(a: &ProxyArgs, args: &[String], log: &Path) -> Result<Server> {
    let port = free_port()?;
    let child = Command::new(&a.node_binary)
        .args(args.iter().map(|s| s.replace("{port}", &port.to_string())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", a.node_binary.display()))?;
    let s = Server { child, port };
    wait_listening(port, "applab-node")?;
    Ok(s)
}

fn start_squid(a: &ProxyArgs, dir: &Path) -> Result<Server> {
    let port = free_port()?;
    let conf = dir.join("squid.conf");
    // Memory cache only, every client allowed, access log to a file.
    let workers = if a.wrk.workers > 1 {
        format!("workers {}\n", a.wrk.workers)
    } else {
        String::new()
    };
    std::fs::write(
        &conf,
        format!(
            "http_port 127.0.0.1:{port}\n{workers}cache_mem 256 MB\nmaximum_object_size_in_memory 4 MB\n\
             memory_cache_shared on\nhttp_access allow all\ncache_effective_user proxy\n\
             access_log daemon:{d}/access.log\ncache_log {d}/cache.log\npid_filename {d}/squid.pid\n\
             coredump_dir {d}\nlogfile_rotate 0\nshutdown_lifetime 1 seconds\n\
             refresh_pattern . 0 20% 4320\n",
            d = dir.display()
        ),
    )?;
    let _ = Command::new("chmod").arg("777").arg(dir).status();
    let child = Command::new(&a.squid)
        .args(["-N", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log"))?)
        .spawn()
        .context("starting squid (apt-get install squid)")?;
    let s = Server { child, port };
    wait_listening(port, "squid")?;
    Ok(s)
}

fn start_varnish(a: &ProxyArgs, dir: &Path, origin: u16) -> Result<Server> {
    let port = free_port()?;
    let _ = Command::new("chmod").arg("777").arg(dir).status();
    let child = Command::new(&a.varnishd)
        .args(["-F", "-a", &format!("127.0.0.1:{port}")])
        .args(["-b", &format!("127.0.0.1:{origin}")])
        .args(["-s", "malloc,256m", "-n"])
        .arg(dir.join("varnish"))
        .args(["-p", &format!("thread_pools={}", a.wrk.workers.max(1))])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("varnish.log"))?)
        .spawn()
        .context("starting varnishd (apt-get install varnish)")?;
    let s = Server { child, port };
    wait_listening(port, "varnishd")?;
    Ok(s)
}

/// One request on a new connection; the time to the whole answer, and
/// the answer's head.
fn timed_get(port: u16, target: &str) -> Result<(Duration, String)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {target} via port {port}: {head}");
    }
    Ok((took, head))
}

fn hits(a: &ProxyArgs, port: u16, forward_to: Option<u16>, dir: &Path) -> Result<Sample> {
    let mut extra = Vec::new();
    if let Some(origin) = forward_to {
        let script = dir.join("absolute.lua");
        std::fs::write(
            &script,
            format!("wrk.path = \"http://127.0.0.1:{origin}/object.bin\"\n"),
        )?;
        extra.extend(["-s".to_string(), script.to_string_lossy().into_owned()]);
    }
    extra.push(format!("http://127.0.0.1:{port}/object.bin"));
    wrk_sample(a.wrk.wrk_threads, a.wrk.connections, a.wrk.seconds, &extra)
}

pub fn run(a: ProxyArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("object.bin"), vec![b'o'; a.object_bytes])?;
    std::fs::write(
        dir.path().join("origin.toml"),
        "[[headers]]\nprefix = \"/\"\ncache_control = \"max-age=3600\"\n",
    )?;
    let origin = start_node(
        &a,
        &[
            "origin".into(),
            "--listen".into(),
            "127.0.0.1:{port}".into(),
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "--config".into(),
            dir.path()
                .join("origin.toml")
                .to_string_lossy()
                .into_owned(),
            "--max-connections".into(),
            "4096".into(),
        ],
        &dir.path().join("origin.log"),
    )?;
    let o = origin.port;
    let node_proxy = |reverse: bool, log: &str| {
        let mut args: Vec<String> = [
            "proxy",
            "--listen",
            "127.0.0.1:{port}",
            "--max-connections",
            "4096",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if reverse {
            args.extend(["--reverse".into(), format!("http://127.0.0.1:{o}")]);
        }
        start_node(&a, &args, &dir.path().join(log))
    };
    let fwd = node_proxy(false, "proxy-forward.log")?;
    let rev = node_proxy(true, "proxy-reverse.log")?;
    let squid_dir = dir.path().join("squid");
    std::fs::create_dir_all(&squid_dir)?;
    let squid = start_squid(&a, &squid_dir)?;
    let varnish_dir = dir.path().join("varnish-run");
    std::fs::create_dir_all(&varnish_dir)?;
    let varnish = start_varnish(&a, &varnish_dir, o)?;
    // Warm every cache, and check each answers a hit.
    let abs = format!("http://127.0.0.1:{o}/object.bin");
    for (port, target) in [
        (fwd.port, abs.as_str()),
        (squid.port, abs.as_str()),
        (rev.port, "/object.bin"),
        (varnish.port, "/object.bin"),
    ] {
        timed_get(port, target)?;
        std::thread::sleep(Duration::from_millis(200));
        timed_get(port, target)?;
    }
    let mut results = serde_json::Map::new();
    let mut lines = Vec::new();
    for (mode, ours, peer, name, forward_to) in [
        ("forward", fwd.port, squid.port, "squid", Some(o)),
        ("reverse", rev.port, varnish.port, "varnish", None),
    ] {
        let c = interleaved(a.wrk.rounds, mode, name, |mine| {
            hits(&a, if mine { ours } else { peer }, forward_to, dir.path())
        })?;
        let ((ur, tr), (up, tp), errors) = (c.rps, c.p99, c.errors);
        lines.push(format!(
            "hits, {mode:<7} applab {ur:>8.0} req/s p99 {up:>6.2} ms | {name:<7} {tr:>8.0} req/s p99 {tp:>6.2} ms | ratio {:.2}, p99 ratio {:.2}, errors {}/{}",
            ur / tr,
            up / tp,
            errors.0,
            errors.1
        ));
        results.insert(
            format!("hits_{mode}"),
            serde_json::json!({
                "applab": {"rps": ur, "p99_ms": up, "errors": errors.0},
                name: {"rps": tr, "p99_ms": tp, "errors": errors.1},
                "throughput_ratio": ur / tr,
                "p99_ratio": up / tp,
            }),
        );
    }
    // Misses: each object asked for once (a query makes a new URI; the
    // origin serves the same file), interleaved direct / applab / squid.
    let (mut direct, mut via, mut via_squid) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.misses {
        let path = format!("/object.bin?miss={i}");
        let absolute = format!("http://127.0.0.1:{o}/object.bin?miss={i}");
        let absolute_s = format!("http://127.0.0.1:{o}/object.bin?squid={i}");
        direct.push(timed_get(o, &path)?.0.as_secs_f64() * 1e3);
        let (t, head) = timed_get(fwd.port, &absolute)?;
        if !head.contains("X-Cache: MISS") {
            bail!("expected a miss: {head}");
        }
        via.push(t.as_secs_f64() * 1e3);
        via_squid.push(timed_get(squid.port, &absolute_s)?.0.as_secs_f64() * 1e3);
    }
    let (d, v, s) = (median(direct), median(via), median(via_squid));
    lines.push(format!(
        "misses: origin direct {d:.3} ms, via applab {v:.3} ms (adds {:.3} ms), via squid {s:.3} ms (adds {:.3} ms), medians of {}",
        v - d,
        s - d,
        a.misses
    ));
    results.insert(
        "misses".into(),
        serde_json::json!({"direct_ms": d, "applab_ms": v, "applab_added_ms": v - d, "squid_ms": s, "squid_added_ms": s - d}),
    );
    drop(fwd);
    drop(rev);
    drop(squid);
    drop(varnish);
    drop(origin);
    if a.json {
        println!("{}", serde_json::Value::Object(results));
    } else {
        println!(
            "proxy vs squid (forward) and varnish (reverse): {} B object, {} workers each, wrk -t{} -c{} -d{}s, median of {}",
            a.object_bytes, a.wrk.workers, a.wrk.wrk_threads, a.wrk.connections, a.wrk.seconds, a.wrk.rounds
        );
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}
