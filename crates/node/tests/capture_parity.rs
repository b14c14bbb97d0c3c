//! Our decoder against tshark's dissection of the same capture.
//!
//! Real traffic (python3's http.client and raw sockets against the origin,
//! DNS queries to a small responder, smtplib and a typed SMTP dialogue) is captured on loopback by tcpdump;
//! applab's decoder and tshark each read the pcap, and their requests,
//! responses and DNS messages must agree field by field and frame by frame.
//! tcpdump and tshark must be installed (scripts/setup installs them).

mod common;

use applab_capture::{Decoder, EventKind, Limits};
use common::{decode_pcap, free_addr, python_client, start_tcpdump, stop_tcpdump, tool, Origin};
use std::time::Duration;

/// One capture on loopback at a time: tcpdump and tshark are busy enough
/// that side-by-side runs made frames arrive after the capture stopped.
static LOOPBACK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LOOPBACK.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let _serial = one_at_a_time();
    let o = Origin::start(&[]);
    let http_port = o.addr.port();
    let dns_port = free_addr().port();
    let pcap = o.path("parity.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = start_tcpdump(
        &pcap_s,
        &format!("tcp port {http_port} or udp port {dns_port}"),
    );
    python_client(
        "traffic.py",
        &[&http_port.to_string(), &dns_port.to_string()],
    );
    stop_tcpdump(&mut dump);

    let events = decode_pcap(
        &pcap,
        Decoder::new(Limits::default())
            .http_port(http_port)
            .dns_port(dns_port),
    );

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
        "{:?} bytes of pcap, events: {events:?}",
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

/// tcpdump on loopback writing `pcap`, once it says it is listening.
#[test]
fn smtp_commands_replies_and_messages_agree_with_tshark() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let port = free_addr().port();
    let pcap = dir.path().join("smtp.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = start_tcpdump(&pcap_s, &format!("tcp port {port}"));
    python_client("smtp_traffic.py", &[&port.to_string()]);
    stop_tcpdump(&mut dump);

    let events = decode_pcap(&pcap, Decoder::new(Limits::default()).smtp_port(port));
    let decode_as = [format!("tcp.port=={port},smtp")];
    // Commands: frame and verb (tshark names MAIL FROM as MAIL, with FROM: in the parameter).
    // tshark keeps the case the client used (smtplib sends "ehlo"); verbs
    // are case-insensitive and ours are upper-cased.
    let theirs: Vec<Vec<String>> = tshark(
        &pcap_s,
        &decode_as,
        "smtp.req.command",
        &["frame.number", "smtp.req.command"],
    )
    .into_iter()
    .map(|r| vec![r[0].clone(), r[1].to_ascii_uppercase()])
    .collect();
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SmtpCommand { verb, .. } => Some(vec![
                e.frame.to_string(),
                verb.split(' ').next().unwrap_or("").to_string(),
            ]),
            _ => None,
        })
        .collect();
    let verbs: Vec<&str> = ours.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        verbs,
        [
            "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT", "HELO", "NOOP", "VRFY", "RSET", "MAIL",
            "RCPT", "QUIT"
        ],
        "{events:?}"
    );
    assert_eq!(ours, theirs, "commands differ");
    // Replies: frame and code (tshark lists the code of each line of a
    // multi-line reply; the first is the reply's).
    let theirs: Vec<Vec<String>> = tshark(
        &pcap_s,
        &decode_as,
        "smtp.response.code",
        &["frame.number", "smtp.response.code"],
    )
    .into_iter()
    .map(|r| {
        vec![
            r[0].clone(),
            r[1].split(',').next().unwrap_or("").to_string(),
        ]
    })
    .collect();
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SmtpReply { code, .. } => Some(vec![e.frame.to_string(), code.to_string()]),
            _ => None,
        })
        .collect();
    assert_eq!(ours.len(), 16, "{ours:?}");
    assert_eq!(ours, theirs, "replies differ");
    // The message: one, its dot-stuffing undone, its Subject read.
    let msgs: Vec<&EventKind> = events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, EventKind::SmtpMessage { .. }))
        .collect();
    assert_eq!(msgs.len(), 1);
    if let EventKind::SmtpMessage { headers, .. } = msgs[0] {
        assert!(
            headers.contains(&("Subject".to_string(), "parity".to_string())),
            "{headers:?}"
        );
    }
    let imf = tshark(&pcap_s, &decode_as, "imf", &["imf.subject"]);
    assert_eq!(imf, vec![vec!["parity".to_string()]]);
}

