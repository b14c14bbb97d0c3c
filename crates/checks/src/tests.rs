//! The evaluator on hand-made events: each relation, each state, each
//! error path.

use super::*;
use applab_proto::event::{Event, EventKind, Header};

const LAB: &str = r#"
[lab]
name = "t"
title = "T"

[parameters.site]
kind = "word"
len = 6

[parameters.n]
kind = "int"
min = 3
max = 9

[constants]
rtt_ms = 100

[[networks]]
name = "lan"

[[nodes]]
name = "origin"
role = "origin"
[[nodes.attach]]
network = "lan"

[[nodes]]
name = "mail"
role = "mail"
[nodes.config]
domain = "a.lab"
[[nodes.attach]]
network = "lan"

[[nodes]]
name = "ws"
role = "workstation"
[[nodes.attach]]
network = "lan"

[[tasks]]
id = "t"
title = "T"
file = "t.md"
points = 2

[[tasks.checks]]
id = "close"
expect = "11 or more connections to www.{{site}}.lab"
[tasks.checks.events]
match = { type = "http_request", client = "ws", server = "origin", host = "www.{{site}}.lab", "header.connection" = { icontains = "close" }, "reply.status" = 200 }
connections = { min = 11 }

[[tasks.checks]]
id = "keep"
expect = "11 or more requests on one connection"
[tasks.checks.events]
match = { type = "http_request", host = "www.{{site}}.lab", "header.connection" = { not = "close" } }
per_connection = { min = 11 }

[[tasks.checks]]
id = "cookie"
expect = "Set-Cookie, then the same id back"
[tasks.checks.sequence]
steps = [
  { say = "a new cart", match = { type = "http_response", "header.set-cookie" = { regex = "^cart=" } }, bind = { cart = { field = "header.set-cookie", regex = "cart=([0-9a-z]+)" } } },
  { say = "the cookie sent back", match = { type = "http_request", "header.cookie" = { contains = "cart={{cart}}" } } },
]

[[tasks.checks]]
id = "hit"
expect = "a second fetch answered by the cache"
[tasks.checks.sequence]
steps = [
  { say = "a first fetch", match = { type = "http_request", client = "ws", target = "/news.html" } },
  { say = "a request to the origin", absent = { type = "http_request", client = "mail", target = "/news.html" } },
  { say = "a second fetch", match = { type = "http_request", client = "ws", target = "/news.html" } },
]

[[tasks.checks]]
id = "dele-no-quit"
expect = "DELE, and the connection closed without QUIT"
[tasks.checks.sequence]
same_connection = true
steps = [
  { match = { type = "pop3_command", verb = "DELE" } },
  { absent = { type = "pop3_command", verb = "QUIT" } },
  { match = { type = "tcp_close" } },
]

[[tasks.checks]]
id = "delivered"
expect = "bob holds a message with your site in its Subject"
[tasks.checks.probe]
node = "mail"
probe = "mail"
find = "mailboxes.bob"
where = { subject = { contains = "{{site}}" }, received = { min = 2 } }

[[tasks.checks]]
id = "both"
expect = "a cart made, and the store holds it"
[[tasks.checks.all]]
[tasks.checks.all.sequence]
steps = [ { match = { type = "http_response", "header.set-cookie" = { present = true } }, bind = { cart = { field = "header.set-cookie", regex = "cart=([0-9a-z]+)" } } } ]
[[tasks.checks.all]]
[tasks.checks.all.probe]
node = "origin"
probe = "shop"
find = "carts.{{cart}}"
value = { contains = "tea" }

[[tasks.checks]]
id = "time"
expect = "the response time"
answer = "time"

[[tasks.questions]]
id = "time"
text = "The time for {{n}} objects?"
expected = "(n + 1) * 2 * rtt_ms"
unit = "ms"
abs = 5
"#;

fn lab() -> Lab {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lab.toml"), LAB).unwrap();
    std::fs::write(d.path().join("t.md"), "task").unwrap();
    Lab::load(d.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn params() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("site".to_string(), "bokalu".to_string()),
        ("n".to_string(), "4".to_string()),
        ("student_id".to_string(), "s1".to_string()),
    ])
}

/// Events built by hand, numbered as the capture numbers them.
#[derive(Default)]
struct Trace {
    events: Vec<NodeEvent>,
}

