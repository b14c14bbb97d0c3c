//! The IMAP side of the mail role on loopback: python3's imaplib does the
//! lab's workflow (folders, moving a message, state kept across sessions,
//! fetching only headers), curl's imap:// reads, and raw sessions check
//! literals, concurrent sessions seeing each other's changes, IDLE, and
//! every message delivered while sessions watch seen exactly once.

mod common;

use common::mail::{MailLab, Raw};
use common::tool;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn deliver(lab: &MailLab, subject: &str) {
    lab.note_to_bob(subject);
}

/// A raw IMAP client: send a tagged command, collect lines until its tag.
struct Imap {
    r: BufReader<TcpStream>,
    n: u32,
}

impl Imap {
    fn connect(lab: &MailLab) -> Imap {
        let s = TcpStream::connect(lab.b_imap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut i = Imap {
            r: BufReader::new(s),
            n: 0,
        };
        let greet = i.line();
        assert!(greet.starts_with("* OK"), "{greet}");
        i
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l
    }

    fn send(&mut self, raw: &str) {
        self.r.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    /// Run a command; all the lines up to and including the tagged one.
    fn cmd(&mut self, c: &str) -> String {
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.send(&format!("{tag} {c}\r\n"));
        let mut all = String::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "closed during {c}: {all}");
            all.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                return all;
            }
        }
    }
}

fn tagged_ok(resp: &str) -> bool {
    resp.lines()
        .last()
        .is_some_and(|l| l.split(' ').nth(1) == Some("OK"))
}

#[test]
fn imaplib_does_the_labs_workflow() {
    let lab = MailLab::start(&[]);
    for i in 0..3 {
        deliver(&lab, &format!("note {i}"));
    }
    lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    let o = tool(
        "python3",
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/imap_client.py"),
            "127.0.0.2",
            &lab.imap_port.to_string(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let caps: Vec<String> = serde_json::from_value(v["capabilities"].clone()).unwrap();
    for c in ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+"] {
        assert!(caps.contains(&c.to_string()), "{c} in {caps:?}");
    }
    assert_eq!(v["exists"], 3);
    let meta = v["fetch_meta"].as_str().unwrap();
    assert!(
        meta.contains("ENVELOPE (") && meta.contains("\"note 0\""),
        "{meta}"
    );
    assert!(
        meta.contains("((\"Carol\" NIL \"carol\" \"b.lab\"))"),
        "{meta}"
    );
    assert!(meta.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\""), "{meta}");
    let h = v["headers_only"].as_str().unwrap();
    assert!(
        h.contains("Subject: note 0") && h.contains("From: Carol") && !h.contains("To:"),
        "{h}"
    );
    assert!(!h.contains("body of"), "headers only: {h}");
    assert!(
        !v["flags_after_peek"].as_str().unwrap().contains("\\Seen"),
        "PEEK sets no flag"
    );
    assert!(v["text2"].as_str().unwrap().contains("body of note 1"));
    assert!(
        v["flags_after_body"].as_str().unwrap().contains("\\Seen"),
        "BODY[] sets \\Seen"
    );
    assert_eq!(v["partial"].as_str().unwrap().len(), 10);
    assert_eq!(v["search_subject"], "2");
    assert_eq!(v["search_unseen"], "1 3");
    assert_eq!(v["expunge"], serde_json::json!(["1"]));
    assert!(
        v["status_archive"].as_str().unwrap().contains("MESSAGES 1"),
        "{v}"
    );
    assert_eq!(v["archive_exists"], 2, "{v}");
    let subjects = v["archive"].as_array().unwrap();
    assert_eq!(subjects[0], "Subject: note 0");
    assert_eq!(subjects[1], "Subject: appended");
    assert!(
        v["archive_meta"][1].as_str().unwrap().contains("\\Flagged"),
        "APPEND kept its flag: {v}"
    );
    assert_eq!(v["inbox_exists_again"], 2);
    assert!(
        v["list_renamed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().ends_with("\"Old\"")),
        "{v}"
    );
    // The moved message left bob's Maildir INBOX; the others stay for POP3.
    assert_eq!(lab.mailbox("b", "bob").len(), 2);
}

