//! Verbs that work with no server and no engine.

mod common;

use std::process::Command;

#[test]
fn shipped_labs_validate() {
    let labs = common::repo().join("labs");
    for e in std::fs::read_dir(&labs).unwrap() {
        let dir = e.unwrap().path();
        let out = Command::new(common::applab_bin())
            .args(["lab", "validate"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_broken_lab_gets_every_error_located_and_a_failing_exit() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("lab.toml"),
        r#"[lab]
name = "broken"
title = "Broken"

[parameters.n]
kind = "int"
min = 9
max = 3

[[networks]]
name = "lan"

[[nodes]]
name = "web"
role = "webserver"
limits = { pids = 2 }
[[nodes.attach]]
network = "wan"

[[nodes]]
name = "web"
role = "workstation"
[[nodes.attach]]
network = "lan"
rate = "fast"

[[tasks]]
id = "t"
title = "T"
file = "tasks/missing.md"

[[tasks.checks]]
id = "c"
expect = "x"
events = { match = { type = "http_request", colour = "red" } }

[[tasks.checks]]
id = "d"
expect = "x"
answer = "nothing"
"#,
    )
    .unwrap();
    let out = Command::new(common::applab_bin())
        .args(["lab", "validate"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = [
        ("7:7", "bad parameter: min 9 is above max 3"),
        ("15:8", "unknown role \"webserver\""),
        ("16:19", "bad limit: pids"),
        (
            "18:11",
            "node \"web\" attaches to undefined network \"wan\"",
        ),
        ("21:8", "duplicate node name \"web\""),
        ("25:8", "bad rate \"fast\""),
        ("30:8", "missing task file"),
        (
            "35:45",
            "events of type \"http_request\" have no field \"colour\"",
        ),
        (
            "40:10",
            "answer names no question of this task: \"nothing\"",
        ),
    ];
    for (at, msg) in want {
        let needle = format!("lab.toml:{at}: {msg}");
        assert!(
            err.lines().any(|l| l.contains(&needle)),
            "missing {needle:?} in:\n{err}"
        );
    }
    assert_eq!(err.lines().count(), want.len(), "{err}");

    let json = Command::new(common::applab_bin())
        .args(["lab", "validate", "--json"])
        .arg(d.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["ok"], false);
    assert_eq!(v[0]["errors"].as_array().unwrap().len(), want.len());
}

#[test]
fn every_verb_has_help() {
    for verb in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["lab", "validate", "--help"],
        vec!["images", "build", "--help"],
        vec!["launch", "--help"],
        vec!["status", "--help"],
        vec!["reset", "--help"],
        vec!["stop", "--help"],
        vec!["start", "--help"],
        vec!["teardown", "--help"],
        vec!["exec", "--help"],
        vec!["credentials", "--help"],
        vec!["params", "--help"],
        vec!["shape", "--help"],
        vec!["capture", "--help"],
        vec!["check", "--help"],
        vec!["grades", "--help"],
        vec!["answer", "--help"],
        vec!["history", "--help"],
    ] {
        let out = Command::new(common::applab_bin())
            .args(&verb)
            .output()
            .unwrap();
        assert!(out.status.success(), "{verb:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{verb:?}"
        );
    }
    let node = Command::new(common::node_bin())
        .args(["origin", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&node.stdout).contains("--root"));
    for probe in ["mail", "shop", "proxy"] {
        let out = Command::new(common::node_bin())
            .args(["probe", probe, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "probe {probe} --help");
    }
}

#[test]
fn the_shop_probe_reads_the_carts_and_a_missing_store_is_empty() {
    let d = tempfile::tempdir().unwrap();
    let probe = |dir: &std::path::Path| {
        let out = Command::new(common::node_bin())
            .args(["probe", "shop", "--state"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(probe(d.path()), serde_json::json!({ "carts": {} }));
    std::fs::write(d.path().join("shop.json"), r#"{"abc": ["tea"]}"#).unwrap();
    assert_eq!(probe(d.path())["carts"]["abc"][0], "tea");
    // A store that is not JSON: the probe fails, naming the file.
    std::fs::write(d.path().join("shop.json"), "nonsense").unwrap();
    let out = Command::new(common::node_bin())
        .args(["probe", "shop", "--state"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shop.json"));
}
