//! smtp on a real launch: a scripted model student does each step of
//! CURRICULUM.md §4 from the workstation (`lookup`, `tcp`, `mail send`)
//! against their own two mail domains and DNS, and the nodes' state and the
//! captured traffic show what happened; the model passes every check, an
//! idle classmate none, a copier with the model's domains and token none.
//! Needs a Docker engine; fails without one.

mod common;

use common::Server;
use serde_json::Value;
use std::time::{Duration, Instant};

const RUN: &str = "mail";
const WHO: &str = "s1";

fn ws(s: &Server, script: &str) -> String {
    s.sh(RUN, WHO, "ws", script)
}

fn mailq(s: &Server, node: &str) -> Value {
    s.mailq(RUN, WHO, node)
}

fn mailbox(s: &Server, node: &str, user: &str) -> Vec<Value> {
    mailq(s, node)["mailboxes"][user]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Wait until `user`'s mailbox on `node` has a message whose Subject holds `subject`.
fn wait_for(s: &Server, node: &str, user: &str, subject: &str, within: Duration) -> Value {
    let t = Instant::now();
    loop {
        if let Some(m) = mailbox(s, node, user)
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|x| x.contains(subject)))
        {
            return m;
        }
        assert!(
            t.elapsed() < within,
            "no {subject:?} for {user} on {node} after {within:?}; mail-a holds {}",
            mailq(s, "mail-a")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn events(s: &Server, protocol: &str) -> Vec<Value> {
    s.events(RUN, WHO, protocol)
}

#[test]
fn model_student_does_smtp_between_two_domains() {
    let mut s = Server::start("10.227.0.0/20");
    s.launch(RUN, "smtp", &[WHO, "i1", "c1"]);
    let p = s.json(&["params", WHO, "--run", RUN]);
    let a = format!("{}.lab", p["dom_a"].as_str().unwrap());
    let b = format!("{}.lab", p["dom_b"].as_str().unwrap());
    let token = p["token"].as_str().unwrap().to_string();

    // Step 1: the MX of bob's domain, from the lab's DNS.
    let mx = ws(&s, &format!("lookup {b} MX @dns"));
    assert!(mx.contains("status NOERROR") && mx.contains("aa"), "{mx}");
    assert!(mx.contains(&format!("MX\t10 mail.{b}.")), "{mx}");

    // Step 2: the three phases typed by hand to alice's own server.
    let dialogue = format!(
        "HELO ws.{a}\nMAIL FROM:<alice@{a}>\nRCPT TO:<bob@{b}>\nDATA\n\
         From: alice@{a}\nTo: bob@{b}\nSubject: {token} by hand\n\n\
         Hello Bob, typed by hand.\n.\nQUIT\n"
    );
    let out = ws(&s, &format!("printf '%s' '{dialogue}' | tcp mail.{a} 25"));
    for code in ["220 ", "250 ", "354 ", "250 2.0.0 OK: queued as", "221 "] {
        assert!(out.contains(code), "{code} in:\n{out}");
    }
    let m = wait_for(
        &s,
        "mail-b",
        "bob",
        &format!("{token} by hand"),
        Duration::from_secs(20),
    );
    let received = m["received"].as_array().unwrap();
    assert_eq!(received.len(), 2, "a Received line from each hop: {m}");
    assert!(
        received[0]
            .as_str()
            .unwrap()
            .contains(&format!("by mail.{b}")),
        "{m}"
    );
    assert!(
        received[1]
            .as_str()
            .unwrap()
            .contains(&format!("by mail.{a}")),
        "{m}"
    );

    // In the trace: the student's dialogue, the MX lookup by alice's
    // server, and the relay between the two servers.
    let smtp = events(&s, "smtp");
    let verbs: Vec<(String, String)> = smtp
        .iter()
        .filter(|e| e["type"] == "smtp_command")
        .map(|e| {
            (
                e["client_node"].as_str().unwrap_or("").to_string(),
                e["verb"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let from = |node: &str, verb: &str| verbs.iter().any(|(c, v)| c == node && v == verb);
    assert!(
        from("ws", "HELO") && from("ws", "DATA") && from("ws", "QUIT"),
        "{verbs:?}"
    );
    assert!(
        from("mail-a", "EHLO") && from("mail-a", "MAIL FROM"),
        "{verbs:?}"
    );
    let dns = events(&s, "dns");
    assert!(
        dns.iter().any(|e| e["type"] == "dns_query"
            && e["qtype"] == "MX"
            && e["name"].as_str().is_some_and(|n| n.starts_with(&b))),
        "MX lookup in the trace: {dns:?}"
    );

    // Step 3: envelope versus header.
    let out = ws(
        &s,
        &format!(
            "mail send --server mail.{a} --from alice@{a} --to bob@{b} \
             --header-to 'The whole class <class@{b}>' --subject '{token} envelope' --body 'Who gets this?'"
        ),
    );
    assert!(out.contains("C: RCPT TO:<bob@"), "{out}");
    let m = wait_for(
        &s,
        "mail-b",
        "bob",
        &format!("{token} envelope"),
        Duration::from_secs(20),
    );
    assert_eq!(
        m["to"].as_str().unwrap(),
        format!("The whole class <class@{b}>")
    );
    assert_eq!(m["delivered_to"].as_str().unwrap(), format!("bob@{b}"));

    // Step 4: bob's server is down; alice's queues and retries; once it is
    // back the message arrives, once.
    s.ok(&["stop", WHO, "mail-b", "--run", RUN]);
    ws(
        &s,
        &format!(
            "mail send -q --server mail.{a} --from alice@{a} --to bob@{b} --subject '{token} retry' --body 'Patience.'"
        ),
    );
    let t = Instant::now();
    loop {
        let q = mailq(&s, "mail-a")["queue"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if q.iter().any(|e| e["attempts"].as_u64() >= Some(1)) {
            let last = q[0]["rcpts"][0]["last"].as_str().unwrap_or("").to_string();
            eprintln!("queued at mail-a after a failed attempt: {last}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no failed attempt: {q:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    s.ok(&["start", WHO, "mail-b", "--run", RUN]);
    wait_for(
        &s,
        "mail-b",
        "bob",
        &format!("{token} retry"),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    let retried: Vec<Value> = mailbox(&s, "mail-b", "bob")
        .into_iter()
        .filter(|m| m["subject"].as_str().is_some_and(|x| x.contains("retry")))
        .collect();
    assert_eq!(retried.len(), 1, "delivered exactly once");
    assert!(mailq(&s, "mail-a")["queue"].as_array().unwrap().is_empty());
    // Bob's mailbox survived the stop (the node's volume).
    assert!(mailbox(&s, "mail-b", "bob").len() >= 3);

    // Every check passes for the model; nothing for the idle classmate.
    let r = s.wait_status(
        RUN,
        WHO,
        "retry",
        "retried-once-delivered",
        "pass",
        Duration::from_secs(40),
    );
    r.assert_all(WHO, "pass");
    r.assert_all("i1", "pending");

    // The copier types the model's dialogue, domains and token included,
    // to their own server.
    let dialogue = format!(
        "HELO ws.{a}\nMAIL FROM:<alice@{a}>\nRCPT TO:<bob@{b}>\nDATA\n\
         From: alice@{a}\nTo: bob@{b}\nSubject: {token} by hand\n\n\
         Hello Bob, typed by hand.\n.\nQUIT\n"
    );
    s.sh(
        RUN,
        "c1",
        "ws",
        &format!("printf '%s' '{dialogue}' | tcp mail-a 25"),
    );
    let _ = s.exec(
        RUN,
        "c1",
        "ws",
        &["sh", "-c", &format!(
            "mail send --server mail-a --from alice@{a} --to bob@{b} --header-to 'The whole class <class@{b}>' --subject '{token} envelope' --body 'Who gets this?'"
        )],
    );
    std::thread::sleep(Duration::from_secs(3));
    let r = s.check(RUN);
    r.assert_exactly(
        "c1",
        &[
            // The greeting and MAIL FROM were seen; no RCPT TO for their own bob's domain.
            ("dialogue", "three-phases", "fail"),
            ("dialogue", "relayed", "pending"),
            ("envelope", "envelope-differs", "pending"),
            ("retry", "retried-once-delivered", "pending"),
        ],
    );
}
