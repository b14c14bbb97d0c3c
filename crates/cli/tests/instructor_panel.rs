//! The instructor's panel on a real launch, in headless Chromium: an
//! instructor logs in, is shown a bad roster's error at its line (nothing
//! launched), launches a run from a lab and a roster upload, watches a
//! model student's cell turn to pass on the grid without a reload, drills
//! into that student, watches their console read-only while the student
//! types in a second browser (and cannot type into it), resets the student
//! and sees the topology come back, downloads grades, looks at the
//! overview, and tears the run down. Between the two browser halves, the
//! role matrix: anonymous, student, assistant and instructor × every staff
//! route. Screenshots go to target/panel-screenshots/instructor-*.png.

mod common;

use common::web::*;
use common::*;
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

const RUN: &str = "ipanel";

/// What each staff route does, as the issue sets the roles: the
/// instructor may everything, an assistant may look, reset and stop/start.
/// A form's fields.
type Form = Vec<(&'static str, &'static str)>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Needs {
    View,
    Reset,
    Node,
    Shape,
    Reissue,
    Launch,
    Teardown,
    Export,
}

fn assistant_may(n: Needs) -> bool {
    matches!(n, Needs::View | Needs::Reset | Needs::Node)
}

#[test]
fn the_instructor_panel_end_to_end() {
    let mut s = Server::start("10.233.0.0/20");
    // Launched through the browser below; torn down whatever happens.
    s.runs.push(RUN.into());
    // The first serve makes an instructor account and says so, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("instructor login at") {
        assert!(
            Instant::now() < deadline,
            "no first instructor: {}",
            tail(&s.log(), 2000)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let teach = s.json(&["instructor", "add", "teach"]);
    assert_eq!(teach["role"], "instructor");
    let ta = s.json(&["instructor", "add", "ta", "--assistant"]);
    assert_eq!(ta["role"], "assistant");
    let list = s.ok(&["instructor", "list"]);
    assert!(
        list.contains("ta\tassistant") && list.contains("teach\tinstructor"),
        "{list}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pw = |v: &Value| v["password"].as_str().unwrap().to_string();
        let (_driver, c) = browser_session().await;
        let (student_pw, launched_in) = launch_in_browser(&s, &c, &pw(&teach)).await;
        eprintln!("launched from the panel in {launched_in:?}");
        matrix(&s, &pw(&teach), &pw(&ta), &student_pw).await;
        class_in_browser(&s, &c, &student_pw).await;
    });
}

