//! http-basics on a real launch: a scripted model student does each step of
//! CURRICULUM.md §1 from the workstation, with the workstation's own tools
//! (`http`, `tcp`), against the origin in the student's topology, and
//! passes every check; an idle classmate passes none; a copier who does the
//! work with the model's values fails every check tied to a parameter.
//! The controller is killed mid-lab and keeps its results. Needs a Docker
//! engine; fails without one.

mod common;

use common::Server;
use std::time::Duration;

const RUN: &str = "web";

/// Run a shell script on a student's workstation; its stdout.
fn ws_of(s: &Server, who: &str, script: &str) -> String {
    let (code, out) = s.exec(RUN, who, "ws", &["sh", "-c", script]);
    assert_eq!(code, 0, "script failed:\n{script}\n---\n{out}");
    out
}

fn ws(s: &Server, script: &str) -> String {
    ws_of(s, "m1", script)
}

/// The expected response time, as the model computes it from the lecture.
fn response_time(p: &serde_json::Value) -> u64 {
    let n: u64 = p["answer_objects"].as_str().unwrap().parse().unwrap();
    (n + 1) * 2 * 100
}

/// The raw dialogue of task 2 for a site and a secret word.
fn methods_dialogue(site: &str, secret: &str) -> String {
    format!(
        "GET /index.html HTTP/1.1\nHost: {site}\n\n\
         HEAD /index.html HTTP/1.1\nHost: {site}\n\n\
         GET /search?q={secret} HTTP/1.1\nHost: {site}\n\n\
         POST /search HTTP/1.1\nHost: {site}\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 9\n\nq=by-post\n\
         PUT /uploads/notes.txt HTTP/1.1\nHost: {site}\nContent-Length: 5\n\nnotes\n\
         GET /uploads/notes.txt HTTP/1.1\nHost: {site}\n\n\
         DELETE /uploads/notes.txt HTTP/1.1\nHost: {site}\nConnection: close\n\n"
    )
}

/// Task 3's requests, each on its own connection, for a site.
fn status_requests(site: &str) -> Vec<String> {
    vec![
        format!("GET /home.index HTTP/1.1\\nHost: {site}\\nConnection: close\\n\\n"),
        format!("GET /index.html HTTP/1.1\\nHost: {site}\\nConnection: close\\n\\n"),
        "GET /index.html\\n\\n".to_string(),
        format!("GET /nothing HTTP/1.1\\nHost: {site}\\nConnection: close\\n\\n"),
        format!("GET / HTTP/2.0\\nHost: {site}\\n\\n"),
    ]
}

