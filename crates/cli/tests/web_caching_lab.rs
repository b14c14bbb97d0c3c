//! web-caching on a real launch: a scripted model student does each step
//! of CURRICULUM.md §3 from the workstation (a miss and a hit, a stale
//! object revalidated with a 304, the lecture's load with and without
//! hits, the instructor raising the access link's rate), and the link
//! shaping is measured from packet captures taken inside the nodes, which
//! know nothing of it: round-trip time, throughput both ways, and loss.
//! Needs a Docker engine and root (nsenter, tcpdump); fails without them.

mod common;

use common::Server;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "cache";

fn ws(s: &Server, script: &str) -> String {
    s.sh(RUN, "m1", "ws", script)
}

fn http_requests(s: &Server) -> Vec<Value> {
    s.events(RUN, "m1", "http")
        .into_iter()
        .filter(|e| e["type"] == "http_request" || e["type"] == "http_response")
        .collect()
}

fn link<'a>(st: &'a Value, node: &str, network: &str) -> &'a Value {
    st["links"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|l| l["student"] == "m1" && l["node"] == node && l["network"] == network)
        })
        .unwrap_or_else(|| panic!("no shaped link {node}/{network} for m1: {st}"))
}

/// The load tool, started in the background on the workstation; its JSON
/// summary lands in `out`.
fn start_load(s: &Server, repeat: f64, seconds: u32, out: &str) {
    ws(
        s,
        &format!(
            "http --proxy proxy:3128 --rate 15 --size 12500 --duration {seconds}s --repeat {repeat} \
             --json http://www.news.lab/load/ > {out} 2>&1 &"
        ),
    );
}

