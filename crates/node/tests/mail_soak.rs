//! Mail that survives crashes: 1,000 messages from several clients to
//! a.lab for bob@b.lab while both servers are SIGKILLed and restarted under
//! them. Every message acknowledged with a 250 ends in bob's Maildir exactly
//! once, and a message resent because its 250 was lost is not doubled.
//! Bounded in time (CI): well under three minutes.

mod common;

use common::mail::{code, MailLab, Raw};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MESSAGES: usize = 1000;

/// How a client sends: messages per connection, and whether it pipelines
/// (RFC 2920: MAIL, RCPT and DATA in one write).
#[derive(Clone, Copy)]
struct Style {
    per_connection: usize,
    pipelining: bool,
}

fn message(n: usize) -> String {
    format!(
        "From: alice@a.lab\r\nTo: bob@b.lab\r\nSubject: soak {n}\r\nMessage-ID: <soak-{n}@a.lab>\r\n\r\nmessage {n}\r\n.."
    )
}

/// Send `todo` in order over as few connections as the style allows;
/// the numbers whose 250 was read. Stops at the first broken dialogue.
fn send_some(addr: SocketAddr, todo: &[usize], style: Style) -> Vec<usize> {
    let mut acked = Vec::new();
    let Some(mut r) = Raw::try_connect(addr) else {
        return acked;
    };
    if r.try_cmd("EHLO soak").is_none() {
        return acked;
    }
    for &n in todo.iter().take(style.per_connection) {
        let head = "MAIL FROM:<alice@a.lab>\r\nRCPT TO:<bob@b.lab>\r\nDATA\r\n";
        let ready = if style.pipelining {
            r.try_send(head.as_bytes())
                .and_then(|_| Some([r.try_reply()?, r.try_reply()?, r.try_reply()?]))
                .map(|[m, t, d]| code(&m) == 250 && code(&t) == 250 && code(&d) == 354)
        } else {
            (|| {
                Some(
                    code(&r.try_cmd("MAIL FROM:<alice@a.lab>")?) == 250
                        && code(&r.try_cmd("RCPT TO:<bob@b.lab>")?) == 250
                        && code(&r.try_cmd("DATA")?) == 354,
                )
            })()
        };
        match ready {
            Some(true) => {}
            Some(false) => {
                let _ = r.try_cmd("RSET");
                return acked;
            }
            None => return acked,
        }
        match r.try_cmd(&format!("{}\r\n.", message(n))) {
            Some(rep) if rep.starts_with("250") => acked.push(n),
            _ => return acked,
        }
    }
    let _ = r.try_cmd("QUIT");
    acked
}

/// One client: sends its share until every message has its 250.
fn client(addr: SocketAddr, mine: Vec<usize>, style: Style, deadline: Instant) -> Vec<usize> {
    let mut left = mine;
    let mut acked = Vec::new();
    while !left.is_empty() && Instant::now() < deadline {
        let got = send_some(addr, &left, style);
        if got.is_empty() {
            // Refused or down: the server is being restarted.
            std::thread::sleep(Duration::from_millis(30));
        }
        left.retain(|n| !got.contains(n));
        acked.extend(got);
    }
    assert!(
        left.is_empty(),
        "{} messages never acknowledged",
        left.len()
    );
    acked
}

#[test]
fn a_thousand_messages_through_crashing_servers_arrive_exactly_once() {
    let started = Instant::now();
    let mut lab = MailLab::start(&["--relay-from", "127.0.0.0/8", "--retry", "300ms,1s"]);
    let addr = lab.a_addr();
    let deadline = started + Duration::from_secs(120);
    let styles = [
        Style {
            per_connection: 1,
            pipelining: false,
        },
        Style {
            per_connection: 1,
            pipelining: true,
        },
        Style {
            per_connection: 20,
            pipelining: true,
        },
        Style {
            per_connection: 500,
            pipelining: false,
        },
        Style {
            per_connection: 500,
            pipelining: true,
        },
    ];
    let sending = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = styles
        .iter()
        .enumerate()
        .map(|(k, &style)| {
            let mine: Vec<usize> = (0..MESSAGES).filter(|n| n % styles.len() == k).collect();
            std::thread::spawn(move || client(addr, mine, style, deadline))
        })
        .collect();
    // Kill at irregular intervals while the clients send and a.lab relays:
    // b.lab at least 6 times, a.lab at least twice.
    let mut rng = 0x2545_f491_u64;
    let mut next = |lo: u64, hi: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        lo + rng % (hi - lo)
    };
    let (mut b_kills, mut a_kills) = (0, 0);
    while b_kills < 8 || clients.iter().any(|c| !c.is_finished()) {
        std::thread::sleep(Duration::from_millis(next(150, 600)));
        if Instant::now() > deadline {
            break;
        }
        lab.b.kill();
        b_kills += 1;
        std::thread::sleep(Duration::from_millis(next(20, 400)));
        lab.b.start();
        if b_kills % 3 == 0 && a_kills < 3 {
            lab.a.kill();
            a_kills += 1;
            std::thread::sleep(Duration::from_millis(next(10, 100)));
            lab.a.start();
        }
    }
    sending.store(false, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for c in clients {
        acked.extend(c.join().expect("a client"));
    }
    eprintln!(
        "{} acknowledged; b.lab killed {b_kills} times, a.lab {a_kills}; {:.1}s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        b_kills >= 6 && a_kills >= 2,
        "kills: b {b_kills}, a {a_kills}"
    );
    assert_eq!(
        acked.len(),
        MESSAGES,
        "every message acknowledged in the end"
    );
    common::mail::wait_port(lab.a_addr());
    common::mail::wait_port(lab.b_addr());

    // Everything relayed: a.lab's queue drains into bob's Maildir.
    let mut counts: HashMap<usize, usize> = HashMap::new();
    while Instant::now() < started + Duration::from_secs(170) {
        counts.clear();
        for m in lab.mailbox("b", "bob") {
            if let Some(n) = m
                .split("Message-ID: <soak-")
                .nth(1)
                .and_then(|r| r.split('@').next())
                .and_then(|n| n.parse().ok())
            {
                *counts.entry(n).or_default() += 1;
            }
        }
        if counts.len() == MESSAGES && lab.queue_files("a") == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, &c)| c > 1).collect();
    assert!(doubled.is_empty(), "doubled in bob's Maildir: {doubled:?}");
    let missing: Vec<_> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages missing (a.lab's queue holds {} files), e.g. {:?}\n{}",
        missing.len(),
        lab.queue_files("a"),
        &missing[..missing.len().min(5)],
        lab.a
            .log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
