//! A real controller (`applab serve`) against the real Docker engine, for
//! integration tests. No mock stands in for Docker: without an engine these
//! tests fail, loudly, at start.

#![allow(dead_code)]

pub mod web;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn applab_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_applab"))
}

/// The static applab-node built beside applab (`cargo build --release` first).
pub fn node_bin() -> PathBuf {
    let p = applab_bin().with_file_name("applab-node");
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --release)",
        p.display()
    );
    p
}

pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(ok, Ok(s) if s.success()),
        "these tests need a running Docker engine (start dockerd; .ci/run does)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub data: tempfile::TempDir,
    pub port: u16,
    host: String,
    pub pool: String,
    child: Option<Child>,
    pub runs: Vec<String>,
}

impl Server {
    /// Start `applab serve` on a free loopback port with its own data
    /// folder and address pool.
    pub fn start(pool: &str) -> Server {
        Self::start_on(pool, "127.0.0.1")
    }

    /// As a real controller: listening on every address.
    pub fn start_public(pool: &str) -> Server {
        Self::start_on(pool, "0.0.0.0")
    }

    fn start_on(pool: &str, host: &str) -> Server {
        require_docker();
        let mut s = Server {
            data: tempfile::tempdir().unwrap(),
            port: free_port(),
            host: host.to_string(),
            pool: pool.to_string(),
            child: None,
            runs: Vec::new(),
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("serve.log"))
            .unwrap();
        let child = Command::new(applab_bin())
            .args(["serve", "--listen", &format!("{}:{}", self.host, self.port)])
            .args([
                "--data",
                self.data.path().to_str().unwrap(),
                "--pool",
                &self.pool,
                "--interval",
                "2",
            ])
            .env("APPLAB_IMAGES", repo().join("images"))
            .env("APPLAB_NODE_BINARY", node_bin())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn applab serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.data.path().join("instructor.token").exists()
            {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("applab serve exited early ({st}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("applab serve did not come up: {}", self.log());
    }

    /// SIGKILL the controller: no clean-up of any kind.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("serve.log")).unwrap_or_default()
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(applab_bin())
            .args(args)
            .env("APPLAB_URL", format!("http://127.0.0.1:{}", self.port))
            .env("APPLAB_DATA", self.data.path())
            .current_dir(self.data.path())
            .stdin(Stdio::null())
            .output()
            .expect("run applab")
    }

    /// Run a verb that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "applab {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 3000)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Write a roster of `ids` and launch `lab` as `run`, waiting for it.
    pub fn launch(&mut self, run: &str, lab: &str, ids: &[&str]) -> Value {
        let roster = self.data.path().join(format!("roster-{run}.csv"));
        let mut text = String::from("id,name,email\n");
        for id in ids {
            text.push_str(&format!("{id},Student {id},{id}@uni.example\n"));
        }
        std::fs::write(&roster, text).unwrap();
        if !self.runs.contains(&run.to_string()) {
            self.runs.push(run.to_string());
        }
        let lab = repo().join("labs").join(lab);
        self.json(&[
            "launch",
            lab.to_str().unwrap(),
            "--roster",
            roster.to_str().unwrap(),
            "--run",
            run,
        ])
    }

    pub fn status(&self, run: &str) -> Value {
        self.json(&["status", "--run", run])
    }

    /// Run a shell script in a student's node; it must succeed; its stdout.
    pub fn sh(&self, run: &str, student: &str, node: &str, script: &str) -> String {
        let (code, out) = self.exec(run, student, node, &["sh", "-c", script]);
        assert_eq!(code, 0, "script failed on {node}:\n{script}\n---\n{out}");
        out
    }

    /// A student's captured protocol events of one protocol.
    pub fn events(&self, run: &str, student: &str, protocol: &str) -> Vec<Value> {
        let v = self.json(&[
            "capture",
            "events",
            student,
            "--run",
            run,
            "--protocol",
            protocol,
            "--limit",
            "10000",
        ]);
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// A mail node's queue, mailboxes and folders (its `mailq` tool).
    pub fn mailq(&self, run: &str, student: &str, node: &str) -> Value {
        let (code, out) = self.exec(
            run,
            student,
            node,
            &["applab-node", "tool", "mailq", "--json"],
        );
        assert_eq!(code, 0, "mailq on {node}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Run a command in a student's node: (exit code, stdout).
    pub fn exec(&self, run: &str, student: &str, node: &str, cmd: &[&str]) -> (i64, String) {
        let mut a = vec!["exec", student, node, "--run", run, "--json", "--"];
        a.extend_from_slice(cmd);
        let out = self.cmd(&a);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "exec {a:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (
            v["exit_code"].as_i64().unwrap(),
            v["stdout"].as_str().unwrap_or("").to_string(),
        )
    }
}

pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

impl Drop for Server {
    /// Whatever happened, leave no lab behind.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- applab serve log (tail) ---\n{}",
                tail(&self.log(), 12000)
            );
        }
        if self.child.is_none() && !self.runs.is_empty() {
            self.spawn();
        }
        for r in self.runs.clone() {
            let _ = self.cmd(&["teardown", "--run", &r]);
        }
        self.kill();
    }
}