impl Trace {
    fn push(&mut self, flow: u64, client: &str, server: &str, kind: EventKind) -> &mut Self {
        let id = self.events.len() as u64 + 1;
        self.events.push(NodeEvent {
            seq: id,
            network: "lan".into(),
            client_node: Some(client.into()),
            server_node: Some(server.into()),
            event: Event {
                time: 1000.0 + id as f64,
                flow,
                frame: id * 3,
                client: "10.0.0.5:40000".parse().unwrap(),
                server: "10.0.0.2:80".parse().unwrap(),
                kind,
            },
        });
        self
    }

    fn get(
        &mut self,
        flow: u64,
        nth: u32,
        target: &str,
        host: &str,
        headers: &[(&str, &str)],
    ) -> &mut Self {
        let headers: Vec<Header> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.push(
            flow,
            "ws",
            "origin",
            EventKind::HttpRequest {
                method: "GET".into(),
                target: target.into(),
                version: "HTTP/1.1".into(),
                host: Some(host.into()),
                headers,
                body_bytes: 0,
                nth_on_connection: nth,
            },
        )
    }

    fn answer(&mut self, flow: u64, nth: u32, status: u16, headers: &[(&str, &str)]) -> &mut Self {
        self.push(
            flow,
            "ws",
            "origin",
            EventKind::HttpResponse {
                status,
                reason: "OK".into(),
                version: "HTTP/1.1".into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body_bytes: 10,
                request_method: Some("GET".into()),
                request_target: Some("/".into()),
                nth_on_connection: nth,
            },
        )
    }
}

fn eval(events: &[NodeEvent], probes: &Probes, answers: &[Submission]) -> TaskResult {
    let lab = lab();
    let p = params();
    let input = Input {
        lab: &lab,
        params: &p,
        events,
        probes,
        answers,
    };
    evaluate(&input).remove(0)
}

fn check<'a>(r: &'a TaskResult, id: &str) -> &'a CheckResult {
    r.checks.iter().find(|c| c.check == id).unwrap()
}

#[test]
fn nothing_seen_is_pending_everywhere() {
    let r = eval(&[], &Probes::new(), &[]);
    for c in &r.checks {
        assert_eq!(c.status, Status::Pending, "{c:?}");
    }
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.points, 0.0);
    assert_eq!(r.max_points, 2.0);
    assert_eq!(
        check(&r, "close").expected,
        "11 or more connections to www.bokalu.lab"
    );
}

#[test]
fn connections_counted_and_the_reply_read() {
    let mut t = Trace::default();
    for flow in 1..=11 {
        t.get(flow, 1, "/o", "www.bokalu.lab", &[("Connection", "close")])
            .answer(flow, 1, 200, &[]);
    }
    let r = eval(&t.events, &Probes::new(), &[]);
    let c = check(&r, "close");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.seen
            .starts_with("saw 11 matching events over 11 TCP connections"),
        "{}",
        c.seen
    );
    assert_eq!(c.evidence.len(), 11);
    assert_eq!(c.evidence[0].event, Some(1));
    assert_eq!(c.evidence[0].frame, Some(3));
    // Persistent: none of these requests qualify (all say close).
    assert_eq!(check(&r, "keep").status, Status::Pending);

    // Ten connections are not enough; nor is another student's site.
    let mut t = Trace::default();
    for flow in 1..=10 {
        t.get(flow, 1, "/o", "www.bokalu.lab", &[("Connection", "close")])
            .answer(flow, 1, 200, &[]);
    }
    t.get(11, 1, "/o", "www.other.lab", &[("Connection", "close")])
        .answer(11, 1, 200, &[]);
    let c = check(&eval(&t.events, &Probes::new(), &[]), "close").clone();
    assert_eq!(c.status, Status::Fail);
    assert!(c.seen.contains("over 10 TCP connections"), "{}", c.seen);
    assert!(
        c.seen
            .contains("wanted at least 1 such events, over at least 11 connections"),
        "{}",
        c.seen
    );

    // The reply matters: a 404 answer does not count.
    let mut t = Trace::default();
    for flow in 1..=11 {
        t.get(flow, 1, "/o", "www.bokalu.lab", &[("Connection", "close")])
            .answer(flow, 1, if flow == 3 { 404 } else { 200 }, &[]);
    }
    assert_eq!(
        check(&eval(&t.events, &Probes::new(), &[]), "close").status,
        Status::Fail
    );
}

