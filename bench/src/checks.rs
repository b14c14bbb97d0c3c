//! `checks`: the check engine under a class's load.
//!
//! A class of N students of http-basics, each with the events a model
//! student makes (the page over one connection per object, then over one
//! persistent connection, the methods typed by hand, the status codes),
//! replayed into the controller's check loop at lab rates: each student's
//! steps ten seconds apart, the students' starts spread over the first
//! half of the run. Prints CPU seconds per 100k events (the whole check
//! path: evaluation and the store; and evaluation alone), the p50 and p99
//! from an event reaching the check engine to its result being stored,
//! and the time of a full regrade of the class.
//!
//! No peer checks a lab from its traffic (kathara-lab-checker, Labtainers
//! and netlab judge command output after the fact), so these figures stand
//! against the targets: p99 under 200 ms, a full regrade under 10 s.

use anyhow::{Context, Result};
use applab_controller::store::StudentRow;
use applab_controller::Controller;
use applab_proto::event::{Event, EventKind, NodeEvent};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ChecksArgs {
    #[arg(long, default_value_t = 300)]
    students: usize,
    /// How long the replay lasts.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value = "labs/http-basics")]
    lab: PathBuf,
    #[arg(long)]
    json: bool,
}

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a zeroed out-struct for the kernel to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// One student's trace, as steps (each a burst of events).
struct Trace {
    steps: Vec<Vec<NodeEvent>>,
}