fn shots() -> std::path::PathBuf {
    let d = repo().join("target/panel-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("instructor-{name}.png")), png).unwrap();
}

async fn wait_js(c: &fantoccini::Client, js: &str, what: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if c.execute(js, vec![]).await.unwrap().as_bool() == Some(true) {
            return;
        }
        if Instant::now() > deadline {
            let text = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("waited {secs} s for {what}; the page says: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &fantoccini::Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Click a submit button and wait for the next page to load (a click
/// returns before a form's answer has arrived).
async fn submit(c: &fantoccini::Client, css: &str) {
    c.execute("window.__before_submit = true; return true", vec![])
        .await
        .unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        c,
        "return window.__before_submit !== true && document.readyState === 'complete'",
        "the form's answer",
        120,
    )
    .await;
}

async fn log_in(c: &fantoccini::Client, base: &str, path: &str, id: &str, password: &str) {
    c.goto(&format!("{base}{path}")).await.unwrap();
    fill(c, "id", id).await;
    fill(c, "password", password).await;
    submit(c, "form button[type=submit]").await;
}

/// The instructor launches a run: first a roster with an error (shown at
/// its line, nothing started), then the good one. The sheet's password of
/// student ia, and how long the launch request took.
async fn launch_in_browser(
    s: &Server,
    c: &fantoccini::Client,
    password: &str,
) -> (String, Duration) {
    let base = format!("http://127.0.0.1:{}", s.port);
    c.goto(&format!("{base}/staff/runs")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/staff/login"));
    shot(c, "01-login").await;
    log_in(c, &base, "/staff/login", "teach", password).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/staff/runs",
        "{}",
        c.source().await.unwrap()
    );
    let dir = s.data.path();
    let bad = dir.join("roster-bad.csv");
    std::fs::write(
        &bad,
        "id,name,email\nia,Ida A,ia@example.edu\nbad id!,Bad,b@example.edu\n",
    )
    .unwrap();
    let good = dir.join("roster.csv");
    std::fs::write(
        &good,
        "id,name,email\nia,Ida A,ia@example.edu\nib,Ivo B,ib@example.edu\n",
    )
    .unwrap();
    c.find(Locator::Css("#lab option[value='http-basics']"))
        .await
        .expect("http-basics offered from the labs folder")
        .click()
        .await
        .unwrap();
    fill(c, "roster", bad.to_str().unwrap()).await;
    fill(c, "run", RUN).await;
    submit(c, "#launch button[type=submit]").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Nothing was launched"), "{page}");
    assert!(
        page.contains("roster-bad.csv:3:"),
        "the error at its line: {page}"
    );
    assert_ne!(
        s.cmd(&["status", "--run", RUN]).status.code(),
        Some(0),
        "a roster with an error launched nothing"
    );
    shot(c, "02-launch-error").await;
    // The form keeps the run name and the lab; the good roster now.
    c.find(Locator::Id("roster"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    fill(c, "roster", good.to_str().unwrap()).await;
    let started = Instant::now();
    submit(c, "#launch button[type=submit]").await;
    let took = started.elapsed();
    let page = c.source().await.unwrap();
    assert!(
        page.contains(&format!("Run {RUN} launched: 2 students")),
        "{page}"
    );
    let pw = c
        .find(Locator::Css("#cred-ia .cpw"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pw.len(), 12, "a one-time password on the sheet: {pw}");
    assert!(page.contains(&format!("http://127.0.0.1:{}/", s.port)) || page.contains("http://"));
    shot(c, "03-credentials-sheet").await;
    (pw, took)
}

/// Every staff route for every kind of person.
async fn matrix(s: &Server, teach: &str, ta: &str, student: &str) {
    let http = Http::new(s.port);
    let instructor = http
        .staff_login("teach", teach)
        .await
        .expect("instructor logs in");
    let assistant = http.staff_login("ta", ta).await.expect("assistant logs in");
    let pupil = http.login("ia", student).await.expect("student logs in");
    // A student's password does not open the staff form, nor a staff one the students'.
    assert!(http.staff_login("ia", student).await.is_err());
    assert!(http.login("teach", teach).await.is_err());
    let csrf = |cookie: &str| {
        let cookie = cookie.to_string();
        let http = &http;
        async move { csrf_of(&http.page("/staff/runs", &cookie).await.body) }
    };
    let (ci, ca) = (csrf(&instructor).await, csrf(&assistant).await);
    let cs = csrf_of(&http.page("/dashboard", &pupil).await.body);
    let r = format!("/staff/runs/{RUN}");
    let st = format!("{r}/students/ia");
    let gets: Vec<(String, Needs)> = vec![
        ("/staff/runs".into(), Needs::View),
        (r.clone(), Needs::View),
        (format!("{r}?sort=progress&state=pending"), Needs::View),
        (format!("{r}/grades"), Needs::View),
        (format!("{r}/overview"), Needs::View),
        (format!("{r}/overview/traffic.svg"), Needs::View),
        (format!("{r}/overview/errors.svg"), Needs::View),
        (format!("{r}/overview/caching.svg"), Needs::View),
        (st.clone(), Needs::View),
        (format!("{st}/view/dashboard"), Needs::View),
        (format!("{st}/view/tasks/connections"), Needs::View),
        (format!("{st}/view/topology"), Needs::View),
        (format!("{st}/view/topology.svg"), Needs::View),
        (format!("{st}/view/console"), Needs::View),
        (format!("{st}/view/packets"), Needs::View),
        (format!("{st}/view/packets?view=frames"), Needs::View),
        (format!("{r}/grades/grades.csv"), Needs::Export),
        (format!("{r}/grades/grades.json"), Needs::Export),
        (format!("{r}/grades/grades-canvas.csv"), Needs::Export),
        (format!("{r}/grades/grades-moodle.csv"), Needs::Export),
        (format!("{r}/teardown"), Needs::Teardown),
    ];
    for (path, needs) in &gets {
        let anon = http.get(path, None, "text/html").await;
        assert_eq!(anon.status, StatusCode::SEE_OTHER, "anonymous {path}");
        assert!(anon.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/staff/login?next="));
        let who = [
            ("student", &pupil, false),
            ("assistant", &assistant, assistant_may(*needs)),
            ("instructor", &instructor, true),
        ];
        for (name, cookie, allowed) in who {
            let a = http.page(path, cookie).await;
            if allowed {
                assert_eq!(
                    a.status,
                    StatusCode::OK,
                    "{name} GET {path}: {}",
                    tail(&a.body, 600)
                );
            } else {
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{name} GET {path}: {}",
                    tail(&a.body, 600)
                );
            }
        }
    }
    // The live grid stream answers staff only.
    for (cookie, ok) in [(&pupil, false), (&assistant, true), (&instructor, true)] {
        let resp = http
            .client
            .get(format!("{}{r}/stream", http.base))
            .header("cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().is_success(), ok, "{r}/stream");
    }
    // Form posts: each with a valid token, and with arguments that make an
    // allowed request fail harmlessly (unknown student, wrong confirmation),
    // so the matrix changes nothing; allowed means "not refused".
    let posts: Vec<(String, Form, Needs)> = vec![
        (format!("{r}/students/zz/reset"), vec![], Needs::Reset),
        (
            format!("{r}/students/zz/node"),
            vec![("node", "origin"), ("action", "stop")],
            Needs::Node,
        ),
        (
            format!("{r}/students/zz/shape"),
            vec![
                ("link", "origin/lan"),
                ("delay_ms", "5"),
                ("rate_kbit", ""),
                ("loss_pct", ""),
            ],
            Needs::Shape,
        ),
        (
            format!("{r}/credentials"),
            vec![("student", "zz")],
            Needs::Reissue,
        ),
        (
            format!("{r}/teardown"),
            vec![("confirm", "not-the-name")],
            Needs::Teardown,
        ),
    ];
    for (path, form, needs) in &posts {
        let anon = http.post(path, None, form).await;
        assert!(
            matches!(
                anon.status,
                StatusCode::UNAUTHORIZED | StatusCode::SEE_OTHER
            ),
            "anonymous POST {path}: {}",
            anon.status
        );
        for (name, cookie, token, allowed) in [
            ("student", &pupil, &cs, false),
            ("assistant", &assistant, &ca, assistant_may(*needs)),
            ("instructor", &instructor, &ci, true),
        ] {
            let mut f = form.clone();
            f.push(("csrf", token.as_str()));
            let a = http.post(path, Some(cookie), &f).await;
            if allowed {
                assert!(
                    a.status != StatusCode::FORBIDDEN && a.status != StatusCode::UNAUTHORIZED,
                    "{name} POST {path}: {} {}",
                    a.status,
                    tail(&a.body, 600)
                );
            } else {
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{name} POST {path}: {}",
                    tail(&a.body, 600)
                );
            }
        }
        // Without the token, even the instructor is refused.
        let a = http.post(path, Some(&instructor), form).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "POST {path} without CSRF token"
        );
        assert!(a.body.contains("CSRF"));
    }
    // Multipart posts (launch, late students).
    for (path, needs) in [
        ("/staff/runs".to_string(), Needs::Launch),
        (format!("{r}/students"), Needs::Launch),
    ] {
        for (name, cookie, token, allowed) in [
            ("student", &pupil, &cs, false),
            ("assistant", &assistant, &ca, assistant_may(needs)),
            ("instructor", &instructor, &ci, true),
        ] {
            let form = reqwest::multipart::Form::new()
                .text("csrf", token.clone())
                .text("roster_text", "id,name,email\n");
            let resp = http
                .client
                .post(format!("{}{path}", http.base))
                .header("cookie", cookie.as_str())
                .header("accept", "text/html")
                .multipart(form)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            if allowed {
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{name} POST {path}: {body}"
                );
                assert!(
                    body.contains("no students") || body.contains("Nothing was"),
                    "{body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{name} POST {path}: {body}");
            }
        }
    }
    // An uploaded lab folder (larger than a form's usual limit): its errors
    // at their line, with the folder's own name; a clean one loads, and
    // only the roster's error stops it. Nothing is launched either way.
    let lab_dir = repo().join("labs/http-basics");
    let upload = |broken: bool, roster: &'static str| {
        let mut form = reqwest::multipart::Form::new()
            .text("csrf", ci.clone())
            .text("run", "upload")
            .text("roster_text", roster);
        let mut stack = vec![lab_dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p
                    .strip_prefix(&lab_dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mut bytes = std::fs::read(&p).unwrap();
                if broken && rel == "lab.toml" {
                    let text = String::from_utf8(bytes).unwrap();
                    bytes = text
                        .replacen("points = 2", "points = \"two\"", 1)
                        .into_bytes();
                }
                let part =
                    reqwest::multipart::Part::bytes(bytes).file_name(format!("http-basics/{rel}"));
                form = form.part("lab_files", part);
            }
        }
        // Padding past 64 KiB: the launch form takes folders of real size.
        let pad = reqwest::multipart::Part::bytes(vec![b'x'; 200 << 10])
            .file_name("http-basics/content/pad.bin");
        form.part("lab_files", pad)
    };
    for (broken, roster, want) in [
        (
            true,
            "id,name,email\nu1,U,u@example.edu\n",
            "http-basics/lab.toml:",
        ),
        (
            false,
            "id,name,email\nbad id!,U,u@example.edu\n",
            "roster (pasted):2:",
        ),
    ] {
        let resp = http
            .client
            .post(format!("{}/staff/runs", http.base))
            .header("cookie", instructor.as_str())
            .multipart(upload(broken, roster))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", tail(&body, 2000));
        assert!(
            body.contains("Nothing was launched") && body.contains(want),
            "{want}: {}",
            tail(&body, 3000)
        );
        if !broken {
            assert!(
                !body.contains("lab.toml:"),
                "the clean upload loaded: {}",
                tail(&body, 3000)
            );
        }
        assert!(
            !body.contains(".tmp") && !body.contains("uploads/"),
            "no scratch path shown: {}",
            tail(&body, 3000)
        );
    }
    assert_ne!(s.cmd(&["status", "--run", "upload"]).status.code(), Some(0));
    // A student's own pages refuse staff sessions; staff views are read-only.
    let a = http.page("/dashboard", &instructor).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = http
        .post(
            &format!("{st}/view/tasks/connections/check"),
            Some(&instructor),
            &[("csrf", ci.as_str())],
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}", a.body);
    let view = http
        .page(&format!("{st}/view/tasks/connections"), &assistant)
        .await
        .body;
    assert!(
        !view.contains("Check now") && !view.contains("Submit answer"),
        "read-only task page"
    );
    let view = http
        .page(&format!("{st}/view/dashboard"), &assistant)
        .await
        .body;
    assert!(view.contains("Viewing Ida A (ia)"), "{}", tail(&view, 2000));
    // The bearer token still works for scripts; a session never opens the API.
    let a = http.get("/api/staff", Some(&instructor), "*/*").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Nothing in the matrix changed the run.
    let status = s.status(RUN);
    assert_eq!(status["students"].as_array().unwrap().len(), 2);
    eprintln!(
        "role matrix: {} GET routes and {} POST routes × anonymous, student, assistant, instructor",
        gets.len() + 1,
        posts.len() + 2
    );
}

/// The class in the browser: the grid, a cell turning to pass, the
/// student's pages, their console watched, a reset, grades, teardown.
async fn class_in_browser(s: &Server, c: &fantoccini::Client, student_pw: &str) {
    let base = format!("http://127.0.0.1:{}", s.port);
    // Wait for both topologies.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let st = s.status(RUN);
        if st["students"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "ready")
        {
            break;
        }
        assert!(Instant::now() < deadline, "topologies not ready: {st}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.goto(&format!("{base}/staff/runs/{RUN}")).await.unwrap();
    wait_js(
        c,
        "return document.getElementById('live-state').textContent.indexOf('Live') === 0",
        "the grid's live stream",
        10,
    )
    .await;
    c.execute("window.__notReloaded = true; return true", vec![])
        .await
        .unwrap();
    let cell = "document.getElementById('cell-ia-connections')";
    assert_eq!(
        c.execute(&format!("return {cell}.className"), vec![])
            .await
            .unwrap(),
        "cell pending"
    );
    shot(c, "04-grid-pending").await;
    // The model student does the task's work (as in http_lab.rs).
    let p = s.json(&["params", "ia", "--run", RUN]);
    let site = format!("www.{}.lab", p["site"].as_str().unwrap());
    s.sh(RUN, "ia", "ws", &format!("http --page --no-keepalive http://{site}/index.html >/dev/null; http --page http://{site}/index.html >/dev/null"));
    let n: f64 = p["answer_objects"].as_str().unwrap().parse().unwrap();
    // rtt_ms is the lab's constant (100 ms), as in http_lab.rs.
    let rtt = 100.0;
    let answered = Instant::now();
    s.answer(
        RUN,
        "ia",
        "connections",
        "response-time",
        &format!("{}", (n + 1.0) * 2.0 * rtt),
    );
    wait_js(
        c,
        &format!("return {cell}.classList.contains('pass')"),
        "ia's connections cell to pass",
        30,
    )
    .await;
    let seen_after = answered.elapsed();
    let v = c
        .execute(
            &format!("return [window.__notReloaded === true, {cell}.textContent, document.getElementById('count-connections').textContent, Number({cell}.dataset.shown) - Number({cell}.dataset.at)]"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(v[0], true, "the grid changed without a reload");
    assert!(v[1].as_str().unwrap().contains('✓'), "{v}");
    assert_eq!(v[2], "1 / 2");
    let delay = v[3].as_f64().unwrap();
    eprintln!("grid: stored result to cell {delay:.3} s (answer to cell {seen_after:?})");
    assert!(
        delay < 1.0,
        "the cell changed {delay} s after the result was stored"
    );
    shot(c, "05-grid-pass").await;
    // Filter and sort without script: only students who passed connections.
    c.goto(&format!(
        "{base}/staff/runs/{RUN}?state=pass&task=connections&sort=progress"
    ))
    .await
    .unwrap();
    let rows = c
        .execute(
            "return document.querySelectorAll('#grid tbody tr').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // Drill in: the cell opens the student's task with its evidence.
    c.goto(&format!("{base}/staff/runs/{RUN}")).await.unwrap();
    submit(c, "#cell-ia-connections a").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/staff/runs/{RUN}/students/ia/view/tasks/connections")
    );
    let page = c.source().await.unwrap();
    assert!(
        page.contains("Evidence") && page.contains("Viewing Ida A (ia)"),
        "{}",
        tail(&page, 3000)
    );
    shot(c, "06-student-task").await;
    c.goto(&format!("{base}/staff/runs/{RUN}/students/ia"))
        .await
        .unwrap();
    let page = c.source().await.unwrap();
    assert!(
        page.contains("response-time") && page.contains("Check history"),
        "answers and history"
    );
    shot(c, "07-student").await;

    // The student in a second browser types; the instructor watches.
    let (_driver2, sc) = browser_session().await;
    log_in(&sc, &base, "/login", "ia", student_pw).await;
    sc.goto(&format!("{base}/console")).await.unwrap();
    wait_js(&sc, "return !!window.applabTerm && document.getElementById('console-status').textContent.indexOf('onnected') >= 0", "the student's console", 20).await;
    c.goto(&format!("{base}/staff/runs/{RUN}/students/ia/view/console"))
        .await
        .unwrap();
    wait_js(
        c,
        "return document.getElementById('console-status').textContent.indexOf('Watching') >= 0",
        "the watch to attach",
        20,
    )
    .await;
    let screen = "var b = window.applabTerm._core.buffer, out = []; for (var i = 0; i < b.lines.length; i++) out.push(b.translateBufferLineToString(i, true)); return out.join('\\n')";
    let student_keys = sc
        .find(Locator::Css(".xterm-helper-textarea"))
        .await
        .unwrap();
    student_keys
        .send_keys("echo typed-by-$((6*7))-student\u{E007}")
        .await
        .unwrap();
    wait_js(
        c,
        &format!("{screen}.indexOf('typed-by-42-student') >= 0"),
        "the student's typing on the watcher's screen",
        15,
    )
    .await;
    // The watcher types in its terminal, and a script sends keystrokes on
    // the watch socket itself: neither reaches the shell.
    if let Ok(t) = c.find(Locator::Css(".xterm-helper-textarea")).await {
        let _ = t.send_keys("touch /tmp/watcher-typed-1\u{E007}").await;
    }
    let staff_cookie = c.get_named_cookie("applab_session").await.unwrap();
    let cookie = format!("applab_session={}", staff_cookie.value());
    {
        use futures_util::{SinkExt, StreamExt};
        let url = format!(
            "ws://127.0.0.1:{}/staff/runs/{RUN}/students/ia/view/console/ws",
            s.port
        );
        let (mut ws, _) =
            tokio_tungstenite::connect_async(tokio_tungstenite_request(&url, &cookie))
                .await
                .expect("the watch socket");
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            "0touch /tmp/watcher-typed-2\r".into(),
        ))
        .await
        .unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(
            b"0touch /tmp/watcher-typed-3\r".to_vec().into(),
        ))
        .await
        .unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(800), ws.next()).await;
        let _ = ws.close(None).await;
    }
    student_keys
        .send_keys("ls /tmp; echo listed-$((40+2))\u{E007}")
        .await
        .unwrap();
    wait_js(
        &sc,
        &format!("{screen}.indexOf('listed-42') >= 0"),
        "the student's ls",
        15,
    )
    .await;
    let student_screen = sc
        .execute(screen, vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !student_screen.contains("watcher-typed"),
        "a watcher's keys reached the shell: {student_screen}"
    );
    let (code, _) = s.exec(
        RUN,
        "ia",
        "ws",
        &["sh", "-c", "ls /tmp/watcher-typed-* 2>/dev/null"],
    );
    assert_ne!(
        code, 0,
        "a watcher's keystrokes made files on the workstation"
    );
    shot(c, "08-console-watched").await;
    shot(&sc, "08-console-student").await;
    drop(sc);

    // Reset the student; the topology comes back with new containers.
    let before = container_ids(RUN);
    c.goto(&format!("{base}/staff/runs/{RUN}/students/ia"))
        .await
        .unwrap();
    submit(c, "#reset").await;
    let page = c.source().await.unwrap();
    assert!(
        page.contains("The topology was recreated."),
        "{}",
        tail(&page, 2000)
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        c.goto(&format!(
            "{base}/staff/runs/{RUN}/students/ia/view/topology"
        ))
        .await
        .unwrap();
        let up = c
            .execute("var s = document.querySelectorAll('table.nodes .status'); return s.length > 0 && Array.prototype.every.call(s, function (x) { return x.classList.contains('ok'); })", vec![])
            .await
            .unwrap();
        if up == true {
            break;
        }
        assert!(Instant::now() < deadline, "the topology did not come back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = container_ids(RUN);
    let changed = before
        .iter()
        .filter(|(k, v)| k.contains("-ia-") && after.get(*k).is_some_and(|n| n != *v))
        .count();
    assert!(
        changed > 0,
        "reset made new containers for ia: {before:?} → {after:?}"
    );
    shot(c, "09-after-reset").await;

    // Grades: the page, then the file as a browser downloads it.
    c.goto(&format!("{base}/staff/runs/{RUN}/grades"))
        .await
        .unwrap();
    shot(c, "10-grades").await;
    let href = c
        .find(Locator::LinkText("CSV"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let http = Http::new(s.port);
    let csv = http.get(&href, Some(&cookie), "*/*").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("id,name,email,"), "{}", csv.body);
    let ia = lines
        .iter()
        .find(|l| l.starts_with("ia,"))
        .expect("ia's row");
    let ib = lines
        .iter()
        .find(|l| l.starts_with("ib,"))
        .expect("ib's row");
    assert!(
        ia.contains(",2,"),
        "ia earned the connections task's 2 points: {ia}"
    );
    assert!(!ib.contains(",2,"), "{ib}");
    let canvas = http
        .get(
            &format!("/staff/runs/{RUN}/grades/grades-canvas.csv"),
            Some(&cookie),
            "*/*",
        )
        .await;
    assert!(canvas.body.contains("Points Possible"), "{}", canvas.body);

    // The overview's pictures.
    c.goto(&format!("{base}/staff/runs/{RUN}/overview"))
        .await
        .unwrap();
    let n = c
        .execute(
            "return document.querySelectorAll('svg.plot').length",
            vec![],
        )
        .await
        .unwrap();
    assert!(n.as_u64().unwrap() >= 2, "{n}");
    let text = c
        .execute(
            "return document.querySelector('svg.plot').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        text.as_str().unwrap().contains("http"),
        "traffic per protocol: {text}"
    );
    shot(c, "11-overview").await;

    // Teardown: the confirmation names what goes; a wrong name removes nothing.
    c.goto(&format!("{base}/staff/runs/{RUN}/teardown"))
        .await
        .unwrap();
    let page = c.source().await.unwrap();
    assert!(
        page.contains("ia, ib") && page.contains("container(s)"),
        "{page}"
    );
    shot(c, "12-teardown-confirm").await;
    fill(c, "confirm", "wrong").await;
    submit(c, "form button.danger").await;
    assert!(c.source().await.unwrap().contains("Nothing was removed"));
    assert!(!objects_of_run(RUN).is_empty());
    fill(c, "confirm", RUN).await;
    submit(c, "form button.danger").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/staff/runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !objects_of_run(RUN).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            objects_of_run(RUN)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    shot(c, "13-runs-after-teardown").await;
}