#[test]
fn literals_errors_and_states() {
    let lab = MailLab::start(&[]);
    deliver(&lab, "lit");
    lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    let mut c = Imap::connect(&lab);
    assert!(c.cmd("SELECT INBOX").contains("BAD"), "needs LOGIN first");
    assert!(c
        .cmd("LOGIN bob wrong")
        .contains("NO [AUTHENTICATIONFAILED]"));
    // A synchronizing literal: the server asks for it with "+".
    c.send("a1 LOGIN {3}\r\n");
    assert!(c.line().starts_with("+ "));
    c.send("bob {6}\r\n");
    assert!(c.line().starts_with("+ "));
    c.send("bob-pw\r\n");
    let l = c.line();
    assert!(l.starts_with("a1 OK"), "{l}");
    assert!(c.cmd("FETCH 1 FLAGS").contains("BAD"), "needs SELECT");
    let sel = c.cmd("SELECT inbox");
    assert!(
        sel.contains("* 1 EXISTS") && sel.contains("[UIDVALIDITY ") && sel.contains("[READ-WRITE]"),
        "{sel}"
    );
    assert!(
        c.cmd("FETCH 5 FLAGS").contains("BAD"),
        "beyond the last message"
    );
    assert!(c.cmd("FETCH 1 (FROB)").contains("BAD"));
    assert!(c.cmd("FROB").contains("BAD"));
    assert!(c.cmd("STORE 1 +FLAGS (\\Recent)").contains("BAD"));
    // A non-synchronizing literal (LITERAL+) in APPEND.
    let msg = "Subject: plus\r\n\r\nliteral plus\r\n";
    c.send(&format!(
        "a2 APPEND INBOX (\\Seen) {{{}+}}\r\n{msg}\r\n",
        msg.len()
    ));
    let mut l = c.line();
    let mut untagged = String::new();
    while l.starts_with("* ") {
        untagged.push_str(&l);
        l = c.line();
    }
    assert!(l.starts_with("a2 OK [APPENDUID "), "{l}");
    assert!(
        untagged.contains("* 2 EXISTS"),
        "the append is announced: {untagged}"
    );
    let f = c.cmd("UID FETCH 1:* (FLAGS BODY[HEADER.FIELDS (SUBJECT)])");
    assert!(f.contains("Subject: plus") && f.contains("\\Seen"), "{f}");
    assert!(c.cmd("SELECT Nowhere").contains("NO [NONEXISTENT]"));
    assert!(
        c.cmd("FETCH 1 FLAGS").contains("BAD"),
        "a failed SELECT deselects"
    );
    let ex = c.cmd("EXAMINE INBOX");
    assert!(ex.contains("[READ-ONLY]"), "{ex}");
    assert!(c.cmd("STORE 1 +FLAGS (\\Deleted)").contains("NO"));
    assert!(c.cmd("LOGOUT").contains("* BYE"));
}