fn load_result(s: &Server, out: &str, within: Duration) -> Value {
    let t = Instant::now();
    loop {
        let text = ws(s, &format!("cat {out} 2>/dev/null || true"));
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v;
        }
        assert!(t.elapsed() < within, "load never finished: {text}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The access link's utilization while the load runs (after the
/// controller's 10 s window has filled with it).
fn utilization_under_load(s: &Server, repeat: f64) -> (f64, Value) {
    let out = format!("/tmp/load-{repeat}.json");
    start_load(s, repeat, 25, &out);
    std::thread::sleep(Duration::from_secs(17));
    let st = s.status(RUN);
    let u = link(&st, "proxy", "internet")["utilization"]
        .as_f64()
        .unwrap();
    let summary = load_result(s, &out, Duration::from_secs(90));
    (u, summary)
}

#[test]
fn model_student_does_web_caching_and_the_links_measure_as_shaped() {
    let mut s = Server::start("10.229.0.0/20");
    s.launch(RUN, "web-caching", &["m1", "i1", "c1"]);
    let st = s.status(RUN);
    assert!(
        st["shaping"]
            .as_str()
            .unwrap()
            .contains("NFQUEUE delay line")
            || st["shaping"].as_str().unwrap().contains("netem"),
        "{st}"
    );
    let secret = s.json(&["params", "m1", "--run", RUN])["secret_word"]
        .as_str()
        .unwrap()
        .to_string();

    // Step 1: a miss goes to the origin, a hit stays on campus.
    let fetch = || -> Value {
        let out = ws(
            &s,
            "http --page --json --proxy proxy:3128 http://www.news.lab/news.html",
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let miss = fetch();
    let hit = fetch();
    let ms = |v: &Value| v["total_ms"].as_f64().unwrap();
    // A miss crosses the Internet: a connection and a request, each a
    // 200 ms round trip. A hit does not.
    assert!(
        ms(&miss) > 390.0 && ms(&hit) < 100.0,
        "miss {miss}, hit {hit}"
    );
    let body = ws(
        &s,
        "http -q --proxy proxy:3128 http://www.news.lab/news.html",
    );
    assert!(body.contains(&secret), "{body}");
    let head = ws(
        &s,
        "http -I --proxy proxy:3128 http://www.news.lab/news.html",
    );
    assert!(
        head.contains("X-Cache: HIT") && head.contains("Via: 1.1 applab-proxy"),
        "{head}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let evs = http_requests(&s);
    let to_origin: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "http_request" && e["target"] == "/news.html")
        .collect();
    assert_eq!(
        to_origin.len(),
        1,
        "one request crossed the access link: {to_origin:?}"
    );
    assert_eq!(to_origin[0]["client_node"], "proxy");
    assert_eq!(to_origin[0]["server_node"], "origin");

    // Step 2: stale after 10 s; the proxy revalidates, the origin says 304.
    std::thread::sleep(Duration::from_secs(11));
    let again = ws(&s, "http --proxy proxy:3128 http://www.news.lab/news.html");
    assert!(again.contains("X-Cache: REVALIDATED"), "{again}");
    std::thread::sleep(Duration::from_secs(2));
    let evs = http_requests(&s);
    let cond = evs
        .iter()
        .find(|e| {
            e["type"] == "http_request"
                && e["target"] == "/news.html"
                && e["headers"].as_array().unwrap().iter().any(|h| {
                    h[0].as_str()
                        .unwrap()
                        .eq_ignore_ascii_case("if-modified-since")
                })
        })
        .unwrap_or_else(|| panic!("no conditional GET to the origin: {evs:?}"));
    assert_eq!(cond["client_node"], "proxy");
    let not_modified = evs
        .iter()
        .find(|e| e["type"] == "http_response" && e["status"] == 304)
        .unwrap_or_else(|| panic!("no 304: {evs:?}"));
    assert_eq!(not_modified["body_bytes"], 0);

    // Step 3: the lecture's load. No repeats: every request crosses the
    // access link, which runs full (0.974 in the lecture; at least 0.9).
    let (u, summary) = utilization_under_load(&s, 0.0);
    assert!(
        u > 0.9 && u < 1.1,
        "utilization without hits {u}: {summary}"
    );
    assert_eq!(summary["hits"], 0, "{summary}");
    let slow = summary["mean_ms"].as_f64().unwrap();
    // 40% repeats: the cache answers them; the link carries the rest.
    let (u, summary) = utilization_under_load(&s, 0.4);
    let hit_rate = summary["hit_rate"].as_f64().unwrap();
    assert!((hit_rate - 0.4).abs() < 0.1, "{summary}");
    assert!(
        u > 0.45 && u < 0.75,
        "utilization with a 0.4 hit rate {u}: {summary}"
    );
    assert!(
        summary["mean_ms"].as_f64().unwrap() < slow,
        "hits make it faster: {summary}"
    );
    let stats = ws(&s, "http -q http://proxy:3128/_applab/stats");
    assert!(stats.contains("\"hits\""), "{stats}");
    // The instructor raises the access link to the lecture's 150 Mbps
    // (scaled: 15.4 Mbit/s): one command, utilization drops tenfold.
    s.ok(&[
        "shape", "all", "proxy", "internet", "--rate", "15.4mbit", "--run", RUN,
    ]);
    let st = s.status(RUN);
    assert_eq!(link(&st, "proxy", "internet")["rate_bps"], 15_400_000);
    let (u, summary) = utilization_under_load(&s, 0.0);
    assert!(u < 0.15, "utilization on the faster link {u}: {summary}");
    s.ok(&[
        "shape", "all", "proxy", "internet", "--rate", "1.54mbit", "--run", RUN,
    ]);

    // The model's answers to the access-link questions, from their numbers.
    let answers = |who: &str| -> [f64; 3] {
        let p = s.json(&["params", who, "--run", RUN]);
        let n = |k: &str| p[k].as_str().unwrap().parse::<f64>().unwrap();
        let u = n("request_rate") * 100.0 / 1540.0;
        [u, (1.0 - n("hit_percent") / 100.0) * u, u / 10.0]
    };
    let qs = [
        "utilization-no-cache",
        "utilization-cache",
        "utilization-fast-link",
    ];
    let mine = answers("m1");
    for (q, v) in qs.iter().zip(mine) {
        s.answer(RUN, "m1", "access-link", q, &format!("{v:.3}"));
    }
    let r = s.wait_status(
        RUN,
        "m1",
        "access-link",
        "load",
        "pass",
        Duration::from_secs(10),
    );
    r.assert_all("m1", "pass");
    r.assert_all("i1", "pending");
    // The copier fetches the page twice (that work is theirs, and no
    // parameter is in it) and answers with the model's numbers.
    s.sh(RUN, "c1", "ws", "http -q --proxy proxy:3128 http://www.news.lab/news.html; http -q --proxy proxy:3128 http://www.news.lab/news.html");
    let theirs = answers("c1");
    for (q, v) in qs.iter().zip(mine) {
        s.answer(RUN, "c1", "access-link", q, &format!("{v:.3}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let r = s.check(RUN);
    // Two students' numbers coincide only when both their parameters do.
    let judged = |i: usize| {
        if (mine[i] - theirs[i]).abs() <= 0.02 * theirs[i] {
            "pass"
        } else {
            "fail"
        }
    };
    r.assert_exactly(
        "c1",
        &[
            ("hit-and-miss", "miss-then-hit", "pass"),
            // The first step (the origin's 200) was seen; no revalidation yet.
            ("conditional-get", "revalidated", "fail"),
            ("access-link", "load", "pending"),
            ("access-link", "utilization-no-cache", judged(0)),
            ("access-link", "utilization-cache", judged(1)),
            ("access-link", "utilization-fast-link", judged(2)),
        ],
    );

    measure_shaping(&s);

    // A reset recreates the nodes; the shaping comes back with them.
    s.ok(&["reset", "m1", "--run", RUN]);
    let t = Instant::now();
    loop {
        let st = s.status(RUN);
        if m1(&st)["state"] == "ready"
            && st["links"]
                .as_array()
                .is_some_and(|l| l.iter().filter(|x| x["student"] == "m1").count() == 3)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "not reshaped after reset: {st}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let miss = fetch();
    assert!(
        ms(&miss) > 390.0,
        "the Internet delay is back after the reset: {miss}"
    );
}

fn pid(node: &str) -> u32 {
    let name = format!("applab-{RUN}-m1-{node}");
    let o = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", &name])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid of {name}"))
}

/// A node's address on the lab's `internet` network.
/// The model student's part of the status.
fn m1(st: &Value) -> &Value {
    st["students"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "m1"))
        .unwrap_or_else(|| panic!("no m1 in the status: {st}"))
}

fn addr(st: &Value, node: &str) -> String {
    let n = m1(st)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap();
    n["addresses"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(net, _)| net.ends_with("-internet"))
        .map(|(_, a)| a.as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{node} has no address on internet: {n}"))
}

/// tcpdump inside a node's network namespace, from the host.
fn capture(pid: u32, filter: &str, file: &std::path::Path) -> Child {
    let c = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "tcpdump",
            "-i",
            "any",
            "-s",
            "160",
            "-U",
            // Debian's tcpdump would drop to its own user and then fail to
            // write into the test's private folder.
            "-Z",
            "root",
            "-w",
        ])
        .arg(file)
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsenter and tcpdump (.ci/run installs them)");
    std::thread::sleep(Duration::from_millis(800));
    c
}

fn stop(mut c: Child) {
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

/// A captured frame: (time, source, destination, IP length, TCP payload, SYN, ACK).
type Frame = (f64, String, String, u64, u64, bool, bool);

fn frames(file: &std::path::Path) -> Vec<Frame> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ip.len",
            "-e",
            "tcp.len",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
        ])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let flag = |s: &str| s == "1" || s == "True";
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.to_string(),
                f.get(2)?.to_string(),
                f.get(3)?.parse().ok()?,
                f.get(4)?.parse().unwrap_or(0),
                flag(f.get(5)?),
                flag(f.get(6)?),
            ))
        })
        .collect()
}

