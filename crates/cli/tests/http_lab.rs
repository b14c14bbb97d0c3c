//! http-basics on a real launch: a scripted model student does each step of
//! CURRICULUM.md §1 from the workstation, with the workstation's own tools
//! (`http`, `tcp`), against the origin in the student's topology. Needs a
//! Docker engine; fails without one.

mod common;

use common::Server;

/// Run a shell script on the student's workstation; its stdout.
fn ws(s: &Server, script: &str) -> String {
    let (code, out) = s.exec("web", "m1", "ws", &["sh", "-c", script]);
    assert_eq!(code, 0, "script failed:\n{script}\n---\n{out}");
    out
}

/// Status codes of every response in a raw dialogue's output, in order.
/// (A body need not end in a newline, so look anywhere, not per line.)
fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn model_student_does_http_basics_with_the_workstation_tools() {
    let mut s = Server::start("10.225.0.0/20");
    s.launch("web", "http-basics", &["m1"]);
    let p = s.json(&["params", "m1", "--run", "web"]);
    let site = format!("www.{}.lab", p["site"].as_str().unwrap());
    let secret = p["secret_word"].as_str().unwrap().to_string();

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

    // Step 2: requests typed by hand in the raw TCP console (lines from a
    // file, as a student pastes them; the tool adds the CR of each CRLF).
    // A body typed as a line is followed by CRLF, which Content-Length does
    // not count; the server skips it as an empty line before the next request.
    let dialogue = format!(
        "GET /index.html HTTP/1.1\nHost: {site}\n\n\
         HEAD /index.html HTTP/1.1\nHost: {site}\n\n\
         GET /search?q={secret} HTTP/1.1\nHost: {site}\n\n\
         POST /search HTTP/1.1\nHost: {site}\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 9\n\nq=by-post\n\
         PUT /uploads/notes.txt HTTP/1.1\nHost: {site}\nContent-Length: 5\n\nnotes\n\
         GET /uploads/notes.txt HTTP/1.1\nHost: {site}\n\n\
         DELETE /uploads/notes.txt HTTP/1.1\nHost: {site}\nConnection: close\n\n"
    );
    let out = ws(
        &s,
        &format!(
            "printf '%s' '{}' | tcp origin 80",
            dialogue.replace('\'', "")
        ),
    );
    assert_eq!(statuses(&out), [200, 200, 200, 200, 201, 200, 204], "{out}");
    assert!(
        out.contains(&format!("Results for &quot;{secret}&quot;")),
        "{out}"
    );
    assert!(out.contains("Results for &quot;by-post&quot;"), "{out}");

    // Step 3: 200, 301 (and its Location), 400, 404, 505.
    let probe = |req: &str| ws(&s, &format!("printf '{req}' | tcp origin 80"));
    let moved = probe("GET /home.index HTTP/1.1\\nHost: x\\nConnection: close\\n\\n");
    assert!(
        moved.starts_with("HTTP/1.1 301") && moved.contains("Location: /index.html"),
        "{moved}"
    );
    assert!(probe("GET /index.html\\n\\n").starts_with("HTTP/1.1 400"));
    assert!(
        probe("GET /nothing HTTP/1.1\\nHost: x\\nConnection: close\\n\\n")
            .starts_with("HTTP/1.1 404")
    );
    assert!(probe("GET / HTTP/2.0\\nHost: x\\n\\n").starts_with("HTTP/1.1 505"));

    // A reset gives the student a fresh origin: the upload area is empty.
    ws(
        &s,
        &format!("http -q -X PUT -d kept http://{site}/uploads/x.txt"),
    );
    s.ok(&["reset", "m1", "--run", "web"]);
    let (code, out) = s.exec(
        "web",
        "m1",
        "ws",
        &["sh", "-c", &format!("http -q http://{site}/uploads/x.txt")],
    );
    assert_eq!(code, 1, "after a reset the upload is gone: {out}");
}