/// Status codes of every response in a raw dialogue's output, in order.
/// (A body need not end in a newline, so look anywhere, not per line.)
fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn model_student_passes_every_check_of_http_basics() {
    let mut s = Server::start("10.225.0.0/20");
    s.launch(RUN, "http-basics", &["m1", "i1", "c1"]);
    let p = s.json(&["params", "m1", "--run", RUN]);
    let site = format!("www.{}.lab", p["site"].as_str().unwrap());
    let secret = p["secret_word"].as_str().unwrap().to_string();
    let pc = s.json(&["params", "c1", "--run", RUN]);

    // Step 1: the base page and its ten objects, non-persistent then
    // persistent; the tool counts the TCP connections each way used.
    let page = |extra: &str| -> serde_json::Value {
        let out = ws(
            &s,
            &format!("http --page --json {extra} http://{site}/index.html"),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let separate = page("--no-keepalive");
    assert_eq!(separate["objects"], 10, "{separate}");
    assert_eq!(separate["connections"], 11, "{separate}");
    let one = page("");
    assert_eq!(one["connections"], 1, "{one}");
    assert!(one["fetches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == 200));
    // The page is the student's own: it carries their secret word.
    let body = ws(&s, &format!("http -q http://{site}/"));
    assert!(body.contains(&secret), "{body}");
    // The generated page: ten objects of 100 KB each.
    let gen = ws(&s, &format!("http --page --json http://{site}/page.html"));
    let gen: serde_json::Value = serde_json::from_str(&gen).unwrap();
    assert_eq!(gen["objects"], 10);
    assert!(gen["fetches"].as_array().unwrap()[1..]
        .iter()
        .all(|f| f["bytes"] == 102400));
    let r = s.wait_status(
        RUN,
        "m1",
        "connections",
        "persistent",
        "pass",
        Duration::from_secs(10),
    );
    assert_eq!(
        r.status("m1", "connections", "non-persistent"),
        "pass",
        "{}",
        r.explain("m1")
    );
    let seen = r.check("m1", "connections", "non-persistent")["seen"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        seen.contains("over 11 TCP connections") || seen.contains("over 22 TCP connections"),
        "{seen}"
    );
    // A wrong answer, then the right one: the latest counts.
    let t = s.answer(RUN, "m1", "connections", "response-time", "1");
    assert_eq!(t["checks"][2]["status"], "fail", "{t}");
    let t = s.answer(
        RUN,
        "m1",
        "connections",
        "response-time",
        &format!("{} ms", response_time(&p)),
    );
    assert_eq!(t["checks"][2]["status"], "pass", "{t}");
    assert_eq!(t["status"], "pass", "{t}");

    // The controller dies (SIGKILL) mid-lab: its results survive it.
    let before = s.check(RUN);
    s.kill();
    s.spawn();
    let after = s.check(RUN);
    for c in ["non-persistent", "persistent", "response-time"] {
        assert_eq!(
            after.status("m1", "connections", c),
            "pass",
            "{}",
            after.explain("m1")
        );
        assert_eq!(
            after.check("m1", "connections", c)["first_passed_at"],
            before.check("m1", "connections", c)["first_passed_at"]
        );
    }

    // Step 2: requests typed by hand in the raw TCP console (lines from a
    // file, as a student pastes them; the tool adds the CR of each CRLF).
    // A body typed as a line is followed by CRLF, which Content-Length does
    // not count; the server skips it as an empty line before the next request.
    let out = ws(
        &s,
        &format!(
            "printf '%s' '{}' | tcp origin 80",
            methods_dialogue(&site, &secret)
        ),
    );
    assert_eq!(statuses(&out), [200, 200, 200, 200, 201, 200, 204], "{out}");
    assert!(
        out.contains(&format!("Results for &quot;{secret}&quot;")),
        "{out}"
    );
    assert!(out.contains("Results for &quot;by-post&quot;"), "{out}");

    // Step 3: 200, 301 (then its Location), 400, 404, 505.
    let probe = |who: &str, req: &str| ws_of(&s, who, &format!("printf '{req}' | tcp origin 80"));
    let reqs = status_requests(&site);
    let moved = probe("m1", &reqs[0]);
    assert!(
        moved.starts_with("HTTP/1.1 301") && moved.contains("Location: /index.html"),
        "{moved}"
    );
    assert!(probe("m1", &reqs[1]).starts_with("HTTP/1.1 200"));
    assert!(probe("m1", &reqs[2]).starts_with("HTTP/1.1 400"));
    assert!(probe("m1", &reqs[3]).starts_with("HTTP/1.1 404"));
    assert!(probe("m1", &reqs[4]).starts_with("HTTP/1.1 505"));

    // The copier does the same work with the model's values: the model's
    // site in Host (their own server answers it all the same), the model's
    // secret word, the model's answer.
    ws_of(
        &s,
        "c1",
        &format!(
            "printf '%s' '{}' | tcp origin 80",
            methods_dialogue(&site, &secret)
        ),
    );
    for r in &reqs {
        probe("c1", r);
    }
    let _ = s.exec(
        RUN,
        "c1",
        "ws",
        &[
            "sh",
            "-c",
            &format!("http --page --no-keepalive http://{site}/index.html"),
        ],
    );
    s.answer(
        RUN,
        "c1",
        "connections",
        "response-time",
        &response_time(&p).to_string(),
    );

    let r = s.wait_status(
        RUN,
        "m1",
        "status-codes",
        "moved-301",
        "pass",
        Duration::from_secs(10),
    );
    r.assert_all("m1", "pass");
    r.assert_all("i1", "pending");
    // Two students' values can coincide only in a small integer range.
    let same_answer = response_time(&p) == response_time(&pc);
    r.assert_exactly(
        "c1",
        &[
            ("connections", "non-persistent", "pending"),
            ("connections", "persistent", "pending"),
            (
                "connections",
                "response-time",
                if same_answer { "pass" } else { "fail" },
            ),
            ("methods", "get", "pending"),
            ("methods", "head", "pending"),
            ("methods", "form-get", "pending"),
            ("methods", "form-post", "pending"),
            ("methods", "put-delete", "pending"),
            ("status-codes", "ok-200", "pending"),
            ("status-codes", "moved-301", "pending"),
            // Not tied to a parameter: a request that does not parse has no Host.
            ("status-codes", "bad-400", "pass"),
            ("status-codes", "missing-404", "pending"),
            ("status-codes", "version-505", "pass"),
        ],
    );
    // Each result was stored within a second of the event that decided it.
    let lat = s.pass_latencies(RUN, "m1");
    assert!(lat.len() >= 10, "{lat:?}");
    let worst = lat.iter().map(|(_, l)| *l).fold(0.0, f64::max);
    eprintln!(
        "event to stored result: worst {worst:.3}s over {} checks: {lat:?}",
        lat.len()
    );
    assert!(worst < 1.0, "{lat:?}");

    // The grades: one row per student, tasks in the lab's order.
    let csv = s.ok(&["grades", "--run", RUN]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0], "id,name,email,connections,methods,status-codes,total,percent",
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m1,Student m1,m1@uni.example,2,1,1,4,100.0")),
        "{csv}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("i1,Student i1,i1@uni.example,0,0,0,0,0.0")),
        "{csv}"
    );
    let canvas = s.ok(&["grades", "--run", RUN, "--format", "canvas"]);
    assert!(
        canvas
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("    Points Possible,,,,,2,1,1"),
        "{canvas}"
    );

    // A reset gives the student a fresh origin (the upload area is empty)
    // and keeps their results: it repairs a topology, it does not regrade.
    ws(
        &s,
        &format!("http -q -X PUT -d kept http://{site}/uploads/x.txt"),
    );
    s.ok(&["reset", "m1", "--run", RUN]);
    let (code, out) = s.exec(
        RUN,
        "m1",
        "ws",
        &["sh", "-c", &format!("http -q http://{site}/uploads/x.txt")],
    );
    assert_eq!(code, 1, "after a reset the upload is gone: {out}");
    s.check(RUN).assert_all("m1", "pass");
}