#[test]
fn concurrent_sessions_see_each_others_changes_and_every_delivery_once() {
    let lab = MailLab::start(&[]);
    deliver(&lab, "first");
    lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    let mut a = Imap::connect(&lab);
    let mut b = Imap::connect(&lab);
    for s in [&mut a, &mut b] {
        assert!(tagged_ok(&s.cmd("LOGIN bob bob-pw")));
        assert!(tagged_ok(&s.cmd("SELECT INBOX")));
    }
    // b idles; a delivery wakes it with EXISTS.
    b.send("i1 IDLE\r\n");
    assert!(b.line().starts_with("+ "));
    deliver(&lab, "second");
    let t = Instant::now();
    let mut seen = String::new();
    while !seen.contains("* 2 EXISTS") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no EXISTS while idling: {seen}"
        );
        seen.push_str(&b.line());
    }
    b.send("DONE\r\n");
    let mut l = b.line();
    while !l.starts_with("i1 ") {
        l = b.line();
    }
    assert!(l.starts_with("i1 OK"), "{l}");
    // a flags message 1: b hears of it at its next command.
    let st = a.cmd("STORE 1 +FLAGS (\\Flagged)");
    assert!(
        st.contains("* 1 FETCH (FLAGS (") && st.contains("\\Flagged"),
        "{st}"
    );
    let noop = b.cmd("NOOP");
    assert!(
        noop.contains("* 2 EXISTS") || noop.contains("* 1 FETCH (FLAGS ("),
        "{noop}"
    );
    let noop = if noop.contains("* 1 FETCH") {
        noop
    } else {
        b.cmd("NOOP")
    };
    assert!(
        noop.contains("* 1 FETCH (FLAGS (") && noop.contains("\\Flagged"),
        "{noop}"
    );
    // a expunges message 1: b is told at its next NOOP, not during FETCH.
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)");
    let exp = a.cmd("EXPUNGE");
    assert!(exp.contains("* 1 EXPUNGE"), "{exp}");
    let f = b.cmd("FETCH 1:* (UID)");
    assert!(!f.contains("EXPUNGE"), "no EXPUNGE during FETCH: {f}");
    let noop = b.cmd("NOOP");
    assert!(noop.contains("* 1 EXPUNGE"), "{noop}");
    // Many deliveries while both watch: each seen once, with stable UIDs.
    for i in 0..10 {
        deliver(&lab, &format!("burst {i}"));
    }
    lab.wait_mailbox("b", "bob", 11, Duration::from_secs(10));
    let ua = a.cmd("UID SEARCH ALL");
    let ub = b.cmd("UID SEARCH ALL");
    let uids = |s: &str| -> Vec<u32> {
        s.lines()
            .find(|l| l.starts_with("* SEARCH"))
            .unwrap()
            .split(' ')
            .skip(2)
            .map(|x| x.trim().parse().unwrap())
            .collect()
    };
    let (ua, ub) = (uids(&ua), uids(&ub));
    assert_eq!(ua, ub);
    assert_eq!(ua.len(), 11);
    let mut sorted = ua.clone();
    sorted.dedup();
    assert_eq!(sorted, ua, "ascending, no duplicates");
    let subjects = a.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    for i in 0..10 {
        assert_eq!(
            subjects.matches(&format!("Subject: burst {i}\r\n")).count(),
            1,
            "{subjects}"
        );
    }
    // UIDs survive a restart of the server.
    drop(a);
    drop(b);
    let mut lab = lab;
    lab.b.kill();
    lab.b.start();
    common::mail::wait_port(lab.b_imap());
    let mut c = Imap::connect(&lab);
    c.cmd("LOGIN bob bob-pw");
    c.cmd("SELECT INBOX");
    assert_eq!(uids(&c.cmd("UID SEARCH ALL")), ua);
}

#[test]
fn curl_reads_over_imap() {
    let lab = MailLab::start(&[]);
    deliver(&lab, "for curl");
    lab.wait_mailbox("b", "bob", 1, Duration::from_secs(10));
    let base = format!("imap://127.0.0.2:{}/", lab.imap_port);
    let run = common::curl_as_bob;
    assert!(run(&[], &base).contains("INBOX"));
    let m = run(&[], &format!("{base}INBOX;UID=1"));
    assert!(
        m.contains("Subject: for curl") && m.contains("body of for curl"),
        "{m}"
    );
    let s = run(&["-X", "SEARCH SUBJECT curl"], &format!("{base}INBOX"));
    assert!(s.contains("* SEARCH 1"), "{s}");
}

