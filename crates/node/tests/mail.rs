//! The mail and dns roles on loopback, driven by clients that are not
//! ours: swaks, python3's smtplib, curl's smtp://, dig. Two domains relay
//! to each other through MX records served by our DNS.

mod common;

use common::mail::{code, maildir_count, MailLab, Raw};
use common::tool;
use std::time::Duration;

fn swaks(lab: &MailLab, args: &[&str]) -> String {
    let server = lab.a_addr().to_string();
    let mut all = vec!["--server", server.as_str(), "--timeout", "10"];
    all.extend_from_slice(args);
    let o = tool("swaks", &all, None);
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// swaks hands a.lab's server a message from alice with this Subject; it is queued.
fn submit(lab: &MailLab, to: &str, subject: &str) {
    let subject = format!("Subject: {subject}");
    let out = swaks(
        lab,
        &["--from", "alice@a.lab", "--to", to, "--header", &subject],
    );
    assert!(out.contains("250 2.0.0 OK"), "{out}");
}

#[test]
fn a_message_crosses_domains_by_mx_with_both_received_lines() {
    let lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    // Envelope and header differ: delivered to the envelope recipient, the
    // header kept as written.
    let out = swaks(
        &lab,
        &[
            "--from",
            "alice@a.lab",
            "--to",
            "bob@b.lab",
            "--helo",
            "ws.a.lab",
            "--header",
            "To: The Whole Class <class@b.lab>",
            "--header",
            "Subject: envelope versus header",
            "--body",
            "Bob, see the envelope.\n.leading dot\n",
        ],
    );
    assert!(out.contains("250 2.0.0 OK: queued as"), "{out}");
    let m = lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    let msg = &m[0];
    assert!(msg.contains("To: The Whole Class <class@b.lab>"), "{msg}");
    assert!(msg.starts_with("Return-Path: <alice@a.lab>\r\nDelivered-To: bob@b.lab\r\n"));
    let received: Vec<&str> = msg.lines().filter(|l| l.starts_with("Received:")).collect();
    assert_eq!(received.len(), 2, "one Received per hop: {msg}");
    // Newest first: b.lab's hop, then a.lab's.
    let b_hop = msg.find("by mail.b.lab").unwrap();
    let a_hop = msg.find("by mail.a.lab").unwrap();
    assert!(b_hop < a_hop, "{msg}");
    assert!(msg.contains("from ws.a.lab ([127.0.0.1])"));
    assert!(
        msg.contains("\r\n.leading dot\r\n"),
        "dot-stuffing undone: {msg}"
    );
    assert!(lab.mailbox("b", "class").is_empty());
    // The queue is empty once delivered.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.queue_files("a"), 0);
    assert!(lab.a.log_text().contains("mail.b.lab[127.0.0.2]: 250"));
}

#[test]
fn no_open_relay_and_auth_plain_and_login_with_smtplib_and_curl() {
    let lab = MailLab::start(&[]);
    let py = |mode: &str| {
        let o = tool(
            "python3",
            &[
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/smtp_client.py"),
                "127.0.0.1",
                &lab.port.to_string(),
                mode,
            ],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let denied = py("relay-denied");
    assert_eq!(denied["result"], "refused", "{denied}");
    assert_eq!(denied["code"], 550);
    assert!(denied["text"].as_str().unwrap().contains("5.7.1"));
    let feats: Vec<String> = serde_json::from_value(denied["features"].clone()).unwrap();
    for f in [
        "size",
        "pipelining",
        "8bitmime",
        "enhancedstatuscodes",
        "auth",
    ] {
        assert!(feats.contains(&f.to_string()), "{f} in {feats:?}");
    }
    for mode in ["plain", "login"] {
        let r = py(mode);
        assert_eq!(
            (r["auth"].as_i64(), r["result"].as_str()),
            (Some(235), Some("accepted")),
            "{r}"
        );
    }
    // curl's smtp:// with AUTH, and a local delivery without it.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.txt");
    std::fs::write(
        &f,
        "From: alice@a.lab\r\nTo: bob@b.lab\r\nSubject: curl\r\n\r\nby curl\r\n",
    )
    .unwrap();
    let url = format!("smtp://127.0.0.1:{}", lab.port);
    let file = f.to_string_lossy().into_owned();
    let send = |from: &str, to: &str, user: &[&str]| {
        let mut args = vec!["-sS", "--max-time", "10", &url];
        args.extend([
            "--mail-from",
            from,
            "--mail-rcpt",
            to,
            "--upload-file",
            &file,
        ]);
        args.extend_from_slice(user);
        let o = tool("curl", &args, None);
        assert!(
            o.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    send("alice@a.lab", "bob@b.lab", &["--user", "alice:alice-pw"]);
    send("bob@b.lab", "alice@a.lab", &[]);
    let m = lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    assert!(m.iter().any(|x| x.contains("Subject: curl")));
    assert!(
        m.iter().any(|x| x.contains("with ESMTPA")),
        "authenticated submissions say so"
    );
    lab.wait_mailbox("a", "alice", 1, Duration::from_secs(10));
    // A wrong password is refused.
    let (mut r, _) = Raw::connect(lab.a_addr());
    r.cmd("EHLO x");
    use base64::Engine;
    let tok = base64::engine::general_purpose::STANDARD.encode("\0alice\0nope");
    assert_eq!(code(&r.cmd(&format!("AUTH PLAIN {tok}"))), 535);
}

#[test]
fn every_misuse_gets_its_reply_code() {
    let lab = MailLab::start(&[]);
    let (mut r, greet) = Raw::connect(lab.a_addr());
    assert!(greet.starts_with("220 mail.a.lab"), "{greet}");
    assert_eq!(code(&r.cmd("MAIL FROM:<alice@a.lab>")), 503, "before HELO");
    assert_eq!(code(&r.cmd("HELO")), 501);
    assert_eq!(code(&r.cmd("FROB")), 500);
    assert_eq!(code(&r.cmd("HELO ws")), 250);
    assert_eq!(code(&r.cmd("RCPT TO:<alice@a.lab>")), 503, "before MAIL");
    assert_eq!(code(&r.cmd("DATA")), 503, "before MAIL");
    assert_eq!(
        code(&r.cmd("MAIL FROM: alice@a.lab")),
        501,
        "no angle brackets"
    );
    assert_eq!(code(&r.cmd("MAIL FROM:<alice@a.lab>")), 250);
    assert_eq!(code(&r.cmd("MAIL FROM:<alice@a.lab>")), 503, "nested MAIL");
    assert_eq!(code(&r.cmd("DATA")), 554, "no recipients yet");
    assert_eq!(code(&r.cmd("RCPT TO:<nobody@a.lab>")), 550);
    assert!(
        r.cmd("RCPT TO:<bob@b.lab>").starts_with("550 5.7.1"),
        "relay denied"
    );
    assert_eq!(code(&r.cmd("RCPT TO:bob@b.lab")), 501);
    assert_eq!(code(&r.cmd("RCPT TO:<postmaster>")), 250);
    assert_eq!(code(&r.cmd("RSET")), 250);
    assert_eq!(code(&r.cmd("VRFY alice")), 250);
    assert_eq!(code(&r.cmd("VRFY nobody")), 550);
    assert_eq!(code(&r.cmd("VRFY bob@b.lab")), 252);
    assert_eq!(code(&r.cmd("NOOP")), 250);
    assert_eq!(code(&r.cmd("HELP")), 214);
    assert_eq!(code(&r.cmd("EXPN staff")), 502);
    assert_eq!(
        code(&r.cmd(&format!("NOOP {}", "x".repeat(600)))),
        500,
        "line too long"
    );
    assert_eq!(code(&r.cmd("AUTH PLAIN")), 503, "AUTH needs EHLO");
    assert_eq!(code(&r.cmd("EHLO ws")), 250);
    assert_eq!(code(&r.cmd("AUTH CRAM-MD5")), 504);
    assert_eq!(code(&r.cmd("MAIL FROM:<alice@a.lab> SIZE=999999999")), 552);
    assert_eq!(code(&r.cmd("MAIL FROM:<alice@a.lab> FOO=1")), 555);

    // Pipelined: the whole transaction in one write; replies in order.
    r.send(b"MAIL FROM:<>\r\nRCPT TO:<alice@a.lab>\r\nRCPT TO:<ghost@a.lab>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..4).map(|_| code(&r.reply())).collect();
    assert_eq!(codes, [250, 250, 550, 354]);
    // SMTP smuggling: "\n.\n" and "\n.\r\n" are not the end; only CRLF.CRLF is.
    r.send(
        b"Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<x@evil.lab>\r\nsecond\n.\r\nthird\r\n.\r\n",
    );
    let rep = r.reply();
    assert!(rep.starts_with("250 2.0.0"), "{rep}");
    assert!(r.cmd("QUIT").starts_with("221"));
    let m = lab.wait_mailbox("a", "alice", 1, Duration::from_secs(10));
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("first\n.\nMAIL FROM:<x@evil.lab>\r\nsecond\n.\r\nthird\r\n"),
        "{}",
        m[0]
    );
    // A message over the size limit is refused after its end.
    let small = MailLab::start_in(tempfile::tempdir().unwrap(), &["--max-size", "1K"]);
    let (mut r, _) = Raw::connect(small.a_addr());
    r.cmd("HELO ws");
    r.cmd("MAIL FROM:<alice@a.lab>");
    r.cmd("RCPT TO:<alice@a.lab>");
    assert_eq!(code(&r.cmd("DATA")), 354);
    r.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(2000)).as_bytes());
    assert_eq!(code(&r.reply()), 552);
    assert_eq!(code(&r.cmd("NOOP")), 250, "the session goes on");
}

/// Postfix's dead-destination cache: while b.lab is down, new mail for it
/// waits for the retry time instead of knocking at once and dragging the
/// deferred messages along (which used to count an attempt for each).
#[test]
fn new_mail_for_a_destination_that_is_down_waits_for_its_retry() {
    let mut lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    lab.b.kill();
    submit(&lab, "bob@b.lab", "first");
    let t = std::time::Instant::now();
    while !lab.a.log_text().contains("destination down") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            lab.a.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 0..4 {
        submit(&lab, "bob@b.lab", &format!("later {n}"));
    }
    let attempts: Vec<u64> = std::fs::read_dir(lab.path("data-a/queue"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            v["attempts"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(attempts.len(), 5);
    // At most one retry (1 s) may have come meanwhile on a loaded machine.
    assert!(
        attempts.iter().sum::<u64>() <= 6 && attempts.iter().all(|&a| a <= 2),
        "attempts {attempts:?}\n{}",
        lab.a.log_text()
    );
    assert!(
        lab.a.log_text().matches("its destination is down").count() >= 1,
        "{}",
        lab.a.log_text()
    );
    lab.b.start();
    let m = lab.wait_mailbox("b", "bob", 5, Duration::from_secs(15));
    assert_eq!(m.len(), 5);
    assert!(lab.a.log_text().contains("destination up again"));
}

#[test]
fn the_queue_retries_while_the_peer_is_down_then_delivers_once() {
    let mut lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    lab.b.kill();
    // Three messages for one server wait in the queue...
    for n in 0..3 {
        submit(&lab, "bob@b.lab", &format!("patience {n}"));
    }
    // At least two failed attempts (retry every 1 s).
    let t = std::time::Instant::now();
    while lab.a.log_text().matches("message deferred").count() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{}",
            lab.a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        lab.queue_files("a"),
        6,
        "still queued (.eml and .json each):\n{}",
        lab.a.log_text()
    );
    assert!(lab.mailbox("b", "bob").is_empty());
    lab.b.start();
    let m = lab.wait_mailbox("b", "bob", 3, Duration::from_secs(15));
    for n in 0..3 {
        assert!(m
            .iter()
            .any(|x| x.contains(&format!("Subject: patience {n}"))));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.mailbox("b", "bob").len(),
        3,
        "each delivered exactly once"
    );
    assert_eq!(lab.queue_files("a"), 0);
    // ...and then go over one connection.
    let b_log = lab.b.log_text();
    assert!(
        b_log.contains("messages=3"),
        "one connection for all three:\n{b_log}"
    );
}

#[test]
fn a_permanent_failure_bounces_to_the_sender() {
    let lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    submit(&lab, "nobody@b.lab", "to nobody");
    let m = lab.wait_mailbox("a", "alice", 1, Duration::from_secs(10));
    assert!(
        m[0].contains("Subject: Undelivered Mail Returned to Sender"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("Return-Path: <>"));
    assert!(m[0].contains("Final-Recipient: rfc822; nobody@b.lab"));
    assert!(m[0].contains("550 5.1.1"), "{}", m[0]);
    assert!(
        m[0].contains("Subject: to nobody"),
        "the original's headers ride along"
    );
}

#[test]
fn a_domain_without_mx_is_reached_at_its_address() {
    // d.lab has an A record and no MX: the relay goes to that address,
    // which is b.lab's server; not its domain, so it refuses (5.7.1), and
    // the refusal comes back to alice with where it was tried.
    let lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    let out = swaks(&lab, &["--from", "alice@a.lab", "--to", "x@d.lab"]);
    assert!(out.contains("250 2.0.0 OK"), "{out}");
    let m = lab.wait_mailbox("a", "alice", 1, Duration::from_secs(10));
    assert!(m[0].contains("d.lab[127.0.0.2]"), "{}", m[0]);
    assert!(m[0].contains("550 5.7.1"), "{}", m[0]);
}

#[test]
fn a_message_still_undelivered_when_it_expires_bounces() {
    let mut lab = MailLab::start(&["--relay-from", "127.0.0.0/8", "--expire", "3s"]);
    lab.b.kill();
    submit(&lab, "bob@b.lab", "too late");
    let m = lab.wait_mailbox("a", "alice", 1, Duration::from_secs(15));
    assert!(
        m[0].contains("Undelivered Mail Returned to Sender"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("gave up after"), "{}", m[0]);
    assert!(m[0].contains("Status: 4.4.7"), "{}", m[0]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.queue_files("a"), 0, "nothing left in the queue");
}

#[test]
fn sigkill_loses_no_acknowledged_message() {
    let mut lab = MailLab::start(&[]);
    let addr = lab.a_addr();
    // A client streams messages while the server is killed under it.
    let sender = std::thread::spawn(move || {
        let mut acked = Vec::new();
        // One message per connection; stop at the first broken dialogue.
        let one = |i: usize| -> Option<bool> {
            let mut r = Raw::try_connect(addr)?;
            r.try_cmd("HELO ws")?;
            r.try_cmd("MAIL FROM:<bob@b.lab>")?;
            r.try_cmd("RCPT TO:<alice@a.lab>")?;
            if code(&r.try_cmd("DATA")?) != 354 {
                return None;
            }
            let body = format!("Subject: n{i}\r\nMessage-ID: <n{i}@test>\r\n\r\nbody {i}\r\n.");
            // Only a 250 actually read counts as acknowledged.
            Some(r.try_cmd(&body)?.starts_with("250"))
        };
        for i in 0..2000 {
            match one(i) {
                Some(true) => acked.push(i),
                _ => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(400));
    lab.a.kill();
    let acked = sender.join().unwrap();
    eprintln!("{} messages acknowledged before SIGKILL", acked.len());
    assert!(
        acked.len() > 5,
        "some messages were sent before the kill: {}",
        acked.len()
    );
    lab.a.start();
    let m = lab.wait_mailbox("a", "alice", acked.len(), Duration::from_secs(20));
    for i in &acked {
        let id = format!("Message-ID: <n{i}@test>");
        assert_eq!(
            m.iter().filter(|x| x.contains(&id)).count(),
            1,
            "{id} exactly once"
        );
    }
    assert!(maildir_count(&lab.path("data-a/mailboxes/alice")) <= acked.len() + 1);
}

#[test]
fn a_full_disk_answers_452_and_loses_nothing() {
    // A small file system of its own for a.lab's data (we run as root in CI).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data-a");
    std::fs::create_dir_all(&data).unwrap();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=3m",
            "tmpfs",
            &data.to_string_lossy(),
        ])
        .status()
        .expect("mount");
    assert!(
        st.success(),
        "mounting a tmpfs needs root (CI runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _u = Unmount(data.clone());
    let lab = MailLab::start_in(dir, &[]);
    // Leave less than the server keeps in reserve.
    let filler = data.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 2_500_000]);
    let (mut r, _) = Raw::connect(lab.a_addr());
    r.cmd("HELO ws");
    let rep = r.cmd("MAIL FROM:<bob@b.lab>");
    assert!(rep.starts_with("452 4.3.1"), "{rep}");
    std::fs::remove_file(&filler).unwrap();
    // Freed space is seen at the next command (allow the file system a
    // moment under a loaded machine).
    let t = std::time::Instant::now();
    loop {
        let rep = r.cmd("MAIL FROM:<bob@b.lab>");
        if code(&rep) == 250 {
            break;
        }
        let df = std::process::Command::new("df")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{rep}\n{}",
            String::from_utf8_lossy(&df.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    r.cmd("RCPT TO:<alice@a.lab>");
    r.cmd("DATA");
    r.send(b"Subject: after the disk was freed\r\n\r\nok\r\n.\r\n");
    assert_eq!(code(&r.reply()), 250);
    lab.wait_mailbox("a", "alice", 1, Duration::from_secs(10));
}

#[test]
fn dns_answers_dig_over_udp_and_tcp() {
    let lab = MailLab::start(&[]);
    let server = format!("@{}", lab.dns_addr.ip());
    let port = lab.dns_addr.port().to_string();
    let dig = |args: &[&str]| {
        let mut all = vec![server.as_str(), "-p", port.as_str(), "+time=2", "+tries=1"];
        all.extend_from_slice(args);
        let o = tool("dig", &all, None);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mx = dig(&["b.lab", "MX"]);
    assert!(
        mx.contains("status: NOERROR") && mx.contains("flags: qr aa rd"),
        "{mx}"
    );
    assert!(mx.contains("MX\t10 mail.b.lab."), "{mx}");
    assert!(
        mx.contains("mail.b.lab.\t\t60\tIN\tA\t127.0.0.2"),
        "glue in additional: {mx}"
    );
    let c = dig(&["www.a.lab", "A"]);
    assert!(
        c.contains("CNAME\tmail.a.lab.") && c.contains("127.0.0.1"),
        "{c}"
    );
    let nx = dig(&["nope.a.lab", "A"]);
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("SOA"),
        "{nx}"
    );
    let nodata = dig(&["mail.a.lab", "MX"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    assert!(dig(&["example.com", "A"]).contains("status: REFUSED"));
    let tcp = dig(&["+tcp", "a.lab", "SOA"]);
    assert!(tcp.contains("(TCP)") && tcp.contains("ANSWER: 1"), "{tcp}");
    // Too big for 512 bytes of UDP: TC set, dig retries over TCP.
    let big = dig(&["+noedns", "big.b.lab", "TXT"]);
    assert!(
        big.contains("Truncated, retrying in TCP mode") && big.contains("ANSWER: 1"),
        "{big}"
    );
    // Our lookup tool says the same, and how it got it.
    let o = tool(
        env!("CARGO_BIN_EXE_applab-node"),
        &[
            "tool",
            "lookup",
            "big.b.lab",
            "TXT",
            &format!("@{}", lab.dns_addr),
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["transport"], "TCP");
    assert_eq!(v["truncated_udp"], true);
    assert_eq!(v["rcode"], "NOERROR");
    // Garbage gets no crash: the server still answers afterwards.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(
        &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9],
        lab.dns_addr,
    )
    .unwrap();
    u.send_to(b"x", lab.dns_addr).unwrap();
    assert!(dig(&["b.lab", "MX"]).contains("status: NOERROR"));
}

#[test]
fn the_mail_tool_shows_the_dialogue() {
    let lab = MailLab::start(&["--relay-from", "127.0.0.0/8"]);
    let o = tool(
        env!("CARGO_BIN_EXE_applab-node"),
        &[
            "tool",
            "mail",
            "send",
            "--server",
            &lab.a_addr().to_string(),
            "--from",
            "alice@a.lab",
            "--to",
            "bob@b.lab",
            "--header-to",
            "friends@b.lab",
            "--subject",
            "from the tool",
            "--body",
            "hello\n.dot line",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for l in [
        "S: 220 mail.a.lab",
        "C: EHLO workstation",
        "C: MAIL FROM:<alice@a.lab>",
        "C: RCPT TO:<bob@b.lab>",
        "C: DATA",
        "S: 354",
        "S: 250 2.0.0 OK: queued as",
        "C: QUIT",
        "S: 221",
    ] {
        assert!(out.contains(l), "{l} in {out}");
    }
    let m = lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    assert!(
        m[0].contains("To: friends@b.lab") && m[0].contains("\r\n.dot line\r\n"),
        "{}",
        m[0]
    );
}