/// Bits per second of the frames from `src` carrying data, on the wire
/// (IP length and the 14-byte Ethernet header), between the moments 20%
/// and 90% of the bytes had arrived: the steady state, without the slow
/// start and the tail.
fn throughput(fr: &[Frame], src: &str) -> f64 {
    let data: Vec<(f64, u64)> = fr
        .iter()
        .filter(|f| f.1 == src && f.4 > 0)
        .map(|f| (f.0, f.3 + 14))
        .collect();
    let total: u64 = data.iter().map(|d| d.1).sum();
    let (mut acc, mut t10, mut b10, mut t90, mut b90) = (0u64, None, 0, 0.0, 0);
    for (t, b) in &data {
        acc += b;
        if t10.is_none() && acc >= total / 5 {
            t10 = Some(*t);
            b10 = acc;
        }
        if acc <= total * 9 / 10 {
            t90 = *t;
            b90 = acc;
        }
    }
    (b90 - b10) as f64 * 8.0 / (t90 - t10.unwrap())
}

/// Send `bytes` up (a PUT through the proxy to the origin) and down (the
/// GET of it, a miss), captured inside the proxy and the origin: their
/// frames, in that order.
fn transfer(
    s: &Server,
    dir: &std::path::Path,
    (proxy, origin): (&str, &str),
    name: &str,
    bytes: u64,
) -> (Vec<Frame>, Vec<Frame>) {
    let (pp, po) = (
        dir.join(format!("{name}-proxy.pcap")),
        dir.join(format!("{name}-origin.pcap")),
    );
    let at_proxy = capture(pid("proxy"), &format!("host {origin}"), &pp);
    let at_origin = capture(pid("origin"), &format!("host {proxy}"), &po);
    let http = "http -q --timeout-ms 60000 --proxy proxy:3128";
    let url = format!("http://www.news.lab/uploads/{name}.bin");
    ws(s, &format!("head -c {bytes} /dev/zero > /tmp/{name} && {http} --data-file /tmp/{name} -X PUT {url}"));
    ws(
        s,
        &format!("{http} -o /tmp/{name}.got {url} && rm /tmp/{name} /tmp/{name}.got"),
    );
    stop(at_proxy);
    stop(at_origin);
    (frames(&pp), frames(&po))
}