#[test]
fn the_mail_tool_reads_over_pop3_and_imap() {
    let lab = MailLab::start(&[]);
    for s in ["one", "two", "three"] {
        deliver(&lab, s);
    }
    lab.wait_mailbox("b", "bob", 3, Duration::from_secs(10));
    let node = env!("CARGO_BIN_EXE_applab-node");
    let pop = format!("127.0.0.2:{}", lab.pop3_port);
    let imap = format!("127.0.0.2:{}", lab.imap_port);
    let mail = |args: &[&str]| {
        let mut all = vec!["tool", "mail"];
        all.extend_from_slice(args);
        let o = tool(node, &all, None);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "mail {args:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    let acct = |server: &str| {
        vec![
            "--server".to_string(),
            server.to_string(),
            "-u".into(),
            "bob".into(),
            "-p".into(),
            "bob-pw".into(),
        ]
    };
    let p = acct(&pop);
    let p: Vec<&str> = p.iter().map(String::as_str).collect();
    let i = acct(&imap);
    let i: Vec<&str> = i.iter().map(String::as_str).collect();
    // POP3: list, read and keep, read and delete.
    let list = mail(&[&["list", "--json", "-q"][..], &p].concat());
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["subject"], "one");
    let kept = mail(&[&["read", "1", "--keep"][..], &p].concat());
    assert!(
        kept.contains("C: RETR 1") && !kept.contains("C: DELE") && kept.contains("C: QUIT"),
        "{kept}"
    );
    assert!(kept.contains("S: Subject: one"), "{kept}");
    assert_eq!(lab.mailbox("b", "bob").len(), 3);
    let gone = mail(&[&["read", "1"][..], &p].concat());
    assert!(gone.contains("C: DELE 1"), "{gone}");
    assert_eq!(lab.mailbox("b", "bob").len(), 2);
    // IMAP: folders, move, headers only.
    let l = mail(&[&["list", "--imap", "--json", "-q"][..], &i].concat());
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    let uid = v[0]["id"].as_u64().unwrap().to_string();
    assert_eq!(v[0]["subject"], "two");
    mail(&[&["move", &uid, "Keep"][..], &i].concat());
    let f = mail(&[&["folders", "-q"][..], &i].concat());
    assert!(f.lines().any(|l| l == "Keep"), "{f}");
    let h = mail(
        &[
            &["read", "1", "--imap", "--folder", "Keep", "--headers"][..],
            &i,
        ]
        .concat(),
    );
    assert!(
        h.contains("BODY.PEEK[HEADER]") && h.contains("Subject: two") && !h.contains("body of two"),
        "{h}"
    );
}

#[test]
fn expunge_numbers_follow_rfc_3501_example() {
    let lab = MailLab::start(&[]);
    for i in 1..=11 {
        deliver(&lab, &format!("m{i}"));
    }
    lab.wait_mailbox("b", "bob", 11, Duration::from_secs(10));
    let mut c = Imap::connect(&lab);
    c.cmd("LOGIN bob bob-pw");
    c.cmd("SELECT INBOX");
    assert!(tagged_ok(
        &c.cmd("STORE 3,4,7,11 +FLAGS.SILENT (\\Deleted)")
    ));
    let e = c.cmd("EXPUNGE");
    let nums: Vec<&str> = e
        .lines()
        .filter_map(|l| {
            l.strip_prefix("* ")
                .and_then(|r| r.strip_suffix(" EXPUNGE"))
        })
        .collect();
    assert_eq!(nums, ["3", "3", "5", "8"], "{e}");
    let f = c.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let subjects: Vec<&str> = f
        .lines()
        .filter_map(|l| l.strip_prefix("Subject: "))
        .collect();
    assert_eq!(subjects, ["m1", "m2", "m5", "m6", "m8", "m9", "m10"]);
}

