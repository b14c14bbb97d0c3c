//! Taps on real student networks: what a student does appears as frames,
//! as HTTP events between their own nodes, and in a pcap that tshark reads;
//! nothing of it appears in another student's record; taps come back after
//! a controller restart. Needs a Docker engine and tshark; fails without.

mod common;

use common::Server;
use serde_json::Value;
use std::time::{Duration, Instant};

fn events(s: &Server, run: &str, student: &str, protocol: &str) -> Vec<Value> {
    s.events(run, student, protocol)
}

fn requests(evs: &[Value]) -> Vec<&Value> {
    evs.iter().filter(|e| e["type"] == "http_request").collect()
}

/// Wait until every tap of a student is open.
fn taps_open(s: &Server, run: &str, student: &str) {
    let t = Instant::now();
    loop {
        let v = s.json(&["capture", "frames", student, "--run", run, "--limit", "1"]);
        let taps = v["taps"].as_object().cloned().unwrap_or_default();
        if !taps.is_empty() && taps.values().all(|o| o == true) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "taps not open: {v}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Poll until at least `n` HTTP requests of `student` are recorded.
fn wait_requests(s: &Server, run: &str, student: &str, n: usize) -> (Vec<Value>, Duration) {
    let t = Instant::now();
    loop {
        let evs = events(s, run, student, "http");
        // The last response is decoded a frame after its request: wait
        // for the exchanges to be whole, not just begun.
        let answered = evs.iter().filter(|e| e["type"] == "http_response").count();
        if requests(&evs).len() >= n && answered >= n {
            return (evs, t.elapsed());
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "only {} requests seen: {evs:?}",
            requests(&evs).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_student_sees_their_own_traffic_as_frames_events_and_pcap() {
    let mut s = Server::start("10.226.0.0/20");
    s.launch("cap", "http-basics", &["c1", "c2"]);
    taps_open(&s, "cap", "c1");
    taps_open(&s, "cap", "c2");
    let p1 = s.json(&["params", "c1", "--run", "cap"]);
    let p2 = s.json(&["params", "c2", "--run", "cap"]);
    let site = format!("www.{}.lab", p1["site"].as_str().unwrap());
    let (secret1, secret2) = (
        p1["secret_word"].as_str().unwrap().to_string(),
        p2["secret_word"].as_str().unwrap().to_string(),
    );

    // A live subscriber, as the panel will be: each event's arrival is
    // timed against the kernel timestamp of the frame that completed it.
    let token = std::fs::read_to_string(s.data.path().join("instructor.token")).unwrap();
    let mut curl = std::process::Command::new("curl")
        .args(["-s", "-N", "--max-time", "20", "-H"])
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .arg(format!(
            "http://127.0.0.1:{}/api/capture/stream?run=cap&student=c1",
            s.port
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl must be installed");
    let out = curl.stdout.take().unwrap();
    let (tx, live) = std::sync::mpsc::channel::<(f64, Value)>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix("data: ") {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                if let Ok(v) = serde_json::from_str(json) {
                    let _ = tx.send((now, v));
                }
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // c1 fetches the page and its ten objects, one connection each.
    let (code, out) = s.exec(
        "cap",
        "c1",
        "ws",
        &[
            "http",
            "--page",
            "--json",
            "--no-keepalive",
            &format!("http://{site}/index.html"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (evs, waited) = wait_requests(&s, "cap", "c1", 11);
    // Live within about a second of the traffic (the poll adds its own delay).
    assert!(waited < Duration::from_secs(3), "events took {waited:?}");
    let reqs = requests(&evs);
    assert_eq!(reqs.len(), 11, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r["client_node"], "ws", "{r}");
        assert_eq!(r["server_node"], "origin", "{r}");
        assert_eq!(r["host"], site.as_str(), "{r}");
        assert_eq!(r["nth_on_connection"], 1, "non-persistent: {r}");
    }
    let responses: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "http_response")
        .collect();
    assert_eq!(responses.len(), 11);
    assert!(responses.iter().all(|r| r["status"] == 200));
    let opens = events(&s, "cap", "c1", "tcp")
        .iter()
        .filter(|e| {
            e["type"] == "tcp_open" && e["server_node"] == "origin" && e["client_node"] == "ws"
        })
        .count();
    assert_eq!(opens, 11, "one TCP connection per object");
    // The live stream delivered the same requests, each within a second
    // of its frame.
    let mut streamed = Vec::new();
    let t = Instant::now();
    while streamed.len() < 11 && t.elapsed() < Duration::from_secs(10) {
        if let Ok((at, v)) = live.recv_timeout(Duration::from_millis(500)) {
            if v["type"] == "http_request" {
                streamed.push(at - v["time"].as_f64().unwrap());
            }
        }
    }
    let _ = curl.kill();
    let _ = curl.wait();
    assert_eq!(streamed.len(), 11, "streamed latencies {streamed:?}");
    let worst = streamed.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 1.0, "an event arrived {worst:.3} s after its frame");
    eprintln!(
        "live events: worst latency {:.1} ms after the frame",
        worst * 1e3
    );
    let frames = s.json(&[
        "capture",
        "frames",
        "c1",
        "--run",
        "cap",
        "--protocol",
        "HTTP",
        "--node",
        "ws",
        "--limit",
        "1000",
    ]);
    assert!(frames["total"].as_u64().unwrap() >= 22, "{frames}");

    // The other student saw none of it.
    assert!(requests(&events(&s, "cap", "c2", "http")).is_empty());

    // The pcap opens in tshark, holds the requests and c1's page only.
    let pcap1 = s.data.path().join("c1.pcap");
    let pcap2 = s.data.path().join("c2.pcap");
    s.ok(&[
        "capture",
        "pcap",
        "c1",
        "--run",
        "cap",
        "-o",
        pcap1.to_str().unwrap(),
    ]);
    s.ok(&[
        "capture",
        "pcap",
        "c2",
        "--run",
        "cap",
        "-o",
        pcap2.to_str().unwrap(),
    ]);
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap1.to_str().unwrap(),
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.uri",
        ])
        .output()
        .expect("tshark must be installed (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uris = String::from_utf8_lossy(&out.stdout);
    let all = std::process::Command::new("tshark")
        .args(["-r", pcap1.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        uris.lines().count(),
        11,
        "{uris} ({} bytes of pcap): {}",
        std::fs::metadata(&pcap1).unwrap().len(),
        String::from_utf8_lossy(&all.stdout)
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let raw1 = std::fs::read(&pcap1).unwrap();
    let raw2 = std::fs::read(&pcap2).unwrap();
    let has = |hay: &[u8], w: &str| hay.windows(w.len()).any(|x| x == w.as_bytes());
    assert!(has(&raw1, &secret1), "c1's page is in c1's pcap");
    assert!(!has(&raw2, &secret1) && !has(&raw1, &secret2));

    // After a controller restart the record is still there (replayed from
    // the pcap ring), and the taps reopen and record again.
    let before: Vec<String> = requests(&events(&s, "cap", "c1", "http"))
        .iter()
        .map(|r| r["target"].as_str().unwrap_or("").to_string())
        .collect();
    s.kill();
    s.spawn();
    taps_open(&s, "cap", "c1");
    let after: Vec<String> = requests(&events(&s, "cap", "c1", "http"))
        .iter()
        .map(|r| r["target"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(!before.is_empty());
    assert_eq!(after, before, "the events recorded before the restart");
    let (code, out) = s.exec(
        "cap",
        "c1",
        "ws",
        &["http", "-q", &format!("http://{site}/home.index")],
    );
    assert_eq!(code, 0, "{out}");
    let (evs, _) = wait_requests(&s, "cap", "c1", 1);
    assert!(
        requests(&evs).iter().any(|r| r["target"] == "/home.index"),
        "{evs:?}"
    );

    // Teardown forgets the record.
    s.ok(&["teardown", "--run", "cap"]);
    assert!(!s.data.path().join("captures").join("cap").exists());
}