/// The access link and the Internet delay, measured where the nodes are.
fn measure_shaping(s: &Server) {
    let st = s.status(RUN);
    let origin = addr(&st, "origin");
    let proxy = addr(&st, "proxy");
    let dir = tempfile::tempdir().unwrap();
    // 1.2 MB up (workstation → proxy → origin, a PUT) and down (a GET the
    // PUT made a miss): both cross the 1.54 Mbit/s link, about 6 s each,
    // long enough that TCP's start is a small part of it.
    let (fp, fo) = transfer(s, dir.path(), (&proxy, &origin), "big", 1_200_000);
    // RTT, seen by the proxy: its GET of the object (its last small
    // frame with data; the connection is a kept one, so no handshake) to
    // the first frame of the origin's answer. The origin answers at once.
    let get = fp
        .iter()
        .rev()
        .find(|f| f.1 == proxy && f.4 > 0 && f.4 < 1000)
        .expect("the proxy's GET");
    let answer = fp
        .iter()
        .find(|f| f.1 == origin && f.4 > 0 && f.0 > get.0)
        .expect("the origin's answer");
    let rtt = (answer.0 - get.0) * 1e3;
    assert!(
        (190.0..=210.0).contains(&rtt),
        "RTT {rtt:.1} ms, configured 2 × 100 ms"
    );
    let up = throughput(&fo, &proxy);
    let down = throughput(&fp, &origin);
    for (what, bps) in [("up", up), ("down", down)] {
        assert!(
            (bps - 1_540_000.0).abs() < 0.05 * 1_540_000.0,
            "{what}: {bps:.0} bit/s, configured 1.54 Mbit/s (RTT {rtt:.1} ms)"
        );
    }
    eprintln!("measured: RTT {rtt:.1} ms (200 configured), up {up:.0} bit/s, down {down:.0} bit/s (1540000 configured)");

    // 5% loss each way on the origin's attachment, counted in echo
    // requests and replies: single packets. (TCP's bytes would not do: the
    // delay line takes a GSO packet whole, so one loss there can be 60 KB.)
    s.ok(&[
        "shape", "m1", "origin", "internet", "--loss", "0.05", "--run", RUN,
    ]);
    let (pp, po) = (
        dir.path().join("ping-proxy.pcap"),
        dir.path().join("ping-origin.pcap"),
    );
    let at_proxy = capture(pid("proxy"), &format!("icmp and host {origin}"), &pp);
    let at_origin = capture(pid("origin"), &format!("icmp and host {proxy}"), &po);
    let pinged = Command::new("nsenter")
        .args(["-t", &pid("proxy").to_string(), "-n", "ping", "-q", "-n"])
        .args(["-c", "1000", "-i", "0.005", "-w", "12", &origin])
        .output()
        .expect("ping (scripts/setup installs iputils-ping)");
    stop(at_proxy);
    stop(at_origin);
    // The echo sequence numbers in a capture that match `filter`.
    let seqs = |file: &std::path::Path, filter: String| -> std::collections::BTreeSet<u32> {
        let o = Command::new("tcpdump")
            .args(["-nn", "-r"])
            .arg(file)
            .arg(filter)
            .output()
            .expect("tcpdump");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(", seq ").nth(1)?.split(',').next()?.parse().ok())
            .collect()
    };
    let request = |from: &str| format!("icmp[icmptype] = icmp-echo and src {from}");
    let reply = |from: &str| format!("icmp[icmptype] = icmp-echoreply and src {from}");
    // The first round trip is left out: while a flow's first packet waits
    // in the delay line its conntrack entry is unconfirmed, and the kernel
    // drops the packets behind it that race it to confirmation (seen here:
    // echo requests 2 to 10 of every run, with no loss configured).
    // The last round trips too: replies to the requests still in flight
    // when ping has its count were not all seen arriving (unexplained).
    let last = seqs(&pp, request(&proxy)).last().copied().unwrap_or(0);
    let counted = |all: std::collections::BTreeSet<u32>| -> std::collections::BTreeSet<u32> {
        all.into_iter()
            .filter(|&n| n > 50 && n + 50 <= last)
            .collect()
    };
    let (sent_req, got_req) = (
        counted(seqs(&pp, request(&proxy))),
        counted(seqs(&po, request(&proxy))),
    );
    let (sent_rep, got_rep) = (
        counted(seqs(&po, reply(&origin))),
        counted(seqs(&pp, reply(&origin))),
    );
    for (what, sent, got) in [
        ("to the origin", &sent_req, &got_req),
        ("from the origin", &sent_rep, &got_rep),
    ] {
        let (sent, got) = (sent.len() as f64, got.intersection(sent).count() as f64);
        assert!(
            sent >= 600.0,
            "{what}: only {sent} echo packets sent; ping said {}",
            String::from_utf8_lossy(&pinged.stdout)
        );
        let loss = 1.0 - got / sent;
        // Four standard deviations of a binomial count around 5%.
        let bound = 4.0 * (0.05 * 0.95 / sent).sqrt();
        assert!(
            (loss - 0.05).abs() < bound,
            "{what}: lost {loss:.3} of {sent} echo packets, configured 0.05 ± {bound:.3}"
        );
        eprintln!("measured loss {what}: {loss:.3} of {sent} packets (0.05 configured)");
    }
    s.ok(&[
        "shape", "m1", "origin", "internet", "--loss", "0", "--run", RUN,
    ]);
}
