//! The lecture's model workflows, captured on loopback and decoded by our
//! decoder, asserted event by event: a page and its object fetched over
//! one persistent connection and over one connection each; a proxied
//! conditional GET (If-Modified-Since and a 304 between proxy and origin);
//! an SMTP dialogue; a DNS query. tcpdump records, applab decodes.

mod common;

use applab_capture::{Decoder, Event, EventKind, Limits};
use common::mail::MailLab;
use common::{decode_pcap, free_addr, start_tcpdump, stop_tcpdump, tool, Origin};
use std::collections::BTreeMap;

/// A compact name for an event, for sequence assertions.
fn label(e: &EventKind) -> String {
    match e {
        EventKind::TcpOpen => "open".into(),
        EventKind::TcpClose { reset } => if *reset { "reset" } else { "close" }.into(),
        EventKind::HttpRequest {
            method,
            target,
            nth_on_connection,
            ..
        } => {
            format!("{method} {target} #{nth_on_connection}")
        }
        EventKind::HttpResponse {
            status, body_bytes, ..
        } => format!("{status} ({body_bytes} B)"),
        EventKind::SmtpCommand { verb, .. } => verb.clone(),
        EventKind::SmtpReply { code, .. } => code.to_string(),
        EventKind::SmtpMessage { .. } => "message".into(),
        EventKind::DnsQuery { name, qtype, .. } => format!("? {name} {qtype}"),
        EventKind::DnsResponse { rcode, answers, .. } => format!("! {rcode} {}", answers.len()),
        other => format!("{other:?}"),
    }
}

/// Events grouped by flow, in order.
fn flows(events: &[Event]) -> BTreeMap<u64, Vec<&Event>> {
    let mut m: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in events {
        m.entry(e.flow).or_default().push(e);
    }
    m
}

fn labels(f: &[&Event]) -> Vec<String> {
    f.iter().map(|e| label(&e.kind)).collect()
}

#[test]
fn model_workflows_event_by_event() {
    let origin = Origin::start(&[]);
    let lab = MailLab::start(&[]);
    let proxy_port = free_addr().port();
    let http_port = origin.addr.port();
    let pcap = origin.path("workflows.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let dump = start_tcpdump(
        &pcap_s,
        &format!(
            "tcp port {http_port} or tcp port {proxy_port} or tcp port {} or port {}",
            lab.port,
            lab.dns_addr.port()
        ),
    );
    let node = env!("CARGO_BIN_EXE_applab-node");
    let page = origin.url("/index.html");
    // 1. The page and its object, one persistent connection, then one each.
    let o = tool(node, &["tool", "http", "--page", "-q", &page], None);
    assert!(o.status.success());
    let o = tool(
        node,
        &["tool", "http", "--page", "--no-keepalive", "-q", &page],
        None,
    );
    assert!(o.status.success());
    // 2. A proxied conditional GET.
    let o = tool(
        "python3",
        &[
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clients/caching_proxy.py"
            ),
            &proxy_port.to_string(),
            &http_port.to_string(),
            "/img/a.jpg",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 3. An SMTP dialogue (local delivery on a.lab).
    let o = tool(
        "swaks",
        &[
            "--server",
            &lab.a_addr().to_string(),
            "--from",
            "bob@b.lab",
            "--to",
            "alice@a.lab",
            "--header",
            "Subject: workflow",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("250 2.0.0 OK"));
    // 4. A DNS query.
    let o = tool(
        "dig",
        &[
            &format!("@{}", lab.dns_addr.ip()),
            "-p",
            &lab.dns_addr.port().to_string(),
            "+notcp",
            "b.lab",
            "MX",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOERROR"));
    let mut dump = dump;
    stop_tcpdump(&mut dump);

    let d = Decoder::new(Limits::default())
        .http_port(http_port)
        .http_port(proxy_port)
        .smtp_port(lab.port)
        .dns_port(lab.dns_addr.port());
    let events = decode_pcap(&pcap, d);
    let by_flow = flows(&events);
    let seqs: Vec<Vec<String>> = by_flow.values().map(|f| labels(f)).collect();
    let has = |want: &[&str]| seqs.iter().any(|s| s == want);

    // 1. One connection for page and object, then one connection each.
    assert!(
        has(&[
            "open",
            "GET /index.html #1",
            "200 (49 B)",
            "GET /img/a.jpg #2",
            "200 (4 B)",
            "close"
        ]),
        "{seqs:#?}"
    );
    assert!(
        has(&["open", "GET /index.html #1", "200 (49 B)", "close"]),
        "{seqs:#?}"
    );
    assert!(
        has(&["open", "GET /img/a.jpg #1", "200 (4 B)", "close"]),
        "{seqs:#?}"
    );
    // 2. Client to proxy: absolute-form targets; proxy to origin: the first
    //    fetch, then the revalidation answered 304 with no body.
    let abs = format!("GET http://127.0.0.1:{http_port}/img/a.jpg #1");
    assert_eq!(
        seqs.iter()
            .filter(|s| s.first().map(String::as_str) == Some("open") && s.get(1) == Some(&abs))
            .count(),
        2,
        "{seqs:#?}"
    );
    assert!(
        has(&["open", "GET /img/a.jpg #1", "304 (0 B)", "close"]),
        "{seqs:#?}"
    );
    let revalidation = events.iter().find_map(|e| match &e.kind {
        EventKind::HttpRequest { headers, .. } => headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("If-Modified-Since"))
            .map(|(_, v)| v.clone()),
        _ => None,
    });
    assert!(
        revalidation.is_some(),
        "the proxy's If-Modified-Since was decoded"
    );
    // 3. The SMTP dialogue, command and reply in turn.
    let smtp = seqs
        .iter()
        .find(|s| s.iter().any(|x| x == "EHLO"))
        .unwrap_or_else(|| panic!("{seqs:#?}"));
    assert_eq!(
        smtp.iter()
            .filter(|x| *x != "open" && *x != "close")
            .collect::<Vec<_>>(),
        [
            "220",
            "EHLO",
            "250",
            "MAIL FROM",
            "250",
            "RCPT TO",
            "250",
            "DATA",
            "354",
            "message",
            "250",
            "QUIT",
            "221"
        ],
        "{smtp:?}"
    );
    // 4. The DNS query and its answer.
    assert!(
        has(&["? b.lab. MX", "! NOERROR 1"]) || has(&["? b.lab. MX", "! No Error 1"]),
        "{seqs:#?}"
    );
}