/// Every container, network and volume of the engine as (kind, name),
/// only those carrying `label` (`key=value`) when given.
pub fn engine_objects(label: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (kind, list, format) in [
        ("container", &["ps", "-a"][..], "{{.Names}}"),
        ("network", &["network", "ls"][..], "{{.Name}}"),
        ("volume", &["volume", "ls"][..], "{{.Name}}"),
    ] {
        let mut cmd = Command::new("docker");
        cmd.args(list).args(["--format", format]);
        if let Some(l) = label {
            cmd.args(["--filter", &format!("label={l}")]);
        }
        let o = cmd.output().unwrap();
        for l in String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
        {
            out.push((kind.to_string(), l.to_string()));
        }
    }
    out.sort();
    out
}

/// Every engine object carrying `applab.run=RUN`, as (kind, name).
pub fn objects_of_run(run: &str) -> Vec<(String, String)> {
    engine_objects(Some(&format!("applab.run={run}")))
}

/// Container ids by name for one run.
pub fn container_ids(run: &str) -> std::collections::BTreeMap<String, String> {
    let filter = format!("label=applab.run={run}");
    let o = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.ID}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

/// What the check engine says, read through `applab check --json`.
pub struct Results(pub Value);

impl Server {
    /// Evaluate now (probes first) and return every student's results.
    pub fn check(&self, run: &str) -> Results {
        Results(self.json(&["check", "--run", run]))
    }

    /// Submit a student's answer; the task's results after judging it.
    pub fn answer(
        &self,
        run: &str,
        student: &str,
        task: &str,
        question: &str,
        value: &str,
    ) -> Value {
        self.json(&["answer", student, task, question, value, "--run", run])
    }

    /// For each check of `student` that passed on events: seconds from the
    /// capture of the latest event its verdict cited to the stored pass.
    pub fn pass_latencies(&self, run: &str, student: &str) -> Vec<(String, f64)> {
        let h = self.json(&["history", student, "--run", run]);
        h["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["status"] == "pass" && r["decided_at"].is_f64())
            .map(|r| {
                (
                    format!(
                        "{}/{}",
                        r["task"].as_str().unwrap(),
                        r["check_id"].as_str().unwrap()
                    ),
                    r["at"].as_f64().unwrap() - r["decided_at"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    /// Poll `applab check` until `student`'s `task`/`check` has `status`
    /// (the results of the continuous loop, forced now and then).
    pub fn wait_status(
        &self,
        run: &str,
        student: &str,
        task: &str,
        check: &str,
        status: &str,
        within: Duration,
    ) -> Results {
        let t = Instant::now();
        loop {
            let r = self.check(run);
            if r.status(student, task, check) == status {
                return r;
            }
            assert!(
                t.elapsed() < within,
                "{student} {task}/{check} is not {status} after {within:?}: {}",
                r.explain(student)
            );
            std::thread::sleep(Duration::from_millis(700));
        }
    }
}

impl Results {
    pub fn student(&self, id: &str) -> &Value {
        self.0
            .as_array()
            .and_then(|a| a.iter().find(|s| s["student"] == id))
            .unwrap_or_else(|| panic!("no results for {id}: {}", self.0))
    }

    pub fn check(&self, student: &str, task: &str, check: &str) -> &Value {
        let s = self.student(student);
        s["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["task"] == task))
            .and_then(|t| t["checks"].as_array())
            .and_then(|cs| cs.iter().find(|c| c["check"] == check))
            .unwrap_or_else(|| panic!("no check {task}/{check} for {student}: {s}"))
    }

    pub fn status(&self, student: &str, task: &str, check: &str) -> String {
        self.check(student, task, check)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every check of a student as `task/check: status (seen)` lines.
    pub fn explain(&self, student: &str) -> String {
        let mut out = String::new();
        for t in self.student(student)["tasks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for c in t["checks"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "\n  {}/{}: {} ({})",
                    t["task"].as_str().unwrap_or(""),
                    c["check"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    c["seen"].as_str().unwrap_or("")
                ));
            }
        }
        out
    }

    /// The exact status of every check of a student, as `(task, check, status)`.
    pub fn assert_exactly(&self, student: &str, want: &[(&str, &str, &str)]) {
        let mut have = Vec::new();
        for t in self.student(student)["tasks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for c in t["checks"].as_array().into_iter().flatten() {
                have.push((
                    t["task"].as_str().unwrap_or("").to_string(),
                    c["check"].as_str().unwrap_or("").to_string(),
                    c["status"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(have, want, "{student}'s results:{}", self.explain(student));
    }

    /// Every check of a student has `status`.
    pub fn assert_all(&self, student: &str, status: &str) {
        let s = self.student(student);
        for t in s["tasks"].as_array().into_iter().flatten() {
            for c in t["checks"].as_array().into_iter().flatten() {
                assert_eq!(
                    c["status"],
                    status,
                    "{student} {}/{}:{}",
                    t["task"],
                    c["check"],
                    self.explain(student)
                );
            }
        }
    }
}