fn trace(site: &str, secret: &str) -> Trace {
    let host = format!("www.{site}.lab");
    let mut flow = 0u64;
    let mut frame = 0u64;
    let mut ev = |flow: u64, kind: EventKind| {
        frame += 3;
        NodeEvent {
            seq: 0,
            network: "lan".into(),
            client_node: Some("ws".into()),
            server_node: Some("origin".into()),
            event: Event {
                time: 0.0,
                flow,
                frame,
                client: "10.0.0.3:40000".parse().expect("addr"),
                server: "10.0.0.2:80".parse().expect("addr"),
                kind,
            },
        }
    };
    let req = |method: &str, target: &str, headers: Vec<(String, String)>, nth: u32| {
        EventKind::HttpRequest {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            host: Some(host.clone()),
            headers: [vec![("Host".to_string(), host.clone())], headers].concat(),
            body_bytes: if method == "POST" || method == "PUT" {
                9
            } else {
                0
            },
            nth_on_connection: nth,
        }
    };
    let resp = |status: u16, body: u64, headers: Vec<(String, String)>, nth: u32| {
        EventKind::HttpResponse {
            status,
            reason: "OK".into(),
            version: "HTTP/1.1".into(),
            headers,
            body_bytes: body,
            request_method: Some("GET".into()),
            request_target: Some("/".into()),
            nth_on_connection: nth,
        }
    };
    let close = || vec![("Connection".to_string(), "close".to_string())];
    let mut steps = Vec::new();
    // The page and ten objects, a connection each.
    let mut s = Vec::new();
    for i in 0..11 {
        flow += 1;
        let target = if i == 0 {
            "/index.html".to_string()
        } else {
            format!("/objects/object-{i:02}.jpg")
        };
        s.push(ev(flow, EventKind::TcpOpen));
        s.push(ev(flow, req("GET", &target, close(), 1)));
        s.push(ev(flow, resp(200, 102_400, close(), 1)));
        s.push(ev(flow, EventKind::TcpClose { reset: false }));
    }
    steps.push(s);
    // Again over one connection.
    let mut s = Vec::new();
    flow += 1;
    s.push(ev(flow, EventKind::TcpOpen));
    for i in 0..11u32 {
        s.push(ev(
            flow,
            req("GET", &format!("/objects/object-{i:02}.jpg"), vec![], i + 1),
        ));
        s.push(ev(flow, resp(200, 102_400, vec![], i + 1)));
    }
    steps.push(s);
    // The methods, typed by hand on one connection.
    let mut s = Vec::new();
    flow += 1;
    let form = format!("/search?q={secret}");
    for (n, (m, t, st)) in [
        ("GET", "/index.html", 200),
        ("HEAD", "/index.html", 200),
        ("GET", form.as_str(), 200),
        ("POST", "/search", 200),
        ("PUT", "/uploads/notes.txt", 201),
        ("DELETE", "/uploads/notes.txt", 204),
    ]
    .into_iter()
    .enumerate()
    {
        let n = n as u32 + 1;
        s.push(ev(flow, req(m, t, vec![], n)));
        s.push(ev(
            flow,
            resp(st, if m == "HEAD" { 0 } else { 500 }, vec![], n),
        ));
    }
    steps.push(s);
    // The status codes, a connection each.
    let mut s = Vec::new();
    for (target, st, loc) in [
        ("/home.index", 301, Some("/index.html")),
        ("/index.html", 200, None),
        ("/nothing", 404, None),
    ] {
        flow += 1;
        s.push(ev(flow, req("GET", target, close(), 1)));
        let h = loc
            .map(|l| vec![("Location".to_string(), l.to_string())])
            .unwrap_or_default();
        s.push(ev(flow, resp(st, 100, h, 1)));
    }
    for st in [400, 505] {
        flow += 1;
        s.push(ev(flow, resp(st, 100, close(), 1)));
    }
    steps.push(s);
    Trace { steps }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub async fn run(a: ChecksArgs) -> Result<()> {
    let data = tempfile::tempdir()?;
    let rt = Arc::new(
        applab_runtime::docker::DockerRuntime::connect()
            .await
            .context(
                "connecting to the Docker engine (the controller's runtime; nothing is launched)",
            )?,
    );
    let cfg = applab_controller::Config {
        data_dir: data.path().to_path_buf(),
        pool: "10.250.0.0/16".parse()?,
        prefix: 26,
        parallel: 4,
        interval: Duration::from_secs(3600),
        // Nothing is launched: no image is built or read.
        sources: applab_controller::images::Sources {
            images_dir: PathBuf::from("images"),
            node_binary: PathBuf::new(),
            busybox: PathBuf::new(),
            applab_binary: None,
            labs_dir: None,
            manifest: None,
        },
        capture_bytes: 1 << 20,
    };
    let ctrl = Controller::new(cfg, rt).await?;
    let lab_dir = a.lab.canonicalize()?;
    let lab = applab_lab::Lab::load(&lab_dir).map_err(|d| anyhow::anyhow!("{d}"))?;
    let run = ctrl
        .store
        .create_run(
            "bench",
            &lab.name,
            &lab_dir.to_string_lossy(),
            b"bench secret",
        )
        .await?;
    let mut traces = Vec::new();
    for i in 0..a.students {
        let id = format!("s{i:03}");
        ctrl.store
            .add_student(&StudentRow {
                run: "bench".into(),
                id: id.clone(),
                name: id.clone(),
                email: format!("{id}@uni.example"),
                password_hash: String::new(),
                issued_at: 0,
                generation: 1,
                added_at: 0,
            })
            .await?;
        let p = applab_lab::params::for_student(&lab, &run.secret, &id);
        traces.push((id, trace(&p["site"], &p["secret_word"])));
    }
    ctrl.install_grader();
    tokio::spawn(ctrl.clone().grade_loop());

    // The schedule: (when, student, step), students starting over the first half.
    let gap = Duration::from_secs(a.seconds) / 2 / (traces[0].1.steps.len() as u32);
    let mut schedule: Vec<(Duration, usize, usize)> = Vec::new();
    for (i, (_, t)) in traces.iter().enumerate() {
        let start = Duration::from_secs(a.seconds) / 2 * i as u32 / a.students.max(1) as u32;
        for k in 0..t.steps.len() {
            schedule.push((start + gap * k as u32, i, k));
        }
    }
    schedule.sort_by_key(|s| s.0);
    let events: usize = traces
        .iter()
        .map(|(_, t)| t.steps.iter().map(Vec::len).sum::<usize>())
        .sum();
    eprintln!(
        "checks benchmark: {} students of {}, {events} events over {} s",
        a.students, lab.name, a.seconds
    );
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut ids: BTreeMap<usize, u64> = BTreeMap::new();
    for (at, i, k) in schedule {
        if let Some(wait) = at.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let (id, t) = &traces[i];
        let now = applab_controller::store::now_f();
        for e in &t.steps[k] {
            let n = ids.entry(i).or_default();
            *n += 1;
            let mut e = e.clone();
            e.seq = *n;
            e.event.time = now;
            ctrl.grader.on_event("bench", id, &e);
            tokio::task::yield_now().await;
        }
        // After the last step, the student answers the task's question.
        if k + 1 == t.steps.len() {
            let p = applab_lab::params::for_student(&lab, &run.secret, id);
            let n: u64 = p["answer_objects"].parse()?;
            ctrl.answer(
                "bench",
                id,
                "connections",
                "response-time",
                &((n + 1) * 200).to_string(),
            )
            .await?;
        }
    }
    // Let the last results land.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = ctrl.matrix("bench").await?;
        let done = m
            .students
            .iter()
            .all(|r| r.cells.iter().all(|c| *c == applab_checks::Status::Pass));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let m = ctrl.matrix("bench").await?;
    let passed = m
        .students
        .iter()
        .filter(|r| r.cells.iter().all(|c| *c == applab_checks::Status::Pass))
        .count();
    let mut lat = ctrl.grader.latencies();
    let results = lat.len();
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));

    // Evaluation alone: every student's whole trace, evaluated once.
    let cpu1 = cpu_seconds();
    let probes = applab_checks::Probes::new();
    for (id, t) in &traces {
        let p = applab_lab::params::for_student(&lab, &run.secret, id);
        let evs: Vec<NodeEvent> = t.steps.concat();
        let input = applab_checks::Input {
            lab: &lab,
            params: &p,
            events: &evs,
            probes: &probes,
            answers: &[],
        };
        std::hint::black_box(applab_checks::evaluate(&input));
    }
    let eval_cpu = cpu_seconds() - cpu1;

    // A full regrade of the class.
    let t1 = Instant::now();
    ctrl.check_now("bench", None, true).await?;
    let regrade = t1.elapsed().as_secs_f64();

    let per100k = |c: f64| c / events as f64 * 100_000.0;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "students": a.students, "events": events, "wall_s": wall,
                "students_all_passed": passed, "results_stored": results,
                "cpu_s_per_100k_events": per100k(cpu),
                "eval_cpu_s_per_100k_events": per100k(eval_cpu),
                "event_to_result_p50_ms": p50 * 1e3, "event_to_result_p99_ms": p99 * 1e3,
                "full_regrade_s": regrade,
            })
        );
    } else {
        println!("  students all passed      {passed} of {}", a.students);
        println!("  results stored           {results}");
        println!(
            "  CPU per 100k events      {:.2} s (the check loop: evaluation and store)",
            per100k(cpu)
        );
        println!(
            "  CPU per 100k events      {:.3} s (evaluation alone, each trace once)",
            per100k(eval_cpu)
        );
        println!(
            "  event to stored result   p50 {:.1} ms   p99 {:.1} ms   (target p99 < 200 ms)",
            p50 * 1e3,
            p99 * 1e3
        );
        println!(
            "  full regrade             {regrade:.2} s for {} students   (target < 10 s)",
            a.students
        );
    }
    Ok(())
}
