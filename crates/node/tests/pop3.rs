//! The POP3 side of the mail role on loopback: python3's poplib and curl's
//! pop3:// read bob's mailbox, both ways the lecture names (download and
//! delete, download and keep), and deletions happen only at QUIT.

mod common;

use common::mail::{MailLab, Raw};
use common::tool;
use std::time::Duration;

/// Deliver `n` messages to bob@b.lab through b.lab's SMTP (local delivery).
fn fill(lab: &MailLab, n: usize) {
    for i in 0..n {
        lab.deliver_to_bob(&format!(
            "Subject: note {i}\r\nMessage-ID: <note{i}@b.lab>\r\n\r\nline one of {i}\r\n..a dotted line\r\nlast line"
        ));
    }
    lab.wait_mailbox("b", "bob", n, Duration::from_secs(10));
}

fn poplib(lab: &MailLab, mode: &str) -> serde_json::Value {
    let o = tool(
        "python3",
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/pop3_client.py"),
            "127.0.0.2",
            &lab.pop3_port.to_string(),
            mode,
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn poplib_downloads_and_deletes_and_downloads_and_keeps() {
    let lab = MailLab::start(&[]);
    fill(&lab, 3);
    let v = poplib(&lab, "delete");
    assert!(v["welcome"].as_str().unwrap().starts_with("+OK"), "{v}");
    for c in ["TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"] {
        assert!(
            v["capa"].as_array().unwrap().iter().any(|x| x == c),
            "{c}: {v}"
        );
    }
    assert_eq!(v["stat"][0], 3);
    let m0 = v["messages"][0]["text"].as_str().unwrap();
    assert!(
        m0.contains("Subject: note 0") && m0.contains("\n.a dotted line\n"),
        "byte-stuffing undone: {m0}"
    );
    // The size LIST gives is what RETR sends.
    let listed: u64 = v["list"][0]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let octets = v["messages"][0]["octets"].as_u64().unwrap();
    assert!(
        octets >= listed,
        "{listed} listed, {octets} received with stuffing and CRLFs"
    );
    assert!(v["top_lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "Subject: note 0"));
    assert!(
        !v["top_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "line one of 0"),
        "TOP 1 0: no body"
    );
    assert_eq!(v["stat_after_dele"][0], 2);
    assert_eq!(v["stat_after_rset"][0], 3);
    // Download and delete: after QUIT the first message is gone.
    let left = lab.mailbox("b", "bob");
    assert_eq!(left.len(), 2);
    assert!(!left.iter().any(|m| m.contains("Subject: note 0")));
    // Download and keep: everything read, nothing removed, UIDLs stable.
    let k1 = poplib(&lab, "keep");
    let k2 = poplib(&lab, "keep");
    assert_eq!(k1["stat"][0], 2);
    assert_eq!(k1["uidl"], k2["uidl"]);
    assert_eq!(v["uidl"][1], k1["uidl"][0], "a message keeps its UIDL");
    assert_eq!(lab.mailbox("b", "bob").len(), 2);
    // Every message marked deleted: LIST and UIDL list nothing, not one
    // blank entry (poplib reads an empty line as a listing holding b'').
    let e = poplib(&lab, "empty");
    assert_eq!(e["list_when_empty"], serde_json::json!([]), "{e}");
    assert_eq!(e["uidl_when_empty"], serde_json::json!([]), "{e}");
    assert_eq!(lab.mailbox("b", "bob").len(), 2, "RSET kept them");
}

#[test]
fn dele_without_quit_deletes_nothing_and_the_mailbox_is_locked() {
    let lab = MailLab::start(&[]);
    fill(&lab, 2);
    let (mut r, greet) = Raw::connect(lab.b_pop3());
    assert!(greet.starts_with("+OK"));
    assert!(r.cmd("STAT").starts_with("-ERR"), "before login");
    assert!(r.cmd("PASS bob-pw").starts_with("-ERR"), "PASS before USER");
    assert!(r.cmd("USER bob").starts_with("+OK"));
    assert!(r.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    r.cmd("USER bob");
    assert!(r.cmd("PASS bob-pw").starts_with("+OK"));
    // A second session finds the mailbox locked.
    let (mut other, _) = Raw::connect(lab.b_pop3());
    other.cmd("USER bob");
    assert!(other.cmd("PASS bob-pw").starts_with("-ERR [IN-USE]"));
    assert!(r.cmd("DELE 1").starts_with("+OK"));
    assert!(r.cmd("DELE 1").starts_with("-ERR"), "already deleted");
    assert!(r.cmd("RETR 1").starts_with("-ERR"));
    assert!(r.cmd("RETR 9").starts_with("-ERR"));
    assert!(r.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(r.cmd("STAT"), "+OK 0 0");
    assert!(r.cmd("FROB").starts_with("-ERR"));
    drop(r); // the connection drops: no QUIT, no UPDATE
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.mailbox("b", "bob").len(),
        2,
        "a dropped session deletes nothing"
    );
    // The lock went with the session.
    let (mut again, _) = Raw::connect(lab.b_pop3());
    again.cmd("USER bob");
    assert!(again.cmd("PASS bob-pw").starts_with("+OK"));
    assert!(again.cmd("DELE 2").starts_with("+OK"));
    assert!(again.cmd("QUIT").starts_with("+OK"));
    assert_eq!(lab.mailbox("b", "bob").len(), 1);
}

#[test]
fn curl_lists_retrieves_and_deletes_over_pop3() {
    let lab = MailLab::start(&[]);
    fill(&lab, 2);
    let base = format!("pop3://127.0.0.2:{}/", lab.pop3_port);
    let run = common::curl_as_bob;
    let list = run(&[], &base);
    assert_eq!(list.lines().count(), 2, "{list}");
    let m = run(&[], &format!("{base}2"));
    assert!(m.contains("Subject: note 1"), "{m}");
    run(&["-X", "DELE", "-I"], &format!("{base}1"));
    let left = lab.mailbox("b", "bob");
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("Subject: note 1"));
}