#[test]
fn pop3_commands_and_responses_agree_with_tshark() {
    let _serial = one_at_a_time();
    // Our mail server this time: mail for bob, then poplib and a typed session.
    let lab = common::mail::MailLab::start(&[]);
    for i in 0..2 {
        let (mut r, _) = common::mail::Raw::connect(lab.b_addr());
        r.cmd("HELO t");
        r.cmd("MAIL FROM:<carol@b.lab>");
        r.cmd("RCPT TO:<bob@b.lab>");
        r.cmd("DATA");
        r.cmd(&format!("Subject: parity {i}\r\n\r\nbody\r\n..dotted\r\n."));
    }
    lab.wait_mailbox("b", "bob", 2, Duration::from_secs(10));
    let port = lab.pop3_port;
    let pcap = lab.path("pop3.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = start_tcpdump(&pcap_s, &format!("tcp port {port}"));
    python_client("pop3_client.py", &["127.0.0.2", &port.to_string(), "keep"]);
    let (mut r, _) = common::mail::Raw::connect(lab.b_pop3());
    for c in [
        "USER bob",
        "PASS bob-pw",
        "LIST 1",
        "RETR 7",
        "NOOP",
        "QUIT",
    ] {
        r.cmd(c);
    }
    stop_tcpdump(&mut dump);

    let events = decode_pcap(&pcap, Decoder::new(Limits::default()).pop3_port(port));
    let decode_as = [format!("tcp.port=={port},pop")];
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "pop.request.command",
        &["frame.number", "pop.request.command"],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Pop3Command { verb, .. } => Some(vec![e.frame.to_string(), verb.clone()]),
            _ => None,
        })
        .collect();
    assert!(ours.len() >= 16, "{ours:?}");
    assert_eq!(ours, theirs, "commands differ");
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "pop.response.indicator",
        &["frame.number", "pop.response.indicator"],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Pop3Response { ok, .. } => Some(vec![
                e.frame.to_string(),
                if *ok { "+OK" } else { "-ERR" }.to_string(),
            ]),
            _ => None,
        })
        .collect();
    assert_eq!(ours, theirs, "responses differ");
    assert!(ours.iter().any(|r| r[1] == "-ERR"), "RETR 7 is refused");
}

#[test]
fn imap_commands_and_completions_agree_with_tshark() {
    let _serial = one_at_a_time();
    let lab = common::mail::MailLab::start(&[]);
    for i in 0..3 {
        let (mut r, _) = common::mail::Raw::connect(lab.b_addr());
        r.cmd("HELO t");
        r.cmd("MAIL FROM:<carol@b.lab>");
        r.cmd("RCPT TO:<bob@b.lab>");
        r.cmd("DATA");
        r.cmd(&format!(
            "Subject: note {i}\r\nFrom: carol@b.lab\r\n\r\nbody of note {i}\r\n."
        ));
    }
    lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    let port = lab.imap_port;
    let pcap = lab.path("imap.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let mut dump = start_tcpdump(&pcap_s, &format!("tcp port {port}"));
    python_client("imap_client.py", &["127.0.0.2", &port.to_string()]);
    stop_tcpdump(&mut dump);

    let events = decode_pcap(&pcap, Decoder::new(Limits::default()).imap_port(port));
    let decode_as = [format!("tcp.port=={port},imap")];
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "imap.request_tag",
        &["frame.number", "imap.request_tag", "imap.request.command"],
    );
    // tshark names `UID FETCH` by its second word, and reads the octets of
    // a literal (APPEND's message) as if they were commands: compare the
    // commands both see, and the frame only where no literal follows the
    // first line (we report a command once its literal is complete).
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ImapCommand {
                tag,
                name,
                literal_bytes,
                ..
            } if !tag.is_empty() => Some(vec![
                if *literal_bytes == 0 {
                    e.frame.to_string()
                } else {
                    "-".into()
                },
                tag.clone(),
                name.rsplit(' ').next().unwrap_or("").to_string(),
            ]),
            _ => None,
        })
        .collect();
    if ours.len() < 20 {
        for e in &events {
            eprintln!("{} {:?}", e.frame, e.kind);
        }
    }
    assert!(ours.len() >= 20, "{ours:?}");
    let tags: std::collections::HashSet<&String> = ours.iter().map(|r| &r[1]).collect();
    let with_literal: std::collections::HashSet<&String> =
        ours.iter().filter(|r| r[0] == "-").map(|r| &r[1]).collect();
    let theirs: Vec<Vec<String>> = theirs
        .into_iter()
        .filter(|r| tags.contains(&r[1]))
        .map(|mut r| {
            r[2] = r[2].to_ascii_uppercase();
            if with_literal.contains(&r[1]) {
                r[0] = "-".into();
            }
            r
        })
        .collect();
    assert_eq!(ours, theirs, "commands differ");
    let theirs = tshark(
        &pcap_s,
        &decode_as,
        "imap.response.status",
        &["imap.response_tag", "imap.response.status"],
    );
    let ours: Vec<Vec<String>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ImapResponse { tag, status, .. } => Some(vec![tag.clone(), status.clone()]),
            _ => None,
        })
        .collect();
    // tshark lists every line of a frame: the `)` closing a FETCH literal
    // comes out as a response tag before the real one, and `+` requests
    // too; the tagged completion is the frame's last value.
    let theirs: Vec<Vec<String>> = theirs
        .into_iter()
        .map(|r| {
            let last = |s: &str| s.rsplit(',').next().unwrap_or("").to_string();
            vec![last(&r[0]), last(&r[1]).to_ascii_uppercase()]
        })
        .filter(|r| r[0] != "*" && r[0] != "+")
        .collect();
    assert_eq!(ours, theirs, "completions differ");
}