#[test]
fn all_on_one_connection() {
    let mut t = Trace::default();
    for nth in 1..=11 {
        t.get(1, nth, "/o", "www.bokalu.lab", &[]);
    }
    let r = eval(&t.events, &Probes::new(), &[]);
    let c = check(&r, "keep");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.seen.contains("at most 11 on one"), "{}", c.seen);
    // Spread over two connections: no single one carries 11.
    let mut t = Trace::default();
    for nth in 1..=6 {
        t.get(1, nth, "/o", "www.bokalu.lab", &[]);
        t.get(
            2,
            nth,
            "/o",
            "www.bokalu.lab",
            &[("Connection", "keep-alive")],
        );
    }
    let c = check(&eval(&t.events, &Probes::new(), &[]), "keep").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
}

#[test]
fn a_value_bound_then_required() {
    let mut t = Trace::default();
    t.get(1, 1, "/shop", "x", &[])
        .answer(1, 1, 200, &[("Set-Cookie", "cart=abc123; Path=/")]);
    // The wrong id first, then the right one.
    t.get(2, 1, "/shop", "x", &[("Cookie", "cart=zzz")]);
    let r = eval(&t.events, &Probes::new(), &[]);
    let c = check(&r, "cookie");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.seen.contains("but not, after that, the cookie sent back"),
        "{}",
        c.seen
    );
    t.get(3, 1, "/shop", "x", &[("Cookie", "theme=dark; cart=abc123")]);
    let r = eval(&t.events, &Probes::new(), &[]);
    let c = check(&r, "cookie");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(
        c.evidence
            .iter()
            .map(|e| e.event.unwrap())
            .collect::<Vec<_>>(),
        [2, 4]
    );
    // Order matters: the cookie before its Set-Cookie is not it.
    let mut t = Trace::default();
    t.get(1, 1, "/shop", "x", &[("Cookie", "cart=abc123")]);
    t.get(2, 1, "/shop", "x", &[])
        .answer(2, 1, 200, &[("Set-Cookie", "cart=abc123")]);
    assert_eq!(
        check(&eval(&t.events, &Probes::new(), &[]), "cookie").status,
        Status::Fail
    );
}

#[test]
fn a_bound_value_is_text_not_a_pattern() {
    // A value seen in traffic, made of regex syntax, is matched literally.
    let mut env = matcher::Env::new(&params());
    env.bind("cart", "a.b".into());
    let m = applab_lab::check::Matcher {
        regex: Some("^cart={{cart}}$".into()),
        ..Default::default()
    };
    let m = matcher::CompiledMatcher::new(&m, &env);
    let v = |s: &'static str| Value::Str(s.into());
    assert!(m.holds(Some(&v("cart=a.b"))));
    assert!(!m.holds(Some(&v("cart=axb"))));
    // A placeholder bound to nothing yet matches nothing.
    let m = applab_lab::check::Matcher {
        contains: Some("{{later}}".into()),
        ..Default::default()
    };
    assert!(!matcher::CompiledMatcher::new(&m, &env).holds(Some(&v("anything"))));
}

#[test]
fn absence_between_two_steps() {
    let fetch = |t: &mut Trace, client: &str, flow: u64| {
        t.push(
            flow,
            client,
            "origin",
            EventKind::HttpRequest {
                method: "GET".into(),
                target: "/news.html".into(),
                version: "HTTP/1.1".into(),
                host: None,
                headers: vec![],
                body_bytes: 0,
                nth_on_connection: 1,
            },
        );
    };
    // ws, then mail (excluded), then ws: the interval holds the excluded one.
    let mut t = Trace::default();
    fetch(&mut t, "ws", 1);
    fetch(&mut t, "mail", 2);
    fetch(&mut t, "ws", 3);
    let c = check(&eval(&t.events, &Probes::new(), &[]), "hit").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.seen
            .contains("without a request to the origin in between"),
        "{}",
        c.seen
    );
    // A later pair with nothing between passes.
    fetch(&mut t, "ws", 4);
    let c = check(&eval(&t.events, &Probes::new(), &[]), "hit").clone();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(
        c.evidence
            .iter()
            .map(|e| e.event.unwrap())
            .collect::<Vec<_>>(),
        [3, 4]
    );
}

