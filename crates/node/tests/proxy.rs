//! The proxy role against the origin role, driven by clients that are not
//! ours (curl `-x`, python3's http.client): each caching rule of RFC 9111
//! the web-caching lab relies on, forward and reverse mode, the messages'
//! way through (hop-by-hop fields, Via), failures (502, 504) and hostile
//! input. A small recording origin stands in where the test must see
//! exactly what reached the origin.

mod common;

use common::mail::wait_port;
use common::{bounded, free_addr};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const NODE: &str = env!("CARGO_BIN_EXE_applab-node");

const ORIGIN_CONFIG: &str = r#"
[[headers]]
prefix = "/fresh/"
cache_control = "max-age=60"
[[headers]]
prefix = "/short/"
cache_control = "max-age=1"
[[headers]]
prefix = "/nostore/"
cache_control = "no-store"
[[headers]]
prefix = "/private/"
cache_control = "private, max-age=60"
[[headers]]
prefix = "/nocache/"
cache_control = "no-cache"
[[headers]]
prefix = "/mustrev/"
cache_control = "max-age=1, must-revalidate"
[[headers]]
prefix = "/smax/"
cache_control = "s-maxage=60, max-age=0"
[[headers]]
prefix = "/expires/"
expires = "60s"
[[headers]]
prefix = "/vary/"
cache_control = "max-age=60"
vary = "Accept-Language"
[[headers]]
prefix = "/uploads/"
cache_control = "max-age=60"
"#;

fn spawn(args: &[&str], log: &Path) -> Child {
    Command::new(NODE)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("applab-node starts")
}

