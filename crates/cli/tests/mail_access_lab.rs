//! mail-access on a real launch: a scripted model student does each step
//! of CURRICULUM.md §5 from the workstation — POP3 by hand (download and
//! delete, a DELE without QUIT, download and keep), IMAP by hand (a folder,
//! a message moved into it, found again from another client, only its
//! header fetched) — against bob's pre-filled mailbox; the node's state and
//! the captured traffic show it, and the model passes every check. An idle
//! classmate passes none; a copier with the model's password and folder
//! name passes none. Needs a Docker engine; fails without one.

mod common;

use common::Server;
use serde_json::Value;
use std::time::Duration;

const RUN: &str = "access";
const WHO: &str = "p1";

fn ws(s: &Server, script: &str) -> String {
    s.sh(RUN, WHO, "ws", script)
}

fn mailq(s: &Server) -> Value {
    s.mailq(RUN, WHO, "mail-b")
}

fn inbox(s: &Server) -> Vec<Value> {
    mailq(s)["mailboxes"]["bob"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events(s: &Server, protocol: &str) -> Vec<Value> {
    s.events(RUN, WHO, protocol)
}

#[test]
fn model_student_does_pop3_and_imap() {
    let mut s = Server::start("10.228.0.0/20");
    s.launch(RUN, "mail-access", &[WHO, "i1", "c1"]);
    let p = s.json(&["params", WHO, "--run", RUN]);
    let pw = p["bob_password"].as_str().unwrap().to_string();
    let token = p["token"].as_str().unwrap().to_string();
    let project = p["project"].as_str().unwrap().to_string();
    let b = format!("mail.{}.lab", p["dom_b"].as_str().unwrap());

    // The mailbox already holds the student's messages.
    let start = inbox(&s);
    assert_eq!(start.len(), 3, "{start:?}");
    assert!(start
        .iter()
        .all(|m| m["subject"].as_str().unwrap().starts_with(&token)));

    // POP3 by hand: authorization, transaction, update.
    let out = ws(
        &s,
        &format!("printf 'USER bob\\nPASS {pw}\\nLIST\\nRETR 1\\nDELE 1\\nQUIT\\n' | tcp {b} 110"),
    );
    assert!(out.contains("+OK bob's maildrop has 3 messages"), "{out}");
    assert!(out.contains(&format!("Subject: {token}")), "{out}");
    assert!(out.contains("signing off"), "{out}");
    assert_eq!(inbox(&s).len(), 2, "deleted at QUIT");
    // DELE without QUIT: the connection ends, nothing is deleted.
    let out = ws(
        &s,
        &format!("printf 'USER bob\\nPASS {pw}\\nDELE 1\\nDELE 2\\n' | tcp {b} 110"),
    );
    assert!(out.contains("deleted (at QUIT)"), "{out}");
    assert_eq!(inbox(&s).len(), 2, "no QUIT, no UPDATE state");
    // Download and keep, with the mail tool.
    let out = ws(
        &s,
        &format!("mail read 1 --keep --server {b} -u bob -p {pw}"),
    );
    assert!(
        out.contains("C: RETR 1") && !out.contains("C: DELE"),
        "{out}"
    );
    assert_eq!(inbox(&s).len(), 2);

    // IMAP by hand: a folder, the project message moved into it.
    let login = format!("a LOGIN bob {pw}");
    let out = ws(
        &s,
        &format!("printf '{login}\\nb CREATE {project}\\nc SELECT INBOX\\nd SEARCH SUBJECT {project}\\ne LOGOUT\\n' | tcp {b} 143"),
    );
    assert!(
        out.contains("b OK") && out.contains("c OK [READ-WRITE]"),
        "{out}"
    );
    let n: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("* SEARCH "))
        .and_then(|x| x.trim().parse().ok())
        .unwrap_or_else(|| panic!("no SEARCH hit: {out}"));
    let out = ws(
        &s,
        &format!(
            "printf '{login}\\nb SELECT INBOX\\nc MOVE {n} {project}\\nd LOGOUT\\n' | tcp {b} 143"
        ),
    );
    assert!(out.contains("c OK") && out.contains(" EXPUNGE"), "{out}");
    // Another client finds it there: the folder lives on the server.
    let out = ws(
        &s,
        &format!("mail list --imap --folder {project} --json -q --server {b} -u bob -p {pw}"),
    );
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{out}");
    assert!(listed[0]["subject"].as_str().unwrap().contains(&project));
    let q = mailq(&s);
    assert_eq!(
        q["folders"]["bob"][&project].as_array().map(Vec::len),
        Some(1),
        "{q}"
    );
    assert_eq!(inbox(&s).len(), 1);
    // Only a component of the message: its header.
    let out = ws(
        &s,
        &format!("printf '{login}\\nb SELECT {project}\\nc FETCH 1 BODY.PEEK[HEADER]\\nd LOGOUT\\n' | tcp {b} 143"),
    );
    assert!(
        out.contains("BODY[HEADER]") && out.contains(&format!("Subject: {token}")),
        "{out}"
    );
    assert!(!out.contains("1. Requirements"), "no body: {out}");

    // In the trace: the student's POP3 and IMAP dialogues.
    let pop: Vec<String> = events(&s, "pop3")
        .iter()
        .filter(|e| e["type"] == "pop3_command" && e["client_node"] == "ws")
        .map(|e| e["verb"].as_str().unwrap_or("").to_string())
        .collect();
    for v in ["USER", "PASS", "LIST", "RETR", "DELE", "QUIT"] {
        assert!(pop.iter().any(|x| x == v), "{v} in {pop:?}");
    }
    let imap: Vec<String> = events(&s, "imap")
        .iter()
        .filter(|e| e["type"] == "imap_command" && e["client_node"] == "ws")
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect();
    for v in ["LOGIN", "CREATE", "MOVE", "FETCH", "LOGOUT"] {
        assert!(imap.iter().any(|x| x == v), "{v} in {imap:?}");
    }

    // Every check passes for the model.
    let r = s.wait_status(
        RUN,
        WHO,
        "imap",
        "message-moved",
        "pass",
        Duration::from_secs(30),
    );
    let r = if r.status(WHO, "pop3", "mailbox-state") == "pass" {
        r
    } else {
        s.wait_status(
            RUN,
            WHO,
            "pop3",
            "mailbox-state",
            "pass",
            Duration::from_secs(30),
        )
    };
    r.assert_all(WHO, "pass");
    r.assert_all("i1", "pending");

    // The copier: the same dialogues with the model's password and folder,
    // against their own server (by its node name: the model's domain is
    // not in the copier's DNS).
    let c = |script: &str| {
        let _ = s.exec(RUN, "c1", "ws", &["sh", "-c", script]);
    };
    c(&format!(
        "printf 'USER bob\\nPASS {pw}\\nLIST\\nRETR 1\\nDELE 1\\nQUIT\\n' | tcp mail-b 110"
    ));
    c(&format!(
        "printf 'USER bob\\nPASS {pw}\\nDELE 1\\n' | tcp mail-b 110"
    ));
    c(&format!(
        "mail read 1 --keep --server mail-b -u bob -p {pw}"
    ));
    c(&format!("printf '{login}\\nb CREATE {project}\\nc SELECT INBOX\\nd MOVE 2 {project}\\ne LOGOUT\\n' | tcp mail-b 143"));
    c(&format!("printf '{login}\\nb SELECT {project}\\nc FETCH 1 BODY.PEEK[HEADER]\\nd LOGOUT\\n' | tcp mail-b 143"));
    std::thread::sleep(Duration::from_secs(2));
    let r = s.check(RUN);
    r.assert_exactly(
        "c1",
        &[
            // USER is accepted before any password; PASS is not.
            ("pop3", "download-and-delete", "fail"),
            ("pop3", "dele-without-quit", "pending"),
            ("pop3", "download-and-keep", "pending"),
            ("pop3", "mailbox-state", "pending"),
            ("imap", "folder-created", "pending"),
            ("imap", "message-moved", "pending"),
            // A LOGOUT was seen; no login after it succeeded.
            ("imap", "kept-across-sessions", "fail"),
            ("imap", "fetch-header", "pending"),
        ],
    );
    r.assert_all("i1", "pending");
}