#[test]
fn same_connection_and_absence_of_quit() {
    let cmd = |verb: &str| EventKind::Pop3Command {
        verb: verb.into(),
        args: vec!["1".into()],
    };
    let mut t = Trace::default();
    // DELE then QUIT on flow 1; a close of another flow does not count.
    t.push(1, "ws", "mail", cmd("DELE"));
    t.push(2, "ws", "mail", EventKind::TcpClose { reset: false });
    t.push(1, "ws", "mail", cmd("QUIT"));
    t.push(1, "ws", "mail", EventKind::TcpClose { reset: false });
    let c = check(&eval(&t.events, &Probes::new(), &[]), "dele-no-quit").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    // DELE and a close on flow 3, no QUIT: that is it.
    t.push(3, "ws", "mail", cmd("DELE"));
    t.push(3, "ws", "mail", EventKind::TcpClose { reset: false });
    let c = check(&eval(&t.events, &Probes::new(), &[]), "dele-no-quit").clone();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(c.evidence[0].flow, Some(3));
}

#[test]
fn a_client_typing_ahead_of_the_greeting_gets_the_right_replies() {
    // USER and PASS decoded before the greeting: PASS's answer is the -ERR.
    let cmd = |verb: &str| EventKind::Pop3Command {
        verb: verb.into(),
        args: vec![],
    };
    let answer = |ok: bool| EventKind::Pop3Response {
        ok,
        text: String::new(),
        lines: None,
        bytes: 0,
    };
    let mut t = Trace::default();
    t.push(1, "ws", "mail", cmd("USER"));
    t.push(1, "ws", "mail", cmd("PASS"));
    t.push(1, "ws", "mail", answer(true)); // the greeting
    t.push(1, "ws", "mail", answer(true)); // USER
    t.push(1, "ws", "mail", answer(false)); // PASS
    let ix = Index::new(&t.events);
    assert_eq!(ix.reply(0), Some(3));
    assert_eq!(ix.reply(1), Some(4));
}

#[test]
fn probes_pass_fail_pending_and_error() {
    let key = ("mail".to_string(), "mail".to_string());
    let with = |v: serde_json::Value| Probes::from([(key.clone(), ProbeOutput::Ok(v))]);
    let r = eval(&[], &Probes::new(), &[]);
    assert_eq!(check(&r, "delivered").status, Status::Pending);
    assert!(check(&r, "delivered").seen.contains("has not run yet"));

    let r = eval(
        &[],
        &Probes::from([(key.clone(), ProbeOutput::Err("exec timed out".into()))]),
        &[],
    );
    let c = check(&r, "delivered");
    assert_eq!(c.status, Status::Error);
    assert!(c.seen.contains("exec timed out"), "{}", c.seen);
    assert_eq!(r.status, Status::Error);

    let msg = |subject: &str, received: usize| serde_json::json!({ "subject": subject, "received": vec!["by x"; received] });
    // Nothing like it: pending; one with only one Received line: still not it.
    let r = eval(
        &[],
        &with(serde_json::json!({ "mailboxes": { "bob": [msg("hello", 2)] } })),
        &[],
    );
    assert_eq!(check(&r, "delivered").status, Status::Pending);
    let r = eval(
        &[],
        &with(serde_json::json!({ "mailboxes": { "bob": [msg("bokalu", 1)] } })),
        &[],
    );
    assert_eq!(check(&r, "delivered").status, Status::Pending);
    let r = eval(
        &[],
        &with(serde_json::json!({ "mailboxes": { "bob": [msg("hi bokalu", 2)] } })),
        &[],
    );
    let c = check(&r, "delivered");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(
        c.seen.contains("1 matching item of 1 at mailboxes.bob"),
        "{}",
        c.seen
    );
    assert!(c.evidence[0].event.is_none());
}

#[test]
fn a_binding_flows_from_traffic_into_a_probe() {
    let mut t = Trace::default();
    t.get(1, 1, "/shop", "x", &[])
        .answer(1, 1, 200, &[("Set-Cookie", "cart=c0ffee; Path=/")]);
    let shop = |carts: serde_json::Value| {
        Probes::from([(
            ("origin".to_string(), "shop".to_string()),
            ProbeOutput::Ok(serde_json::json!({ "carts": carts })),
        )])
    };
    let r = eval(
        &t.events,
        &shop(serde_json::json!({ "c0ffee": ["tea"], "other": [] })),
        &[],
    );
    let c = check(&r, "both");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(c.evidence.len(), 2, "the event and the probe: {c:?}");
    // The item is in another cart: not this student's session.
    let r = eval(
        &t.events,
        &shop(serde_json::json!({ "c0ffee": [], "other": ["tea"] })),
        &[],
    );
    assert_eq!(check(&r, "both").status, Status::Fail);
    // No cookie seen at all: the probe has nothing to look up.
    let r = eval(&[], &shop(serde_json::json!({ "other": ["tea"] })), &[]);
    assert_eq!(check(&r, "both").status, Status::Pending);
}

