//! The origin started from its binary on loopback, and the real clients
//! the tests drive it with.
#![allow(dead_code)] // each test file uses part of it

pub mod mail;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Origin {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = r#"
moved = { "/home.index" = "/index.html" }
[[headers]]
prefix = "/img/"
cache_control = "max-age=30"
expires = "30s"
[page]
path = "/page.html"
objects = 10
size = "100K"
[shop]
path = "/shop"
items = ["tea", "a book"]
"#;

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Origin {
    pub fn start(extra: &[&str]) -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        std::fs::create_dir_all(root.join("img")).unwrap();
        std::fs::write(
            root.join("index.html"),
            "<html><body><img src=\"/img/a.jpg\"></body></html>\n",
        )
        .unwrap();
        std::fs::write(root.join("img/a.jpg"), [0xFFu8, 0xD8, 0xFF, 0xD9]).unwrap();
        std::fs::write(dir.path().join("node.toml"), CONFIG).unwrap();
        Self::spawn(dir, free_addr(), extra)
    }

    fn spawn(dir: tempfile::TempDir, addr: SocketAddr, extra: &[&str]) -> Origin {
        let d = dir.path();
        let child = Command::new(env!("CARGO_BIN_EXE_applab-node"))
            .arg("origin")
            .args(["--listen", &addr.to_string()])
            .args(["--root", &d.join("content").to_string_lossy()])
            .args(["--config", &d.join("node.toml").to_string_lossy()])
            .args(["--state", &d.join("state").to_string_lossy()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("applab-node starts");
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "origin never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Origin { child, addr, dir }
    }

    /// Stop and start again on the same address and folders.
    pub fn restart(mut self) -> Origin {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let addr = self.addr;
        // Move the folder out; `self`'s Drop then only kills a dead child.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::spawn(dir, addr, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

pub fn tool(name: &str, args: &[&str], cwd: Option<&Path>) -> Output {
    let mut c = Command::new(name);
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    bounded(&mut c, Duration::from_secs(120))
}

/// Run one of `tests/clients/` with python3 to its end; its failure
/// fails the test with what it printed.
pub fn python_client(script: &str, args: &[&str]) {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![path.as_str()];
    all.extend_from_slice(args);
    let out = tool("python3", &all, None);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every event `d` decodes from a pcap file.
pub fn decode_pcap(pcap: &Path, mut d: applab_capture::Decoder) -> Vec<applab_capture::Event> {
    let frames = applab_capture::pcap::read_file(pcap).unwrap();
    let mut events = Vec::new();
    for f in &frames {
        d.frame(f.time.as_secs_f64(), &f.data, &mut events);
    }
    events
}

/// curl with a 10 s limit, as the mail tests' user bob (`bob:bob-pw`):
/// what it printed; a failure fails the test with curl's own words.
pub fn curl_as_bob(extra: &[&str], url: &str) -> String {
    let mut args = vec!["-sS", "--max-time", "10", "-u", "bob:bob-pw"];
    args.extend_from_slice(extra);
    args.push(url);
    let o = tool("curl", &args, None);
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run a client that is not ours with a hard limit: a client waiting on
/// a prompt or a stopped terminal must fail the test with what it printed,
/// never hang the suite. The child gets its own process group, and the
/// whole group is killed at the limit.
pub fn bounded(c: &mut Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let name = c.get_program().to_string_lossy().into_owned();
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = c
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} must be installed (.ci/run installs it): {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{name} still ran after {limit:?}; killed. stdout:\n{}\nstderr:\n{}",
                read_all(out),
                read_all(err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: read_all(out).into_bytes(),
        stderr: read_all(err).into_bytes(),
    }
}

fn read_all(mut f: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_end(&mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// curl, returning (stdout, stderr) as text; `-s` always.
pub fn curl(args: &[&str], cwd: Option<&Path>) -> (String, String) {
    let mut all = vec!["-s", "--max-time", "10"];
    all.extend_from_slice(args);
    let o = tool("curl", &all, cwd);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A tcpdump running, and what it says on stderr.
pub struct Tcpdump {
    child: std::process::Child,
    said: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

/// tcpdump on loopback writing `pcap`, once it says it listens.
pub fn start_tcpdump(pcap: &str, filter: &str) -> Tcpdump {
    let mut dump = Command::new("tcpdump")
        .args([
            "-i",
            "lo",
            "-U",
            "--immediate-mode",
            // Immediate mode maps a ring of whole-snaplen frames: the
            // default 2 MiB holds 8, and a burst on a loaded machine was
            // dropped by the kernel (seen in CI: a connection's SYN and
            // request missing). 64 MiB holds 256.
            "-B",
            "65536",
            "-n",
            "-Z",
            "root",
            "-w",
            pcap,
        ])
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump must be installed (scripts/setup installs it)");
    let mut err = dump.stderr.take().unwrap();
    let t = Instant::now();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        use std::io::Read;
        let mut b = [0u8; 256];
        let n = err.read(&mut b).unwrap_or(0);
        assert!(
            n > 0 && t.elapsed() < Duration::from_secs(10),
            "tcpdump: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&b[..n]);
    }
    // Keep reading its stderr so it never blocks on a full pipe.
    let said = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let keep = said.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut b = [0u8; 1024];
        while let Ok(n @ 1..) = err.read(&mut b) {
            keep.lock().unwrap().extend_from_slice(&b[..n]);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    Tcpdump { child: dump, said }
}

/// Stop tcpdump once the last frames are written. Without --immediate-mode
/// libpcap hands frames over in blocks and an interrupted tcpdump drops the
/// last block; with it, a short wait does.
/// A capture that lost frames fails here, by name, rather than as a
/// decoding mystery later.
pub fn stop_tcpdump(dump: &mut Tcpdump) {
    std::thread::sleep(Duration::from_millis(500));
    unsafe_interrupt(dump.child.id());
    let _ = dump.child.wait();
    let t = Instant::now();
    loop {
        let said = String::from_utf8_lossy(&dump.said.lock().unwrap()).into_owned();
        if let Some(line) = said.lines().find(|l| l.contains("dropped by kernel")) {
            assert!(
                line.trim().starts_with("0 "),
                "tcpdump lost frames, the capture is incomplete: {said}"
            );
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "tcpdump did not report its drops: {said}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unsafe_interrupt(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
