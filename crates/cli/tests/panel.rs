//! The student's panel on a real launch: who may see what (the
//! authorization matrix), CSRF, the login rate limit, security headers and
//! escaping, then the whole student journey in headless Chromium (log in,
//! a task, the console, live packets, a ladder, the pcap, a check turning
//! to pass, log out), with screenshots under target/panel-screenshots/.
//!
//! One launch serves every part; the browser needs Debian's chromium and
//! chromium-driver (scripts/setup installs them) and fails loudly without.

mod common;

use common::web::*;
use common::*;
use reqwest::header::{HeaderMap, COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

const RUN: &str = "panel";

fn password_of(launch: &Value, id: &str) -> String {
    launch["added"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every student page and stream, as a request with no student in it: the
/// session decides whose they are.
const PAGES: &[&str] = &[
    "/dashboard",
    "/tasks/connections",
    "/topology",
    "/topology.svg",
    "/console",
    "/packets",
    "/packets?view=frames",
    "/runs",
];

#[test]
fn the_student_panel_end_to_end() {
    let mut s = Server::start("10.231.0.0/20");
    let launch = s.launch(RUN, "http-basics", &["pa", "pb", "pc"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(security(&s, &launch));
    rt.block_on(browser(&s, &launch));
}

async fn security(s: &Server, launch: &Value) {
    let http = Http::new(s.port);
    let (pa, pb) = (password_of(launch, "pa"), password_of(launch, "pb"));

    // B's traffic, with hostile text in it, and a marker A must never see.
    let marker = "bsecret7731";
    s.sh(
        RUN,
        "pb",
        "ws",
        &format!(
            "http -q 'http://origin/{marker}?x=<script>alert(1)</script>' >/dev/null 2>&1; printf 'GET /{marker}/<img/src=x/onerror=alert(2)> HTTP/1.1\\r\\nHost: origin\\r\\nX-Evil: <b>{marker}</b>\\r\\nConnection: close\\r\\n\\r\\n' | tcp origin 80 >/dev/null 2>&1; true"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let b_events = loop {
        let ev = s.events(RUN, "pb", "HTTP");
        if ev.iter().filter(|e| e["type"] == "http_request").count() >= 2 {
            break ev;
        }
        assert!(Instant::now() < deadline, "B's traffic was not captured");
        std::thread::sleep(Duration::from_millis(300));
    };

    // Log in: A and B; a wrong password and an unknown id get the same answer.
    let a = http.login("pa", &pa).await.expect("A logs in");
    let b = http.login("pb", &pb).await.expect("B logs in");
    let wrong = http.login("pa", "not-the-password").await.unwrap_err();
    let unknown = http.login("nobody", "not-the-password").await.unwrap_err();
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert!(wrong.body.contains("Wrong student id or password."));
    assert!(unknown.body.contains("Wrong student id or password."));

    // Every page: A's own, with the security headers, no inline script.
    for p in PAGES {
        let r = http.page(p, &a).await;
        assert!(
            r.status == StatusCode::OK,
            "{p} for A: {} {}",
            r.status,
            r.body
        );
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(
            !r.body.contains("<script>") && !r.body.contains("<img"),
            "{p}: inline script: {}",
            r.body
        );
        assert!(!r.body.contains(marker), "{p} for A shows B's traffic");
    }

    // B's own packet pages show the hostile text escaped, never as markup.
    let bp = http.page("/packets?protocol=HTTP", &b).await;
    assert!(bp.body.contains(marker), "B sees their own traffic");
    let escaped =
        |t: &str| bp.body.contains(&format!("&lt;{t}")) || bp.body.contains(&format!("&#60;{t}"));
    assert!(escaped("script") && escaped("img/src"), "{}", bp.body);
    assert!(!bp.body.contains("<img/src=x") && !bp.body.contains("<script>alert"));

    // The matrix: A's session asking for B's things finds nothing of B's.
    let a_status = s.status(RUN);
    let addr_of = |id: &str| -> String {
        a_status["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "ws")
            .unwrap()["addresses"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a_ws, b_ws) = (addr_of("pa"), addr_of("pb"));
    assert_ne!(a_ws, b_ws);
    let mut b_things: Vec<String> = Vec::new();
    for e in &b_events {
        let (net, flow, frame) = (
            e["network"].as_str().unwrap(),
            e["flow"].as_u64().unwrap(),
            e["frame"].as_u64().unwrap(),
        );
        b_things.push(format!("/packets/ladder/{net}/{flow}"));
        b_things.push(format!("/packets/ladder/{net}/{flow}/svg"));
        b_things.push(format!("/packets/frames/{net}/{frame}"));
        b_things.push(format!("/packets/pcap/{net}"));
    }
    for p in PAGES {
        for q in ["student=pb", "run=other&student=pb"] {
            let sep = if p.contains('?') { '&' } else { '?' };
            b_things.push(format!("{p}{sep}{q}"));
        }
    }
    b_things.push("/packets/stream?student=pb".into());
    b_things.push("/results/stream?student=pb".into());
    for p in &b_things {
        let is_stream = p.contains("/stream");
        let r = if is_stream {
            // A stream for a second: it must carry nothing of B's.
            let resp = http
                .client
                .get(format!("{}{p}", http.base))
                .header(COOKIE, &a)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let mut body = String::new();
            let mut resp = resp;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(Some(c)) = resp.chunk().await {
                    body.push_str(&String::from_utf8_lossy(&c));
                }
            })
            .await;
            Answer {
                status,
                headers: HeaderMap::new(),
                body,
            }
        } else {
            http.page(p, &a).await
        };
        let denied = matches!(r.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN);
        assert!(
            denied
                || (r.status.is_success() && !r.body.contains(marker) && !r.body.contains(&b_ws)),
            "A asking for {p}: {} and B's things in it: {}",
            r.status,
            tail(&r.body, 2000)
        );
    }
    // The instructor API never opens to a student's session.
    for p in [
        "/api/runs",
        "/api/status",
        "/api/results?student=pb",
        "/api/capture/events?student=pb",
        "/api/capture/pcap?student=pb&network=lan",
        "/api/capture/stream?student=pb",
        "/api/grades",
        "/api/params?student=pb",
        "/api/capture/frames?student=pb",
        "/api/results/matrix",
        "/api/results/history?student=pb",
        "/api/results/stream?student=pb",
    ] {
        let r = http.get(p, Some(&a), "*/*").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p} with A's session");
    }
    for (p, body) in [
        ("/api/launch", r#"{"run":"x","lab_tar":"","roster":[]}"#),
        ("/api/reset", r#"{"student":"pb"}"#),
        (
            "/api/shape",
            r#"{"node":"origin","network":"lan","delay_us":0}"#,
        ),
        ("/api/teardown", r#"{"student":"pb"}"#),
        ("/api/credentials", r#"{"student":"pb","reissue":true}"#),
        ("/api/check", r#"{"student":"pb"}"#),
        ("/api/exec", r#"{"student":"pb","node":"ws","cmd":["id"]}"#),
        (
            "/api/node",
            r#"{"student":"pb","node":"origin","running":false}"#,
        ),
        (
            "/api/answer",
            r#"{"student":"pb","task":"connections","question":"response-time","value":"1"}"#,
        ),
    ] {
        let r = http
            .client
            .post(format!("{}{p}", http.base))
            .header(COOKIE, &a)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{p} with A's session");
    }
    // A's console is A's workstation, whatever the request says.
    let hosts = console_run(s, &a, "?student=pb", "cat /etc/hosts").await;
    assert!(hosts.contains(&a_ws), "A's console: {hosts}");
    assert!(
        !hosts.contains(&b_ws),
        "A's console shows B's workstation: {hosts}"
    );
    // A run A is not in, and a node the lab does not let students stop.
    let dash = http.page("/dashboard", &a).await.body;
    let csrf = csrf_of(&dash);
    let r = http
        .post("/runs", Some(&a), &[("csrf", &csrf), ("run", "other")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = http
        .post(
            "/nodes/origin",
            Some(&a),
            &[("csrf", &csrf), ("action", "stop")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // No session: pages go to the login form, data and streams get 401.
    for p in PAGES {
        let r = http.get(p, None, "text/html").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{p} with no session");
        assert!(r.headers[LOCATION].to_str().unwrap().starts_with("/login"));
    }
    for p in [
        "/packets/stream",
        "/results/stream",
        "/console/ws",
        "/topology.svg",
        "/packets/pcap/lan",
    ] {
        let r = http.get(p, None, "text/event-stream").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{p} with no session");
    }
    for p in [
        "/tasks/connections/check",
        "/tasks/connections/answer",
        "/nodes/origin",
        "/logout",
    ] {
        let r = http.post(p, None, &[("csrf", "x")]).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "POST {p} with no session"
        );
    }

    // CSRF: a state change without the session's token is refused, and
    // changes nothing; with it, it goes through.
    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", csrf_of(&http.page("/dashboard", &b).await.body))],
    ] {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut with = f.clone();
        with.extend([("question", "response-time"), ("value", "999")]);
        let r = http
            .post("/tasks/connections/answer", Some(&a), &with)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "answer with {f:?}");
        assert!(r.body.contains("CSRF"));
        let r = http.post("/tasks/connections/check", Some(&a), &f).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = http.post("/logout", Some(&a), &f).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let hist = s.json(&["history", "pa", "--run", RUN]);
    assert!(
        hist["submissions"].as_array().unwrap().is_empty(),
        "a refused form stored an answer: {hist}"
    );
    let r = http
        .post(
            "/tasks/connections/answer",
            Some(&a),
            &[
                ("csrf", &csrf),
                ("question", "response-time"),
                ("value", "999"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let hist = s.json(&["history", "pa", "--run", RUN]);
    assert_eq!(hist["submissions"].as_array().unwrap().len(), 1, "{hist}");
    // A login form from elsewhere (no login cookie) is refused.
    let r = http
        .post(
            "/login",
            None,
            &[("id", "pa"), ("password", &pa), ("token", "x")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Rate limit: after 5 wrong passwords the account waits, even with
    // the right one; another account from the same address still logs in.
    let pc = password_of(launch, "pc");
    for i in 0..5 {
        let r = http.login("pc", &format!("wrong{i}")).await.unwrap_err();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let r = http.login("pc", &pc).await.unwrap_err();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    http.login("pb", &pb)
        .await
        .expect("another account is not locked");

    // Logout ends the session on the server: the old cookie opens nothing.
    let r = http
        .post(
            "/logout",
            Some(&b),
            &[("csrf", &csrf_of(&http.page("/dashboard", &b).await.body))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = http.page("/dashboard", &b).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "B's old session still works"
    );
}

/// Open the console socket with a session, type a command, collect output.
async fn console_run(s: &Server, cookie: &str, query: &str, cmd: &str) -> String {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://127.0.0.1:{}/console/ws{query}", s.port);
    let req = tokio_tungstenite_request(&url, cookie);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("console socket");
    let mark = "end-of-output-42";
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        format!("0{cmd}; echo {mark}-$((40+2))\r").into(),
    ))
    .await
    .unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Binary(b) = m {
                out.push_str(&String::from_utf8_lossy(&b[1..]));
                if out.contains(&format!("{mark}-42")) {
                    break;
                }
            }
        }
    })
    .await;
    let _ = ws.close(None).await;
    out
}

/// The journey in a real browser.
/// After a click that navigates: the browser reaches `path` (a click
/// returns before the next page has loaded, on a busy machine visibly so).
async fn arrived_at(c: &fantoccini::Client, path: &str) {
    let t = std::time::Instant::now();
    loop {
        let now = c.current_url().await.unwrap();
        if now.path() == path {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still at {now} after 10 s, expected {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(s: &Server, launch: &Value) {
    use fantoccini::Locator;
    let shots = repo().join("target/panel-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let (_driver, c) = browser_session().await;
    let base = format!("http://127.0.0.1:{}", s.port);
    let shot = |name: &'static str| {
        let (c, shots) = (c.clone(), shots.clone());
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(shots.join(format!("{name}.png")), png).unwrap();
        }
    };
    let wait_for = |js: String, what: &'static str, secs: u64| {
        let c = c.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let v = c.execute(&js, vec![]).await.unwrap();
                if v.as_bool() == Some(true) {
                    return;
                }
                if Instant::now() > deadline {
                    let main = c
                        .execute("var t = window.applabTerm; var s = ''; if (t) { var b = t._core.buffer; for (var i = 0; i < b.lines.length; i++) s += b.translateBufferLineToString(i, true) + '\\n'; } return document.querySelector('main').innerText + '\\n--- terminal ---\\n' + s.slice(-3000);", vec![])
                        .await
                        .unwrap_or_default();
                    panic!("waited {secs} s for {what}; the page says: {main}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // Log in.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    shot("01-login").await;
    let pa = password_of(launch, "pa");
    c.find(Locator::Id("id"))
        .await
        .unwrap()
        .send_keys("pa")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(&pa)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrived_at(&c, "/dashboard").await;
    let body = c.source().await.unwrap();
    assert!(body.contains("HTTP requests, responses and connections"));
    shot("02-dashboard").await;

    // A task, with its checks pending.
    c.find(Locator::LinkText(
        "One connection per object, or one for all",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    arrived_at(&c, "/tasks/connections").await;
    let li = c
        .find(Locator::Css("#check-connections-non-persistent .status"))
        .await
        .unwrap();
    assert_eq!(li.text().await.unwrap(), "… pending");
    shot("03-task").await;

    // The topology picture.
    c.goto(&format!("{base}/topology")).await.unwrap();
    let svg = c.find(Locator::Css("svg.topology")).await.unwrap();
    assert!(svg.text().await.unwrap().contains("origin"));
    shot("04-topology").await;

    // The console: type a command, read its output in the terminal.
    c.goto(&format!("{base}/console")).await.unwrap();
    wait_for(
        "return !!window.applabTerm && document.getElementById('console-status').textContent.indexOf('onnected') >= 0".into(),
        "the console to connect",
        20,
    )
    .await;
    let screen_js = "var b = window.applabTerm._core.buffer, out = []; for (var i = 0; i < b.lines.length; i++) out.push(b.translateBufferLineToString(i, true)); return out.join('\\n');";
    let textarea = c
        .find(Locator::Css(".xterm-helper-textarea"))
        .await
        .unwrap();
    textarea
        .send_keys("http --page http://origin/index.html\u{E007}")
        .await
        .unwrap();
    wait_for(
        screen_js.replace(
            "return out.join('\\n');",
            "return out.join('\\n').indexOf('base page + 10 objects') >= 0;",
        ),
        "the http tool's summary in the terminal",
        30,
    )
    .await;
    let screen = c.execute(screen_js, vec![]).await.unwrap();
    let screen = screen.as_str().unwrap().to_string();
    assert!(screen.contains("/img/object-10.jpg"), "{screen}");
    shot("05-console").await;
    // Line editing and a resize reach the TTY.
    textarea
        .send_keys("echo abcX\u{E003}d-$((6*7))\u{E007}")
        .await
        .unwrap();
    wait_for(
        screen_js.replace(
            "return out.join('\\n');",
            "return out.join('\\n').indexOf('abcd-42') >= 0;",
        ),
        "line editing (backspace) in the shell",
        10,
    )
    .await;
    c.set_window_size(900, 700).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cols = c
        .execute("return window.applabTerm.cols", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    textarea.send_keys("stty size\u{E007}").await.unwrap();
    wait_for(
        screen_js.replace(
            "return out.join('\\n');",
            &format!("return out.join('\\n').indexOf(' {cols}\\n') >= 0 || out.join('\\n').indexOf(' {cols}') >= 0;"),
        ),
        "the new width in stty size",
        10,
    )
    .await;
    c.set_window_size(1280, 1000).await.unwrap();
    // vi works in the terminal: insert, escape, write and quit.
    textarea.send_keys("vi /tmp/note\u{E007}").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    textarea.send_keys("ihello from vi\u{E00C}").await.unwrap();
    // vi reads an Escape followed at once by more keys as one escape
    // sequence (a function key), as every vi does: a pause, then :wq.
    tokio::time::sleep(Duration::from_millis(400)).await;
    textarea.send_keys(":wq\u{E007}").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    textarea
        .send_keys("cat /tmp/note | tr a-z A-Z\u{E007}")
        .await
        .unwrap();
    wait_for(
        screen_js.replace(
            "return out.join('\\n');",
            "return out.join('\\n').indexOf('HELLO FROM VI') >= 0;",
        ),
        "the file vi wrote",
        10,
    )
    .await;
    // A large output is paced to the browser: the tab keeps answering
    // while it draws, and the last line arrives.
    textarea
        .send_keys("awk 'BEGIN { for (i = 1; i <= 200000; i++) print \"line \" i }'; echo done-$((100+23))\u{E007}")
        .await
        .unwrap();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let done = c
            .execute(
                &screen_js.replace(
                    "return out.join('\\n');",
                    "return out.join('\\n').indexOf('done-123') >= 0;",
                ),
                vec![],
            )
            .await
            .unwrap();
        slowest = slowest.max(t.elapsed());
        if done.as_bool() == Some(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "200,000 lines did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        slowest < Duration::from_secs(2),
        "the tab froze for {slowest:?} while drawing"
    );
    eprintln!(
        "200,000 lines drawn in {:?}; the page answered within {slowest:?} throughout",
        started.elapsed()
    );

    // Packets: new ones appear without a reload.
    c.goto(&format!("{base}/packets?protocol=HTTP"))
        .await
        .unwrap();
    wait_for(
        "return document.getElementById('live-state').textContent.indexOf('Live') === 0".into(),
        "the live packet stream",
        10,
    )
    .await;
    let before = c
        .execute(
            "return document.querySelectorAll('#packet-table tbody tr').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let p = s.json(&["params", "pa", "--run", RUN]);
    let site = format!("www.{}.lab", p["site"].as_str().unwrap());
    s.sh(
        RUN,
        "pa",
        "ws",
        &format!("http --page --no-keepalive http://{site}/index.html >/dev/null"),
    );
    wait_for(
        format!("return document.querySelectorAll('#packet-table tbody tr.new').length >= 22 && document.querySelectorAll('#packet-table tbody tr').length > {before}"),
        "new packets in the list",
        15,
    )
    .await;
    shot("06-packets").await;

    // The connection's ladder.
    let link = c
        .find(Locator::Css(
            "#packet-table tbody tr.new a[href*='/packets/ladder/']",
        ))
        .await
        .unwrap();
    link.click().await.unwrap();
    let svg = c.find(Locator::Css("svg.ladder")).await.unwrap();
    let text = svg.text().await.unwrap();
    assert!(text.contains("GET /") && text.contains("200 OK"), "{text}");
    shot("07-ladder").await;

    // The pcap, fetched with the browser's own session, read by tshark.
    let cookie = c.get_named_cookie("applab_session").await.unwrap();
    let pcap = reqwest::Client::new()
        .get(format!("{base}/packets/pcap/lan"))
        .header(COOKIE, format!("applab_session={}", cookie.value()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = s.data.path().join("panel.pcap");
    std::fs::write(&file, &pcap).unwrap();
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.host",
        ])
        .output()
        .expect("tshark");
    let hosts = String::from_utf8_lossy(&out.stdout);
    assert!(
        hosts.contains(&site),
        "tshark read no request to {site}: {hosts}"
    );

    // The check turns to pass on the task page, without a reload.
    c.goto(&format!("{base}/tasks/connections")).await.unwrap();
    c.execute("window.__stamp = 1; return true;", vec![])
        .await
        .unwrap();
    s.sh(
        RUN,
        "pa",
        "ws",
        &format!("http --page http://{site}/index.html >/dev/null"),
    );
    wait_for(
        "return window.__stamp === 1 && document.querySelector('#check-connections-persistent .status').textContent.indexOf('pass') >= 0".into(),
        "the persistent-connection check to pass live",
        20,
    )
    .await;
    c.refresh().await.unwrap();
    let st = c
        .find(Locator::Css("#check-connections-non-persistent .status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(st, "✓ pass");
    c.find(Locator::Css(
        "#check-connections-non-persistent details summary",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    shot("08-task-passed").await;

    // Log out: the pages close.
    c.find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click returns before the POST's redirect lands.
    wait_for(
        "return location.pathname === '/login'".into(),
        "the login page after logging out",
        10,
    )
    .await;
    c.goto(&format!("{base}/packets")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    shot("09-logged-out").await;
    c.close().await.unwrap();
}