#[test]
fn answers_within_tolerance_and_the_latest_counts() {
    let sub = |v: &str, time: f64| Submission {
        task: "t".into(),
        question: "time".into(),
        value: v.into(),
        time,
    };
    // n = 4: (4 + 1) * 2 * 100 = 1000 ms, ±5.
    let r = eval(&[], &Probes::new(), &[sub("1003 ms", 1.0)]);
    let c = check(&r, "time");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    let r = eval(&[], &Probes::new(), &[sub("1003", 1.0), sub("800", 2.0)]);
    let c = check(&r, "time");
    assert_eq!(c.status, Status::Fail);
    assert!(
        !c.seen.contains("1000"),
        "the right value is never shown: {}",
        c.seen
    );
    let r = eval(&[], &Probes::new(), &[sub("a lot", 1.0)]);
    assert!(check(&r, "time").seen.contains("not a number"));
    assert_eq!(parse_number("0,97"), Some(0.97));
    assert_eq!(parse_number("-3e2"), Some(-300.0));
    assert_eq!(parse_number("x"), None);
}

#[test]
fn the_task_passes_with_every_check_and_earns_its_points() {
    let mut t = Trace::default();
    for flow in 1..=11 {
        t.get(flow, 1, "/o", "www.bokalu.lab", &[("Connection", "close")])
            .answer(flow, 1, 200, &[]);
    }
    for nth in 1..=11 {
        t.get(20, nth, "/news.html", "www.bokalu.lab", &[]);
    }
    t.answer(21, 1, 200, &[("Set-Cookie", "cart=c0ffee")]);
    t.get(22, 1, "/", "x", &[("Cookie", "cart=c0ffee")]);
    t.push(
        23,
        "ws",
        "mail",
        EventKind::Pop3Command {
            verb: "DELE".into(),
            args: vec![],
        },
    );
    t.push(23, "ws", "mail", EventKind::TcpClose { reset: true });
    let probes = Probes::from([
        (
            ("mail".to_string(), "mail".to_string()),
            ProbeOutput::Ok(
                serde_json::json!({ "mailboxes": { "bob": [{ "subject": "bokalu", "received": ["a", "b"] }] } }),
            ),
        ),
        (
            ("origin".to_string(), "shop".to_string()),
            ProbeOutput::Ok(serde_json::json!({ "carts": { "c0ffee": ["tea"] } })),
        ),
    ]);
    let answers = [Submission {
        task: "t".into(),
        question: "time".into(),
        value: "1000".into(),
        time: 1.0,
    }];
    let r = eval(&t.events, &probes, &answers);
    for c in &r.checks {
        assert_eq!(c.status, Status::Pass, "{c:?}");
    }
    assert_eq!(r.status, Status::Pass);
    assert_eq!(r.points, 2.0);
}

#[test]
fn a_pathological_trace_is_an_error_not_a_stall() {
    // Many first steps, no second: the search gives up within its budget.
    let mut t = Trace::default();
    for flow in 0..3000 {
        t.answer(flow, 1, 200, &[("Set-Cookie", "cart=x")]);
    }
    let r = eval(&t.events, &Probes::new(), &[]);
    let c = check(&r, "cookie");
    assert_eq!(c.status, Status::Error, "{c:?}");
    assert!(c.seen.contains("too many events"));
}

#[test]
fn the_tasks_an_event_type_touches() {
    let lab = lab();
    assert_eq!(tasks_touched_by(&lab, "pop3_command").len(), 1);
    assert_eq!(tasks_touched_by(&lab, "dns_query").len(), 0);
    // A check that reads `reply.status` is decided again when the response
    // comes, after the request it matched (else the last request of a
    // burst is judged without its answer, and nothing judges it again).
    let by_request: Vec<&str> = tasks_touched_by(&lab, "http_request")
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    let by_response: Vec<&str> = tasks_touched_by(&lab, "http_response")
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert!(
        by_request.iter().all(|t| by_response.contains(t)),
        "{by_request:?} {by_response:?}"
    );
    let probes = probes_of(&lab);
    assert!(probes.contains_key(&("mail".to_string(), "mail".to_string())));
    assert!(probes.contains_key(&("origin".to_string(), "shop".to_string())));
}
