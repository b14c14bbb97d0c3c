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
}