/// The origin role with objects under each caching prefix, and a proxy
/// (forward, or reverse in front of it).
struct Lab {
    dir: tempfile::TempDir,
    origin: SocketAddr,
    proxy: SocketAddr,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Lab {
    fn start(reverse: bool, proxy_args: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        for p in [
            "fresh", "short", "nostore", "private", "nocache", "mustrev", "smax", "expires",
            "vary", "old", "uploads",
        ] {
            std::fs::create_dir_all(root.join(p)).unwrap();
            std::fs::write(root.join(p).join("a.txt"), format!("object in {p}\n")).unwrap();
        }
        std::fs::write(root.join("fresh/big.bin"), vec![b'x'; 100_000]).unwrap();
        // No caching fields at all, last modified ten days ago: a cache
        // may guess a freshness lifetime (10% of that age, RFC 9111 §4.2.2).
        let ten_days = SystemTime::now() - Duration::from_secs(10 * 86400);
        std::fs::File::options()
            .write(true)
            .open(root.join("old/a.txt"))
            .unwrap()
            .set_modified(ten_days)
            .unwrap();
        std::fs::write(dir.path().join("origin.toml"), ORIGIN_CONFIG).unwrap();
        let origin = free_addr();
        let mut children = vec![spawn(
            &[
                "origin",
                "--listen",
                &origin.to_string(),
                "--root",
                &root.to_string_lossy(),
                "--config",
                &dir.path().join("origin.toml").to_string_lossy(),
            ],
            &dir.path().join("origin.log"),
        )];
        let proxy = free_addr();
        let mut args = vec!["proxy".to_string(), "--listen".into(), proxy.to_string()];
        if reverse {
            args.extend(["--reverse".into(), format!("http://{origin}")]);
        }
        args.extend(proxy_args.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        children.push(spawn(&args, &dir.path().join("proxy.log")));
        wait_port(origin);
        wait_port(proxy);
        Lab {
            dir,
            origin,
            proxy,
            children,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.origin)
    }

    /// Requests for `path` the origin has logged, with their status.
    fn origin_saw(&self, path: &str) -> Vec<u16> {
        // The origin writes its log every 100 ms.
        std::thread::sleep(Duration::from_millis(250));
        let log = std::fs::read_to_string(self.dir.path().join("origin.log")).unwrap();
        log.lines()
            .filter(|l| l.contains(&format!(" {path} HTTP/1.1\"")))
            .filter_map(|l| l.split("status=").nth(1)?.get(..3)?.parse().ok())
            .collect()
    }

    /// curl through the proxy: (status, header fields, body).
    fn get(&self, path: &str, extra: &[&str]) -> Reply {
        let url = self.url(path);
        let mut args = vec!["-x", &url[..0]];
        let proxy = format!("http://{}", self.proxy);
        args[1] = &proxy;
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    fn stats(&self) -> serde_json::Value {
        let r = curl(&[&format!("http://{}/_applab/stats", self.proxy)]);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("stats JSON: {e}: {}", r.body))
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }
    fn cache(&self) -> &str {
        self.h("x-cache").unwrap_or("(no X-Cache)")
    }
}

fn curl(args: &[&str]) -> Reply {
    let mut all = vec!["-s", "-i", "--max-time", "20"];
    all.extend_from_slice(args);
    let o = bounded(Command::new("curl").args(&all), Duration::from_secs(60));
    parse_reply(&String::from_utf8_lossy(&o.stdout))
}

fn parse_reply(mut text: &str) -> Reply {
    // Interim answers (100 Continue to curl's Expect) come first.
    while text.starts_with("HTTP/1.1 1") {
        text = text
            .split_once("\r\n\r\n")
            .map(|(_, rest)| rest)
            .unwrap_or("");
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[test]
fn a_second_request_is_answered_by_the_proxy_alone() {
    let lab = Lab::start(false, &[]);
    let first = lab.get("/fresh/a.txt", &[]);
    assert_eq!((first.status, first.cache()), (200, "MISS"), "{first:?}");
    assert_eq!(first.body, "object in fresh\n");
    assert!(
        first
            .h("via")
            .is_some_and(|v| v.ends_with("1.1 applab-proxy")),
        "{first:?}"
    );
    let second = lab.get("/fresh/a.txt", &[]);
    assert_eq!((second.status, second.cache()), (200, "HIT"), "{second:?}");
    assert_eq!(second.body, first.body);
    assert!(second.h("age").is_some(), "a stored response carries Age");
    assert_eq!(second.h("etag"), first.h("etag"));
    assert_eq!(
        lab.origin_saw("/fresh/a.txt"),
        [200],
        "the hit never reached the origin"
    );
    let s = lab.stats();
    assert_eq!(
        (s["total"]["hits"].as_u64(), s["total"]["misses"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert!(s["total"]["bytes_from_origin"].as_u64().unwrap() > 0);
    assert!(s["window"]["bytes_to_clients"].as_u64().unwrap() > 0);
    assert_eq!(s["cache"]["objects"].as_u64(), Some(1));
}

#[test]
fn a_stale_object_is_revalidated_and_a_304_keeps_the_body() {
    let lab = Lab::start(false, &[]);
    assert_eq!(lab.get("/short/a.txt", &[]).cache(), "MISS");
    std::thread::sleep(Duration::from_millis(1100));
    let r = lab.get("/short/a.txt", &[]);
    assert_eq!((r.status, r.cache()), (200, "REVALIDATED"), "{r:?}");
    assert_eq!(r.body, "object in short\n");
    // The origin answered the conditional GET with 304 and no body.
    assert_eq!(lab.origin_saw("/short/a.txt"), [200, 304]);
    // The 304 refreshed the stored response: fresh again for a second.
    assert_eq!(lab.get("/short/a.txt", &[]).cache(), "HIT");
    // A changed object: the revalidation gets the new one.
    std::thread::sleep(Duration::from_millis(1100));
    let p = lab.dir.path().join("content/short/a.txt");
    std::fs::write(&p, "changed and longer\n").unwrap();
    let r = lab.get("/short/a.txt", &[]);
    assert_eq!(
        (r.cache(), r.body.as_str()),
        ("MISS", "changed and longer\n"),
        "{r:?}"
    );
}

#[test]
fn response_directives_decide_what_is_stored() {
    let lab = Lab::start(false, &[]);
    let twice = |p: &str| {
        let a = lab.get(p, &[]);
        assert_eq!(a.status, 200, "{p}: {a:?}");
        let b = lab.get(p, &[]);
        assert_eq!(b.body, a.body, "{p}");
        (a.cache().to_string(), b.cache().to_string())
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(twice("/nostore/a.txt"), pair("MISS", "MISS"), "no-store");
    assert_eq!(
        twice("/private/a.txt"),
        pair("MISS", "MISS"),
        "private: a shared cache keeps nothing"
    );
    assert_eq!(
        twice("/nocache/a.txt"),
        pair("MISS", "REVALIDATED"),
        "no-cache: stored, checked each time"
    );
    assert_eq!(
        twice("/smax/a.txt"),
        pair("MISS", "HIT"),
        "s-maxage wins over max-age=0 in a shared cache"
    );
    assert_eq!(
        twice("/expires/a.txt"),
        pair("MISS", "HIT"),
        "Expires in the future"
    );
    assert_eq!(
        twice("/old/a.txt"),
        pair("MISS", "HIT"),
        "heuristic freshness from Last-Modified"
    );
    assert_eq!(lab.origin_saw("/nostore/a.txt").len(), 2);
    assert_eq!(lab.origin_saw("/nocache/a.txt"), [200, 304]);
    assert_eq!(lab.origin_saw("/smax/a.txt").len(), 1);
}

#[test]
fn request_directives_and_head_and_client_validators() {
    let lab = Lab::start(false, &[]);
    let only = ["-H", "Cache-Control: only-if-cached"];
    assert_eq!(
        lab.get("/fresh/a.txt", &only).status,
        504,
        "only-if-cached, nothing stored"
    );
    let first = lab.get("/fresh/a.txt", &[]);
    assert_eq!(lab.get("/fresh/a.txt", &only).cache(), "HIT");
    let r = lab.get("/fresh/a.txt", &["-H", "Cache-Control: max-age=0"]);
    assert_eq!(
        r.cache(),
        "REVALIDATED",
        "max-age=0 asks for a check with the origin"
    );
    let r = lab.get("/fresh/a.txt", &["-H", "Cache-Control: no-cache"]);
    assert_eq!(r.cache(), "REVALIDATED");
    let r = lab.get("/fresh/a.txt", &["-H", "Pragma: no-cache"]);
    assert_eq!(
        r.cache(),
        "REVALIDATED",
        "Pragma: no-cache without Cache-Control"
    );
    // HEAD from the stored GET: same fields, no body.
    let h = lab.get("/fresh/a.txt", &["-I"]);
    assert_eq!(
        (h.status, h.cache(), h.body.as_str()),
        (200, "HIT", ""),
        "{h:?}"
    );
    assert_eq!(h.h("content-length"), Some("16"));
    // The client's own validators against the stored copy: 304 from here.
    let etag = first.h("etag").unwrap();
    let r = lab.get("/fresh/a.txt", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(
        (r.status, r.cache(), r.body.as_str()),
        (304, "HIT", ""),
        "{r:?}"
    );
    let lm = first.h("last-modified").unwrap();
    let r = lab.get("/fresh/a.txt", &["-H", &format!("If-Modified-Since: {lm}")]);
    assert_eq!(r.status, 304);
    let r = lab.get("/fresh/a.txt", &["-H", "If-None-Match: \"other\""]);
    assert_eq!((r.status, r.body.as_str()), (200, "object in fresh\n"));
    // The origin saw the first GET and the three revalidations only.
    assert_eq!(lab.origin_saw("/fresh/a.txt"), [200, 304, 304, 304]);
}

#[test]
fn vary_keeps_one_copy_per_language() {
    let lab = Lab::start(false, &[]);
    let get = |lang: &str| {
        lab.get("/vary/a.txt", &["-H", &format!("Accept-Language: {lang}")])
            .cache()
            .to_string()
    };
    assert_eq!(get("fr"), "MISS");
    assert_eq!(get("fr"), "HIT");
    assert_eq!(get("en"), "MISS");
    assert_eq!(get("en"), "HIT");
    assert_eq!(get("fr"), "HIT");
    assert_eq!(lab.origin_saw("/vary/a.txt").len(), 2);
}

#[test]
fn unsafe_methods_pass_through_and_invalidate() {
    let lab = Lab::start(false, &[]);
    let file = lab.dir.path().join("body.txt");
    std::fs::write(&file, "version one\n").unwrap();
    let f = file.to_string_lossy().to_string();
    let put = lab.get("/uploads/doc.txt", &["-T", &f]);
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(lab.get("/uploads/doc.txt", &[]).cache(), "MISS");
    assert_eq!(lab.get("/uploads/doc.txt", &[]).cache(), "HIT");
    std::fs::write(&file, "version two\n").unwrap();
    assert_eq!(lab.get("/uploads/doc.txt", &["-T", &f]).status, 204);
    let r = lab.get("/uploads/doc.txt", &[]);
    assert_eq!(
        (r.cache(), r.body.as_str()),
        ("MISS", "version two\n"),
        "the PUT invalidated it"
    );
    assert_eq!(lab.get("/uploads/doc.txt", &["-X", "DELETE"]).status, 204);
    assert_eq!(lab.get("/uploads/doc.txt", &[]).status, 404);
    // A POST reaches the origin with its body (the form echo page).
    let r = lab.get("/search", &["--data", "q=caching"]);
    assert!(r.status == 200 && r.body.contains("caching"), "{r:?}");
}

#[test]
fn big_objects_stream_through_and_python_keeps_one_connection() {
    let lab = Lab::start(false, &["--max-object", "10K"]);
    let r = lab.get("/fresh/big.bin", &[]);
    assert_eq!((r.status, r.body.len(), r.cache()), (200, 100_000, "MISS"));
    assert_eq!(
        lab.get("/fresh/big.bin", &[]).cache(),
        "MISS",
        "too big to keep"
    );
    // python3's http.client: one persistent connection for several
    // requests, HTTP/1.0 and chunked-free.
    let script = format!(
        r#"
import http.client, json
c = http.client.HTTPConnection("{p}")
seen = []
for path in ["/fresh/a.txt", "/fresh/a.txt", "/fresh/big.bin", "/nostore/a.txt", "/fresh/a.txt"]:
    c.request("GET", "http://{o}" + path)
    r = c.getresponse()
    body = r.read()
    seen.append((r.status, r.getheader("X-Cache"), len(body)))
print(json.dumps({{"seen": seen, "same_socket": c.sock is not None}}))
"#,
        p = lab.proxy,
        o = lab.origin
    );
    let o = bounded(
        Command::new("python3").args(["-c", &script]),
        Duration::from_secs(60),
    );
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(
        out["seen"],
        serde_json::json!([
            [200, "MISS", 16],
            [200, "HIT", 16],
            [200, "MISS", 100000],
            [200, "MISS", 18],
            [200, "HIT", 16]
        ])
    );
    assert_eq!(out["same_socket"], true);
    // The proxy writes its log every 100 ms.
    let t = Instant::now();
    while !std::fs::read_to_string(lab.dir.path().join("proxy.log"))
        .unwrap()
        .contains("reused=true")
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the client's connection was reused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reverse_mode_fronts_one_origin() {
    let lab = Lab::start(true, &[]);
    let url = format!("http://{}/fresh/a.txt", lab.proxy);
    let a = curl(&[&url]);
    let b = curl(&[&url]);
    assert_eq!(
        (a.status, a.cache(), b.cache()),
        (200, "MISS", "HIT"),
        "{a:?}"
    );
    assert_eq!(b.body, "object in fresh\n");
    let file = lab.dir.path().join("up.txt");
    std::fs::write(&file, "via the edge\n").unwrap();
    let put = curl(&[
        "-T",
        &file.to_string_lossy(),
        &format!("http://{}/uploads/e.txt", lab.proxy),
    ]);
    assert_eq!(put.status, 201, "PUT passes through to the origin: {put:?}");
    assert_eq!(
        std::fs::read_to_string(lab.dir.path().join("content/uploads/e.txt")).unwrap(),
        "via the edge\n"
    );
    // No freshness information and no Last-Modified-based heuristic: the
    // origin's 404 page is stored only as its status allows (heuristically
    // cacheable) and never served fresh without a lifetime.
    assert_eq!(
        curl(&[&format!("http://{}/missing", lab.proxy)]).status,
        404
    );
}

/// An origin that records what reached it and answers as told, slowly if
/// asked: to see hop-by-hop fields stop at the proxy and concurrent misses
/// collapse into one fetch.
struct Recorder {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(delay: Duration, answer: &'static str) -> Recorder {
        Recorder::scripted(delay, move |_| answer.to_string())
    }

    /// An origin whose answer depends on the request head it got.
    fn scripted(
        delay: Duration,
        answer: impl Fn(&str) -> String + Send + Sync + Clone + 'static,
    ) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let h = h.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                    let mut buf = Vec::new();
                    let mut b = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let reply = answer(&head);
                            h.lock().unwrap().push(head);
                            std::thread::sleep(delay);
                            if s.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                });
            }
        });
        Recorder { addr, heads }
    }
}

fn proxy_alone(args: &[&str]) -> (SocketAddr, Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut all = vec!["proxy", "--listen"];
    let a = addr.to_string();
    all.push(&a);
    all.extend_from_slice(args);
    let child = spawn(&all, &dir.path().join("proxy.log"));
    wait_port(addr);
    (addr, child, dir)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hop_by_hop_fields_stop_at_the_proxy_both_ways() {
    let origin = Recorder::start(
        Duration::ZERO,
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-End: kept\r\n\r\nabc",
    );
    let (proxy, child, _dir) = proxy_alone(&[]);
    let _k = Kill(child);
    let r = curl(&[
        "-x",
        &format!("http://{proxy}"),
        "-H",
        "Connection: X-Private",
        "-H",
        "X-Private: 1",
        "-H",
        "Proxy-Connection: keep-alive",
        "-H",
        "TE: trailers",
        "-H",
        "Upgrade: h2c",
        "-H",
        "Host: wrong.example",
        &format!("http://{}/page", origin.addr),
    ]);
    assert_eq!((r.status, r.body.as_str()), (200, "abc"));
    assert_eq!(r.h("x-end"), Some("kept"));
    assert!(
        r.h("x-hop").is_none() && r.h("keep-alive").is_none(),
        "{r:?}"
    );
    let heads = origin.heads.lock().unwrap().clone();
    let head = heads[0].to_ascii_lowercase();
    assert!(
        head.starts_with("get /page http/1.1\r\n"),
        "origin-form towards the origin: {head}"
    );
    for gone in [
        "x-private",
        "proxy-connection",
        "te:",
        "upgrade",
        "connection: x-private",
    ] {
        assert!(!head.contains(gone), "{gone} was forwarded: {head}");
    }
    assert!(
        head.contains(&format!("host: {}", origin.addr)),
        "Host follows the absolute URI: {head}"
    );
    assert!(head.contains("via: 1.1 applab-proxy"), "{head}");
}

#[test]
fn concurrent_misses_make_one_origin_fetch() {
    let origin = Recorder::start(
        Duration::from_millis(400),
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello",
    );
    let (proxy, child, _dir) = proxy_alone(&[]);
    let _k = Kill(child);
    let url = format!("http://{}/popular", origin.addr);
    let mut args = vec![
        "-s".to_string(),
        "--parallel".into(),
        "--parallel-immediate".into(),
        "--parallel-max".into(),
        "20".into(),
        "-x".into(),
        format!("http://{proxy}"),
        "-w".into(),
        "%{http_code} ".into(),
    ];
    for _ in 0..20 {
        args.push(url.clone());
    }
    let o = bounded(Command::new("curl").args(&args), Duration::from_secs(60));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        (out.matches("hello").count(), out.matches("200").count()),
        (20, 20),
        "{out}"
    );
    assert_eq!(
        origin.heads.lock().unwrap().len(),
        1,
        "twenty concurrent misses, one fetch"
    );
}

#[test]
fn failures_are_readable_502_and_504_and_connect_is_refused() {
    let silent = Recorder::start(Duration::from_secs(30), "");
    let (proxy, child, _dir) = proxy_alone(&["--response-timeout", "1"]);
    let _k = Kill(child);
    let p = format!("http://{proxy}");
    let closed = free_addr();
    let r = curl(&["-x", &p, &format!("http://{closed}/")]);
    assert_eq!(r.status, 502);
    assert!(r.body.contains("cannot connect"), "{r:?}");
    let t = Instant::now();
    let r = curl(&["-x", &p, &format!("http://{}/", silent.addr)]);
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        r.body.contains("did not answer") && t.elapsed() < Duration::from_secs(5),
        "{r:?}"
    );
    let mut s = TcpStream::connect(proxy).unwrap();
    s.write_all(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut s);
    assert!(r.starts_with("HTTP/1.1 403 "), "{r}");
    assert!(r.contains("CONNECT"), "{r}");
    // An https:// target without CONNECT: a scheme this proxy does not
    // speak (sent by hand: no name to resolve, so no DNS in the test).
    let mut s = TcpStream::connect(proxy).unwrap();
    s.write_all(
        b"GET https://example.org/ HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = read_reply(&mut s);
    assert!(
        r.starts_with("HTTP/1.1 501 ") && r.contains("http:// only"),
        "{r}"
    );
}

fn read_reply(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hostile_requests_get_their_status_and_the_proxy_stays_up() {
    let (proxy, child, _dir) = proxy_alone(&["--header-timeout", "1", "--max-body", "1K"]);
    let _k = Kill(child);
    let send = |raw: &[u8]| {
        let mut s = TcpStream::connect(proxy).unwrap();
        let _ = s.write_all(raw);
        read_reply(&mut s)
    };
    let long = format!(
        "GET http://o/{} HTTP/1.1\r\nHost: o\r\n\r\n",
        "a".repeat(10_000)
    );
    assert!(send(long.as_bytes()).starts_with("HTTP/1.1 414"));
    let mut many = String::from("GET http://o/ HTTP/1.1\r\nHost: o\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(send(many.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(
        send(b"GET http://o/ HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"),
        "no Host"
    );
    assert!(send(b"GET http://o/ HTTP/2.0\r\nHost: o\r\n\r\n").starts_with("HTTP/1.1 505"));
    assert!(send(b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    let big = b"POST http://o/ HTTP/1.1\r\nHost: o\r\nContent-Length: 5000\r\n\r\n";
    assert!(send(big).starts_with("HTTP/1.1 413"));
    assert!(send(b"POST http://o/ HTTP/1.1\r\nHost: o\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").starts_with("HTTP/1.1 400"), "smuggling shape");
    // A slow client: part of a head, then nothing.
    let t = Instant::now();
    let r = send(b"GET http://o/ HTTP/1.1\r\nHo");
    assert!(
        r.starts_with("HTTP/1.1 408") && t.elapsed() < Duration::from_secs(5),
        "{r}"
    );
    // A loop through itself is caught.
    let r = curl(&[
        "-x",
        &format!("http://{proxy}"),
        &format!("http://{proxy}/x"),
    ]);
    assert!(r.status == 508 || r.status == 400, "{r:?}");
    // Still serving.
    let stats = curl(&[&format!("http://{proxy}/_applab/stats")]);
    assert_eq!(stats.status, 200);
}

/// How many requests for `path` reached the origin.
fn reached(origin: &Recorder, path: &str) -> usize {
    let line = format!("GET {path} ");
    origin
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.starts_with(&line))
        .count()
}

/// RFC 9111 §4.3.4: a 304 that repeats no validator updates the stored
/// response, and a client that sent a plain GET gets that response's 200
/// and body (as Squid, Varnish and nginx answer), never a bodiless 304.
#[test]
fn a_304_without_its_etag_still_serves_the_stored_body() {
    let origin = Recorder::scripted(Duration::ZERO, |head| {
        if head.to_ascii_lowercase().contains("if-none-match: \"v1\"") {
            "HTTP/1.1 304 Not Modified\r\nCache-Control: no-cache\r\n\r\n".into()
        } else {
            "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nCache-Control: no-cache\r\nContent-Length: 5\r\n\r\nhello".into()
        }
    });
    let (proxy, child, _dir) = proxy_alone(&[]);
    let _k = Kill(child);
    let url = format!("http://{}/doc", origin.addr);
    let via = format!("http://{proxy}");
    let first = curl(&["-x", &via, &url]);
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "hello"),
        "{first:?}"
    );
    for _ in 0..2 {
        let again = curl(&["-x", &via, &url]);
        assert_eq!(
            (again.status, again.body.as_str(), again.cache()),
            (200, "hello", "REVALIDATED"),
            "{again:?}"
        );
    }
    assert_eq!(reached(&origin, "/doc"), 3, "no-cache: asked each time");
    // A client that itself holds v1 may be told 304.
    let cond = curl(&["-x", &via, "-H", "If-None-Match: \"v1\"", &url]);
    assert_eq!((cond.status, cond.body.as_str()), (304, ""), "{cond:?}");
}

/// The caching fields as RFC 9111 reads them, whatever their spelling.
#[test]
fn cache_fields_mean_what_the_rfc_says() {
    let origin = Recorder::scripted(Duration::ZERO, |head| {
        let path = head.split(' ').nth(1).unwrap_or("");
        let fields = match path {
            // Directive names are case-insensitive: this is no-cache.
            "/mixed" => "Cache-Control: max-age=60, No-CaChE\r\nETag: \"m\"\r\n",
            // Age is its first member: 7200 s old, stale at max-age 3600.
            "/age" => "Cache-Control: max-age=3600\r\nAge: 7200, 0\r\n",
            // Not an HTTP-date (two spaces): already expired.
            "/bad-expires" => "Expires: Sat, 06 Nov 2094  08:49:37 GMT\r\n",
            // The asctime form is a date: fresh until 2094.
            "/asctime" => "Expires: Sat Nov  6 08:49:37 2094\r\n",
            _ => "Cache-Control: max-age=60\r\n",
        };
        format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\nok")
    });
    let (proxy, child, _dir) = proxy_alone(&[]);
    let _k = Kill(child);
    let via = format!("http://{proxy}");
    for (path, want) in [
        ("/mixed", 2),
        ("/age", 2),
        ("/bad-expires", 2),
        ("/asctime", 1),
    ] {
        let url = format!("http://{}{path}", origin.addr);
        for _ in 0..2 {
            let r = curl(&["-x", &via, &url]);
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{path}: {r:?}");
        }
        assert_eq!(reached(&origin, path), want, "{path}");
    }
}

/// RFC 9213: an invalid CDN-Cache-Control (keys are lowercase) is ignored
/// by the edge, so the origin's `no-store` holds; a valid one wins.
#[test]
fn an_invalid_cdn_cache_control_never_overrides_no_store() {
    let origin = Recorder::scripted(Duration::ZERO, |head| {
        let cdn = if head.starts_with("GET /bad ") {
            "Max-Age=60"
        } else {
            "max-age=60"
        };
        format!(
            "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nCDN-Cache-Control: {cdn}\r\nContent-Length: 2\r\n\r\nok"
        )
    });
    let reverse = format!("http://{}", origin.addr);
    let (proxy, child, _dir) = proxy_alone(&["--reverse", &reverse]);
    let _k = Kill(child);
    for (path, want) in [("/bad", 2), ("/good", 1)] {
        for _ in 0..2 {
            let r = curl(&[&format!("http://{proxy}{path}")]);
            assert_eq!(r.status, 200, "{path}: {r:?}");
        }
        assert_eq!(reached(&origin, path), want, "{path}");
    }
}

/// RFC 9112 §3.2: two Host fields, or one that is not host[:port], get
/// 400; HTTP/1.2 … 1.9 are served as 1.1 and HTTP/2.0 keeps its 505.
#[test]
fn request_heads_host_and_version() {
    let origin = Recorder::start(
        Duration::ZERO,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok",
    );
    let (proxy, child, _dir) = proxy_alone(&[]);
    let _k = Kill(child);
    let ask = |req: String| {
        let mut s = TcpStream::connect(proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        read_reply(&mut s)
    };
    let o = origin.addr;
    for (req, status) in [
        (
            format!("GET http://{o}/a HTTP/1.1\r\nHost: {o}\r\nHost: {o}\r\n\r\n"),
            "400",
        ),
        (
            format!("GET http://{o}/a HTTP/1.1\r\nHost: a b\r\n\r\n"),
            "400",
        ),
        (
            format!("GET http://{o}/a HTTP/1.1\r\nHost: x:80x\r\n\r\n"),
            "400",
        ),
        (
            format!("GET http://{o}/a HTTP/1.5\r\nHost: {o}\r\nConnection: close\r\n\r\n"),
            "200",
        ),
        (
            format!("GET http://{o}/a HTTP/2.0\r\nHost: {o}\r\n\r\n"),
            "505",
        ),
    ] {
        let answer = ask(req.clone());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{req:?} → {answer}"
        );
    }
}