/// Every change the IMAP and POP3 servers acknowledged is found after a
/// SIGKILL that follows the tagged OK (or `+OK`) within milliseconds.
#[test]
fn acknowledged_changes_survive_a_sigkill_right_after_the_answer() {
    let mut lab = MailLab::start(&[]);
    for i in 0..30 {
        lab.note_to_bob(&format!("crash {i}"));
    }
    lab.wait_mailbox("b", "bob", 30, Duration::from_secs(10));
    let crash = |lab: &mut MailLab| {
        lab.b.kill();
        lab.b.start();
        common::mail::wait_port(lab.b_imap());
        common::mail::wait_port(lab.b_pop3());
        Raw::connect_imap(lab.b_imap())
    };
    let ok = |r: &str| {
        assert!(r.lines().last().unwrap_or("").starts_with("x OK"), "{r}");
    };
    let count = |r: &mut Raw, folder: &str| -> usize {
        let s = r.imap(&format!("STATUS {folder} (MESSAGES)"));
        let n = s.split("MESSAGES ").nth(1).expect("a count");
        n.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or_else(|_| panic!("{s}"))
    };

    // STORE to 25 messages at once, then two STOREs in a row.
    let mut r = Raw::connect_imap(lab.b_imap());
    ok(&r.imap("STORE 1:25 +FLAGS.SILENT (\\Seen)"));
    let mut r = crash(&mut lab);
    let f = r.imap("FETCH 1:25 (FLAGS)");
    assert_eq!(f.matches("\\Seen").count(), 25, "{f}");
    ok(&r.imap("STORE 26 +FLAGS (\\Flagged)"));
    ok(&r.imap("STORE 27 +FLAGS ($Work)"));
    let mut r = crash(&mut lab);
    let f = r.imap("FETCH 26:27 (FLAGS)");
    assert!(f.contains("\\Flagged") && f.contains("$Work"), "{f}");

    // CREATE, COPY, MOVE, RENAME.
    ok(&r.imap("CREATE Work"));
    let mut r = crash(&mut lab);
    assert!(r.imap("LIST \"\" *").contains("Work"));
    ok(&r.imap("COPY 1:3 Work"));
    let mut r = crash(&mut lab);
    assert_eq!(count(&mut r, "Work"), 3);
    ok(&r.imap("MOVE 4:5 Work"));
    let mut r = crash(&mut lab);
    assert_eq!((count(&mut r, "Work"), count(&mut r, "INBOX")), (5, 28));
    ok(&r.imap("RENAME Work Archive"));
    let mut r = crash(&mut lab);
    let l = r.imap("LIST \"\" *");
    assert!(l.contains("Archive") && !l.contains("Work"), "{l}");
    assert_eq!(count(&mut r, "Archive"), 5);
    let f = r.imap("SELECT Archive");
    ok(&f);
    assert!(r.imap("FETCH 1:3 (FLAGS)").matches("\\Seen").count() == 3);

    // EXPUNGE and APPEND.
    r.imap("SELECT INBOX");
    ok(&r.imap("STORE 1 +FLAGS (\\Deleted)"));
    ok(&r.imap("EXPUNGE"));
    let mut r = crash(&mut lab);
    assert_eq!(count(&mut r, "INBOX"), 27);
    let msg = "Subject: appended\r\n\r\nkept\r\n";
    ok(&r.imap(&format!(
        "APPEND INBOX (\\Flagged) {{{}+}}\r\n{msg}",
        msg.len()
    )));
    let mut r = crash(&mut lab);
    assert_eq!(count(&mut r, "INBOX"), 28);
    let f = r.imap("FETCH 28 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(f.contains("\\Flagged") && f.contains("appended"), "{f}");
    drop(r);

    // POP3: DELE then QUIT's +OK.
    let (mut p, _) = Raw::connect(lab.b_pop3());
    p.cmd("USER bob");
    p.cmd("PASS bob-pw");
    assert!(p.cmd("DELE 1").starts_with("+OK"));
    assert!(p.cmd("QUIT").starts_with("+OK"));
    let mut r = crash(&mut lab);
    assert_eq!(count(&mut r, "INBOX"), 27);
}
