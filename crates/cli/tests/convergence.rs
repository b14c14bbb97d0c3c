//! `launch` converges after any crash: the controller is SIGKILLed at random
//! points of a launch, restarted and launched again, many times. In the
//! end every student has exactly one healthy topology, containers that were
//! already running kept their ids, and nothing is orphaned or unlabelled.

mod common;

use common::{objects_of_run, Server};
use rand::Rng;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

/// "ID NAME" of the running containers of the run's students whose
/// topology the controller reports ready (every node answering).
fn healthy_topologies(s: &Server, run: &str) -> BTreeSet<String> {
    let out = s.cmd(&["status", "--run", run, "--json"]);
    let Ok(st) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return BTreeSet::new();
    };
    let mut ids = BTreeSet::new();
    for stu in st["students"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["state"] == "ready")
    {
        for n in stu["nodes"].as_array().into_iter().flatten() {
            let name = format!(
                "applab-{run}-{}-{}",
                stu["id"].as_str().unwrap(),
                n["name"].as_str().unwrap()
            );
            ids.insert(format!("{} {name}", n["container_id"].as_str().unwrap()));
        }
    }
    ids
}

/// "ID NAME" of the run's running containers.
fn running_ids(run: &str) -> BTreeSet<String> {
    let o = Command::new("docker")
        .args([
            "ps",
            "--no-trunc",
            "--filter",
            &format!("label=applab.run={run}"),
            "--filter",
            "status=running",
        ])
        .args(["--format", "{{.ID}} {{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Engine objects whose name says they belong to the run, labelled or not.
fn named_like(prefix: &str) -> Vec<(String, String)> {
    common::engine_objects(None)
        .into_iter()
        .filter(|(_, n)| n.starts_with(prefix))
        .collect()
}

#[test]
fn sigkill_at_random_points_of_a_launch_then_launch_again_converges() {
    let mut s = Server::start("10.223.0.0/20");
    let run = "conv";
    let ids = ["k1", "k2", "k3", "k4", "k5"];
    s.runs.push(run.to_string());
    let roster = s.data.path().join("roster.csv");
    let mut text = String::from("id,name,email\n");
    for id in ids {
        text.push_str(&format!("{id},Student {id},{id}@uni.example\n"));
    }
    std::fs::write(&roster, text).unwrap();
    let lab = common::repo().join("labs/http-basics");
    let mut rng = rand::thread_rng();
    // Containers of topologies seen healthy before a kill.
    let mut seen_running: BTreeSet<String> = BTreeSet::new();
    let kills = 12;
    for round in 0..kills {
        if round > 0 {
            s.spawn();
        }
        let mut launch = Command::new(common::applab_bin())
            .args([
                "launch",
                lab.to_str().unwrap(),
                "--roster",
                roster.to_str().unwrap(),
                "--run",
                run,
                "--json",
            ])
            .env("APPLAB_URL", format!("http://127.0.0.1:{}", s.port))
            .env("APPLAB_DATA", s.data.path())
            .current_dir(s.data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Early rounds kill during the first creations; later ones anywhere.
        let ms = rng.gen_range(0..if round < 4 { 700 } else { 2500 });
        std::thread::sleep(Duration::from_millis(ms));
        // Topologies healthy now must still run, with the same ids, at the end.
        seen_running.extend(healthy_topologies(&s, run));
        s.kill();
        let _ = launch.kill();
        let _ = launch.wait();
    }
    s.spawn();
    s.launch(run, "http-basics", &ids);

    let st = s.status(run);
    let students = st["students"].as_array().unwrap();
    assert_eq!(students.len(), ids.len());
    for stu in students {
        assert_eq!(stu["state"], "ready", "{stu}");
        for n in stu["nodes"].as_array().unwrap() {
            assert_eq!(n["healthy"], true, "{n}");
        }
    }
    // Adopted half-made containers were finished: every origin serves the
    // student's own page.
    for id in ids {
        let p = s.json(&["params", id, "--run", run]);
        let word = p["secret_word"].as_str().unwrap();
        let get = "printf 'GET / HTTP/1.1\nHost: origin\nConnection: close\n\n' | tcp origin 80";
        let (code, page) = s.exec(run, id, "ws", &["sh", "-c", get]);
        assert_eq!(code, 0, "{page}");
        assert!(page.contains(word), "{id}'s page lacks {word}: {page}");
    }
    // Exactly one topology per student: 2 containers, 1 network, 2 volumes.
    let objs = objects_of_run(run);
    for id in ids {
        let mine = |kind: &str| {
            objs.iter()
                .filter(|(k, n)| k == kind && n.starts_with(&format!("applab-{run}-{id}-")))
                .count()
        };
        assert_eq!(
            (mine("container"), mine("network"), mine("volume")),
            (2, 1, 2),
            "{id}: {objs:?}"
        );
    }
    assert_eq!(objs.len(), ids.len() * 5, "{objs:?}");
    // Nothing named like ours lacks the labels.
    assert_eq!(
        named_like(&format!("applab-{run}-")),
        objs,
        "unlabelled objects left behind"
    );
    // Healthy topologies were never wiped and redone.
    let now = running_ids(run);
    let lost: Vec<_> = seen_running.difference(&now).collect();
    assert!(
        lost.is_empty(),
        "containers running before a kill were replaced: {lost:?}"
    );
    assert!(
        !seen_running.is_empty(),
        "some kill happened after a topology was healthy"
    );

    s.ok(&["teardown", "--run", run]);
    assert_eq!(objects_of_run(run), Vec::<(String, String)>::new());
    assert_eq!(
        named_like(&format!("applab-{run}-")),
        Vec::<(String, String)>::new()
    );
}
