//! Our decoder against tshark's dissection of the same capture.
//!
//! Real traffic (python3's http.client and raw sockets against the origin,
//! DNS queries to a small responder) is captured on loopback by tcpdump;
//! applab's decoder and tshark each read the pcap, and their requests,
//! responses and DNS messages must agree field by field and frame by frame.
//! tcpdump and tshark must be installed (scripts/setup installs them).

mod common;

use applab_capture::{Decoder, EventKind, Limits};
use common::{free_addr, tool, Origin};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rows of tshark fields for frames matching `filter`.
fn tshark(pcap: &str, decode_as: &[String], filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<String> = vec!["-r".into(), pcap.into()];
    for d in decode_as {
        args.push("-d".into());
        args.push(d.clone());
    }
    args.extend(["-Y".into(), filter.into(), "-T".into(), "fields".into()]);
    for f in fields {
        args.push("-e".into());
        args.push((*f).into());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tool("tshark", &a, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn http_and_dns_events_agree_with_tshark() {
    let o = Origin::start(&[]);
    let http_port = o.addr.port();
    let dns_port = free_addr().port();
    let pcap = o.path("parity.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = Command::new("tcpdump")
        .args([
            "-i",
            "lo",
            "-U",
            "--immediate-mode",
            "-n",
            "-Z",
            "root",
            "-w",
            &pcap_s,
        ])
        .arg(format!("tcp port {http_port} or udp port {dns_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump must be installed (scripts/setup installs it)");
    // tcpdump says "listening on lo" once it captures.
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
    std::thread::sleep(Duration::from_millis(500));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/traffic.py");
    let out = tool(
        "python3",
        &[script, &http_port.to_string(), &dns_port.to_string()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --immediate-mode libpcap hands over frames in blocks and an
    // interrupted tcpdump drops the last block; with it, a short wait does.
    std::thread::sleep(Duration::from_millis(500));
    unsafe_interrupt(dump.id());
    let _ = dump.wait();

    let frames = applab_capture::pcap::read_file(&pcap).unwrap();
    let mut d = Decoder::new(Limits::default())
        .http_port(http_port)
        .dns_port(dns_port);
    let mut events = Vec::new();
    for f in &frames {
        d.frame(f.time.as_secs_f64(), &f.data, &mut events);
    }

    let decode_as = [
        format!("tcp.port=={http_port},http"),
        format!("udp.port=={dns_port},dns"),
    ];
    // Requests: frame, method, target, Host.
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "http.request",
        &[
            "frame.number",
            "http.request.method",
            "http.request.uri",
            "http.host",
        ],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HttpRequest {
                method,
                target,
                host,
                ..
            } => Some(vec![
                e.frame.to_string(),
                method.clone(),
                target.clone(),
                host.clone().unwrap_or_default(),
            ]),
            _ => None,
        })
        .collect();
    assert_eq!(
        ours.len(),
        9,
        "{} frames ({:?} bytes of pcap), events: {events:?}",
        frames.len(),
        std::fs::metadata(&pcap).map(|m| m.len())
    );
    assert_eq!(ours, theirs, "requests differ");
    // Responses: frame and status.
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "http.response",
        &["frame.number", "http.response.code"],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HttpResponse { status, .. } => {
                Some(vec![e.frame.to_string(), status.to_string()])
            }
            _ => None,
        })
        .collect();
    assert_eq!(ours, theirs, "responses differ");
    let statuses: Vec<&str> = ours.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "404", "201", "204", "304", "200", "200"]
    );
    // DNS: frame, id, name, query or response.
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "dns",
        &[
            "frame.number",
            "dns.id",
            "dns.qry.name",
            "dns.flags.response",
        ],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DnsQuery { id, name, .. } => Some((e.frame, *id, name.clone(), "0")),
            EventKind::DnsResponse { id, name, .. } => Some((e.frame, *id, name.clone(), "1")),
            _ => None,
        })
        .map(|(f, id, name, r)| {
            vec![
                f.to_string(),
                format!("0x{id:04x}"),
                name.trim_end_matches('.').to_string(),
                r.to_string(),
            ]
        })
        .collect();
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert_eq!(ours, theirs, "DNS messages differ");
    // Connections: one persistent, two HTTP/1.0 ones, each opened and closed.
    let opens = events
        .iter()
        .filter(|e| e.kind == EventKind::TcpOpen)
        .count();
    let closes = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TcpClose { .. }))
        .count();
    assert_eq!((opens, closes), (3, 3));
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Malformed { .. })));
}

fn unsafe_interrupt(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
