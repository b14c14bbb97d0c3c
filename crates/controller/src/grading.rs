//! The check loop (DESIGN.md decision 12): results decided continuously
//! from each student's events, their nodes' probes and their answers, and
//! stored with their history.
//!
//! Every event the capture logs is copied here (the capture's hook) and
//! marks the tasks it can change; a loop evaluates marked students within
//! a fraction of a second (the pure evaluator in `applab-checks`) and
//! writes what changed. Probes (`applab-node probe ...` run in a node) are
//! read on a schedule, and soon after a student's traffic, while a task
//! that needs them has not passed; their outputs feed the next evaluation.
//! A result that passed stays passed; `regrade` recomputes from what is
//! still in memory.

use crate::store::{ResultRow, SubmissionRow};
use crate::Controller;
use anyhow::{bail, Context, Result};
use applab_checks::{CheckResult, ProbeOutput, Probes, Status, Submission, TaskResult};
use applab_lab::Lab;
use applab_proto::event::NodeEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a probe runs for a task that has not passed, without traffic.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// After traffic, a probe runs this soon (the state it reads follows the
/// traffic: a message is delivered after its 250).
const PROBE_AFTER_TRAFFIC: Duration = Duration::from_millis(700);
/// At most this often per probe, whatever the traffic.
const PROBE_MIN_GAP: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Evaluations wait this long after an event for the rest of its burst.
const SETTLE: Duration = Duration::from_millis(40);

type Key = (String, String);

/// A stored result changed: what the panel's stream sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub run: String,
    pub student: String,
    pub task: String,
    pub check: String,
    pub status: Status,
    /// The task's verdict after this change (what a class grid shows).
    pub task_status: Status,
    pub seen: String,
    pub at: f64,
    /// Seconds from the event that made the student's checks run to the
    /// result being stored (None when no event started it).
    pub latency: Option<f64>,
}

#[derive(Default)]
struct StudentState {
    events: Vec<NodeEvent>,
    /// Tasks to evaluate again; `all` for every task.
    dirty: BTreeSet<String>,
    all: bool,
    /// When the oldest unevaluated event arrived.
    dirty_since: Option<Instant>,
    probes: Probes,
    probe_last: HashMap<(String, String), Instant>,
    /// When traffic last arrived (probes follow it).
    traffic_at: Option<Instant>,
    /// Tasks stored as passed (their probes need not run again).
    passed: BTreeSet<String>,
    loaded: bool,
    /// What the store holds, read once: the lab, the student's values and
    /// answers, and each check's stored verdict, so an evaluation that
    /// changes nothing touches no database.
    cache: Option<Cached>,
}

struct Cached {
    lab: Arc<Lab>,
    params: BTreeMap<String, String>,
    /// None: read again (a new answer was submitted).
    answers: Option<Vec<Submission>>,
    /// (task, check) → (status, seen, evidence) as stored.
    stored: HashMap<(String, String), (Status, String, String)>,
}

pub struct Grader {
    students: Mutex<HashMap<Key, StudentState>>,
    /// One evaluation at a time per student (it borrows their events).
    locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    wake: tokio::sync::Notify,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Event-to-stored latencies (seconds) of the last results, for status and tests.
    latencies: Mutex<std::collections::VecDeque<f64>>,
    /// Each run's verdicts, kept up to date from the stored changes: the
    /// class grid is asked for often, and reading every row of a class
    /// from the store each time is what it would cost otherwise.
    verdicts: Mutex<Verdicts>,
}

/// A class's verdicts in memory (see [`Grader::verdicts`]).
#[derive(Default)]
struct Verdicts {
    runs: HashMap<String, RunVerdicts>,
    /// Changes seen per run: a load from the store that raced a change is
    /// not kept.
    seen: HashMap<String, u64>,
}

struct RunVerdicts {
    /// (id, name, email) in the store's order.
    students: Vec<(String, String, String)>,
    stored: HashMap<String, HashMap<(String, String), Status>>,
}

impl Default for Grader {
    fn default() -> Self {
        Grader {
            students: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            changes: tokio::sync::broadcast::channel(4096).0,
            latencies: Mutex::new(Default::default()),
            verdicts: Mutex::new(Verdicts::default()),
        }
    }
}

/// A task's results as the API serves them: lab order, points, checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskView {
    pub task: String,
    pub title: String,
    pub status: Status,
    pub points: f64,
    pub max_points: f64,
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub check: String,
    pub status: Status,
    pub expected: String,
    pub seen: String,
    pub evidence: Vec<applab_checks::Evidence>,
    pub first_passed_at: Option<f64>,
    pub updated_at: Option<f64>,
    pub changes: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentResults {
    pub run: String,
    pub student: String,
    pub name: String,
    pub email: String,
    pub tasks: Vec<TaskView>,
    pub points: f64,
    pub max_points: f64,
}

/// The class × task matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Matrix {
    pub run: String,
    pub lab: String,
    pub tasks: Vec<MatrixTask>,
    pub students: Vec<MatrixRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixTask {
    pub id: String,
    pub title: String,
    pub points: f64,
    /// How many students passed it.
    pub passed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixRow {
    pub id: String,
    pub name: String,
    pub email: String,
    /// Per task, in the lab's order.
    pub cells: Vec<Status>,
    pub points: f64,
    pub max_points: f64,
}

impl Grader {
    /// The capture's hook: copy the event and mark what it can change.
    pub fn on_event(&self, run: &str, student: &str, e: &NodeEvent) {
        let mut st = self.students.lock().expect("grader lock");
        let s = st
            .entry((run.to_string(), student.to_string()))
            .or_default();
        s.events.push(e.clone());
        // Bounded as the capture's log is, dropping the oldest in batches.
        if s.events.len() > crate::captures::KEEP_EVENTS + 1000 {
            s.events.drain(..1000);
        }
        s.dirty.insert(format!("type:{}", e.event.kind.type_name()));
        s.dirty_since.get_or_insert_with(Instant::now);
        s.traffic_at = Some(Instant::now());
        drop(st);
        self.wake.notify_one();
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Forget a student (teardown); their stored results go with them.
    /// The class changed (students added or removed): the next matrix is
    /// read from the store again.
    pub fn roster_changed(&self, run: &str) {
        let mut v = self.verdicts.lock().expect("verdicts");
        v.runs.remove(run);
        *v.seen.entry(run.to_string()).or_default() += 1;
    }

    /// A stored verdict, into the class's copy.
    fn verdict_stored(&self, run: &str, student: &str, task: &str, check: &str, status: Status) {
        let mut v = self.verdicts.lock().expect("verdicts");
        *v.seen.entry(run.to_string()).or_default() += 1;
        if let Some(r) = v.runs.get_mut(run) {
            r.stored
                .entry(student.to_string())
                .or_default()
                .insert((task.to_string(), check.to_string()), status);
        }
    }

    pub fn forget(&self, run: &str, student: Option<&str>) {
        self.roster_changed(run);
        let gone = |(r, s): &Key| r == run && student.is_none_or(|x| x == s);
        self.students
            .lock()
            .expect("grader lock")
            .retain(|k, _| !gone(k));
        self.locks
            .lock()
            .expect("grader locks")
            .retain(|k, _| !gone(k));
    }

    fn mark_all(&self, run: &str, student: &str) {
        let mut st = self.students.lock().expect("grader lock");
        let s = st
            .entry((run.to_string(), student.to_string()))
            .or_default();
        s.all = true;
        drop(st);
        self.wake.notify_one();
    }

    /// The last results' event-to-stored latencies, in seconds.
    pub fn latencies(&self) -> Vec<f64> {
        self.latencies
            .lock()
            .expect("latencies")
            .iter()
            .copied()
            .collect()
    }
}

fn result_row(
    run: &str,
    student: &str,
    task: &str,
    c: &CheckResult,
    evidence: String,
    at: f64,
) -> ResultRow {
    ResultRow {
        run: run.into(),
        student: student.into(),
        task: task.into(),
        check_id: c.check.clone(),
        status: c.status.as_str().into(),
        expected: c.expected.clone(),
        seen: c.seen.clone(),
        evidence,
        first_passed_at: None,
        updated_at: at,
        changes: 0,
    }
}

/// Tasks whose checks read events of the dirty types (`type:NAME`) or are
/// named outright.
fn dirty_tasks(lab: &Lab, dirty: &BTreeSet<String>, all: bool) -> Vec<String> {
    if all {
        return lab.tasks.iter().map(|t| t.id.clone()).collect();
    }
    let mut out = BTreeSet::new();
    for d in dirty {
        match d.strip_prefix("type:") {
            Some(ty) => out.extend(
                applab_checks::tasks_touched_by(lab, ty)
                    .into_iter()
                    .map(|t| t.id.clone()),
            ),
            None => {
                out.insert(d.clone());
            }
        }
    }
    lab.tasks
        .iter()
        .filter(|t| out.contains(&t.id))
        .map(|t| t.id.clone())
        .collect()
}

impl Controller {
    /// Have every event the capture logs reach the check engine. Called
    /// before the taps start, so no event is missed.
    pub fn install_grader(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.captures.set_hook(Arc::new(move |run, student, e| {
            if let Some(c) = me.upgrade() {
                c.grader.on_event(run, student, e);
            }
        }));
    }

    /// The check loop: evaluate marked students, run due probes.
    pub async fn grade_loop(self: Arc<Self>) {
        let probing = Arc::new(tokio::sync::Semaphore::new(4));
        let mut last_probe_pass = Instant::now() - PROBE_EVERY;
        loop {
            tokio::select! {
                _ = self.grader.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            tokio::time::sleep(SETTLE).await;
            if let Err(e) = self.grade_dirty(false).await {
                tracing::warn!("check pass failed: {e:#}");
            }
            if last_probe_pass.elapsed() >= Duration::from_millis(250) {
                last_probe_pass = Instant::now();
                self.clone().probe_due(probing.clone(), false).await;
            }
        }
    }

    /// Evaluate every student with something marked.
    async fn grade_dirty(&self, regrade: bool) -> Result<()> {
        let keys: Vec<Key> = {
            let st = self.grader.students.lock().expect("grader lock");
            st.iter()
                .filter(|(_, s)| s.all || !s.dirty.is_empty() || !s.loaded)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for (run, student) in keys {
            if let Err(e) = self.grade_student(&run, &student, regrade).await {
                tracing::debug!(run, student, "not graded: {e:#}");
                // A student gone from the store: stop tracking them.
                if self.store.student(&run, &student).await?.is_none() {
                    self.grader.forget(&run, Some(&student));
                }
            }
        }
        Ok(())
    }

    /// Evaluate one student's marked tasks now and store what changed.
    pub async fn grade_student(&self, run: &str, student: &str, regrade: bool) -> Result<()> {
        let lock = self
            .grader
            .locks
            .lock()
            .expect("grader locks")
            .entry((run.to_string(), student.to_string()))
            .or_default()
            .clone();
        let _one = lock.lock().await;
        let key = (run.to_string(), student.to_string());
        let cached = self
            .grader
            .students
            .lock()
            .expect("grader lock")
            .get_mut(&key)
            .and_then(|s| s.cache.take());
        let mut cache = match cached {
            Some(c) => c,
            None => {
                let run_row = self.store.run(run).await?.context("no such run")?;
                let row = self
                    .store
                    .student(run, student)
                    .await?
                    .context("no such student")?;
                let lab = self.lab(&run_row)?;
                let params = applab_lab::params::for_student(&lab, &run_row.secret, &row.id);
                let stored = self
                    .store
                    .results(run, Some(student))
                    .await?
                    .into_iter()
                    .map(|r| {
                        let st = Status::parse(&r.status).unwrap_or(Status::Error);
                        ((r.task, r.check_id), (st, r.seen, r.evidence))
                    })
                    .collect();
                Cached {
                    lab,
                    params,
                    answers: None,
                    stored,
                }
            }
        };
        if cache.answers.is_none() {
            let rows = self.store.submissions(run, student).await?;
            cache.answers = Some(
                rows.into_iter()
                    .map(|s| Submission {
                        task: s.task,
                        question: s.question,
                        value: s.value,
                        time: s.at,
                    })
                    .collect(),
            );
        }
        let lab = cache.lab.clone();
        let params = cache.params.clone();
        let answers = cache.answers.clone().unwrap_or_default();
        let names = self.captures.names_snapshot(run, student);
        // Take the marks and a view of the events; evaluate outside the lock.
        let (tasks, events, probes, since) = {
            let mut st = self.grader.students.lock().expect("grader lock");
            let s = st
                .entry((run.to_string(), student.to_string()))
                .or_default();
            let first = !s.loaded;
            s.loaded = true;
            let tasks = dirty_tasks(&lab, &s.dirty, s.all || first || regrade);
            s.dirty.clear();
            s.all = false;
            // Events logged before the nodes' addresses were known.
            for e in s
                .events
                .iter_mut()
                .filter(|e| e.client_node.is_none() || e.server_node.is_none())
            {
                if e.client_node.is_none() {
                    e.client_node = names.get(&e.event.client.ip()).cloned();
                }
                if e.server_node.is_none() {
                    e.server_node = names.get(&e.event.server.ip()).cloned();
                }
            }
            let since = s.dirty_since.take();
            (
                tasks,
                std::mem::take(&mut s.events),
                s.probes.clone(),
                since,
            )
        };
        let lab2 = lab.clone();
        let (events, results) = tokio::task::spawn_blocking(move || {
            let input = applab_checks::Input {
                lab: &lab2,
                params: &params,
                events: &events,
                probes: &probes,
                answers: &answers,
            };
            let results: Vec<TaskResult> = lab2
                .tasks
                .iter()
                .filter(|t| tasks.contains(&t.id))
                .map(|t| applab_checks::evaluate_task(&input, t))
                .collect();
            (events, results)
        })
        .await?;
        {
            // Put the events back, ahead of those logged meanwhile.
            let mut st = self.grader.students.lock().expect("grader lock");
            let s = st
                .entry((run.to_string(), student.to_string()))
                .or_default();
            let newer = std::mem::replace(&mut s.events, events);
            s.events.extend(newer);
        }
        let at = crate::store::now_f();
        // What changed, written in one transaction.
        let mut rows = Vec::new();
        for t in &results {
            for c in &t.checks {
                let k = (t.task.clone(), c.check.clone());
                let evidence = serde_json::to_string(&c.evidence).unwrap_or_else(|_| "[]".into());
                match cache.stored.get(&k) {
                    // A pass stays a pass, with the evidence that first
                    // decided it (until a regrade).
                    Some((Status::Pass, _, _)) if !regrade => continue,
                    Some((st, seen, ev))
                        if *st == c.status && *seen == c.seen && *ev == evidence =>
                    {
                        continue
                    }
                    _ => {}
                }
                let row = result_row(run, student, &t.task, c, evidence.clone(), at);
                let decided_at = c.evidence.iter().filter_map(|e| e.time).reduce(f64::max);
                cache.stored.insert(k, (c.status, c.seen.clone(), evidence));
                rows.push(((row, decided_at), c.status, c.seen.clone()));
            }
        }
        let batch: Vec<(ResultRow, Option<f64>)> = rows.iter().map(|(r, _, _)| r.clone()).collect();
        let wrote = if batch.is_empty() {
            Vec::new()
        } else {
            self.store.put_results(&batch, regrade).await?
        };
        let latency = since.map(|s| s.elapsed().as_secs_f64());
        for (((row, _), status, seen), wrote) in rows.into_iter().zip(wrote) {
            if !wrote {
                continue;
            }
            if let Some(l) = latency {
                let mut ls = self.grader.latencies.lock().expect("latencies");
                ls.push_back(l);
                while ls.len() > 10_000 {
                    ls.pop_front();
                }
            }
            tracing::info!(run, student, task = %row.task, check = %row.check_id, status = status.as_str(), "check result");
            let task_status = lab
                .tasks
                .iter()
                .find(|t| t.id == row.task)
                .map(|t| {
                    applab_checks::task_status(t.checks.iter().map(|c| {
                        cache
                            .stored
                            .get(&(t.id.clone(), c.id.clone()))
                            .map(|(s, _, _)| *s)
                            .unwrap_or(Status::Pending)
                    }))
                })
                .unwrap_or(status);
            self.grader
                .verdict_stored(run, student, &row.task, &row.check_id, status);
            let _ = self.grader.changes.send(Change {
                run: run.into(),
                student: student.into(),
                task: row.task,
                check: row.check_id,
                status,
                task_status,
                seen,
                at,
                latency,
            });
        }
        // Tasks stored as passed need no more probes.
        let passed: BTreeSet<String> = lab
            .tasks
            .iter()
            .filter(|t| {
                !t.checks.is_empty()
                    && t.checks.iter().all(|c| {
                        matches!(
                            cache.stored.get(&(t.id.clone(), c.id.clone())),
                            Some((Status::Pass, _, _))
                        )
                    })
            })
            .map(|t| t.id.clone())
            .collect();
        if let Some(s) = self
            .grader
            .students
            .lock()
            .expect("grader lock")
            .get_mut(&key)
        {
            s.passed = passed;
            s.cache = Some(cache);
        }
        Ok(())
    }

    /// Run the probes that are due (all of them, now, when `force`).
    async fn probe_due(self: Arc<Self>, slots: Arc<tokio::sync::Semaphore>, force: bool) {
        let runs = match self.store.runs().await {
            Ok(r) => r,
            Err(_) => return,
        };
        let mut jobs = Vec::new();
        for run in runs {
            let Ok(lab) = self.lab(&run) else { continue };
            let wanted = applab_checks::probes_of(&lab);
            if wanted.is_empty() {
                continue;
            }
            let Ok(students) = self.store.students(&run.name).await else {
                continue;
            };
            let phases = self.phases(&run.name);
            for s in students {
                // A topology still being set up has nothing to probe yet;
                // an exec into it would only load the engine during a launch.
                if phases.get(&s.id).map(|p| p.phase) != Some(crate::Phase::Ready) && !force {
                    continue;
                }
                let stopped = self
                    .store
                    .stopped(&run.name, &s.id)
                    .await
                    .unwrap_or_default();
                let mut st = self.grader.students.lock().expect("grader lock");
                let g = st.entry((run.name.clone(), s.id.clone())).or_default();
                for ((node, probe), tasks) in &wanted {
                    if tasks.iter().all(|t| g.passed.contains(t)) || stopped.contains(node) {
                        continue;
                    }
                    let key = (node.clone(), probe.clone());
                    let last = g.probe_last.get(&key).copied();
                    let due = force
                        || match last {
                            None => true,
                            Some(l) => {
                                l.elapsed() >= PROBE_EVERY
                                    || (l.elapsed() >= PROBE_MIN_GAP
                                        && g.traffic_at.is_some_and(|t| {
                                            t > l && t.elapsed() >= PROBE_AFTER_TRAFFIC
                                        }))
                            }
                        };
                    if due {
                        g.probe_last.insert(key.clone(), Instant::now());
                        jobs.push((run.name.clone(), s.id.clone(), key, tasks.clone()));
                    }
                }
            }
        }
        let mut handles = Vec::new();
        for (run, student, (node, probe), tasks) in jobs {
            let me = self.clone();
            let slots = slots.clone();
            handles.push(tokio::spawn(async move {
                let _p = slots.acquire().await;
                let out = me.run_probe(&run, &student, &node, &probe).await;
                let mut st = me.grader.students.lock().expect("grader lock");
                let g = st.entry((run.clone(), student.clone())).or_default();
                let changed = g.probes.get(&(node.clone(), probe.clone())) != Some(&out);
                if changed {
                    g.probes.insert((node, probe), out);
                    g.dirty.extend(tasks);
                    drop(st);
                    me.grader.wake.notify_one();
                }
            }));
        }
        if force {
            for h in handles {
                let _ = h.await;
            }
        }
    }

    /// One probe in one node: its JSON, or why there is none.
    async fn run_probe(&self, run: &str, student: &str, node: &str, probe: &str) -> ProbeOutput {
        let cmd: Vec<String> = ["applab-node", "probe", probe]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = tokio::time::timeout(PROBE_TIMEOUT, self.exec(run, student, node, &cmd)).await;
        match r {
            Err(_) => ProbeOutput::Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
            Ok(Err(e)) => ProbeOutput::Err(format!("{e:#}")),
            Ok(Ok(out)) if out.exit_code != 0 => ProbeOutput::Err(format!(
                "exit code {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(Ok(out)) => match serde_json::from_slice(&out.stdout) {
                Ok(v) => ProbeOutput::Ok(v),
                Err(e) => ProbeOutput::Err(format!("not JSON: {e}")),
            },
        }
    }

    /// Evaluate now (probes first): every student of the run, or one.
    /// `regrade` recomputes results that had passed, from what is still there.
    pub async fn check_now(
        self: &Arc<Self>,
        run: &str,
        student: Option<&str>,
        regrade: bool,
    ) -> Result<Vec<StudentResults>> {
        let students = self.student_ids(run, student).await?;
        for s in &students {
            self.grader.mark_all(run, s);
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(4));
        self.clone().probe_due(slots, true).await;
        for s in &students {
            self.grade_student(run, s, regrade).await?;
        }
        let mut out = Vec::new();
        for s in &students {
            out.push(self.results(run, s).await?);
        }
        Ok(out)
    }

    /// A student's stored results, in the lab's order.
    pub async fn results(&self, run: &str, student: &str) -> Result<StudentResults> {
        let run_row = self.store.run(run).await?.context("no such run")?;
        let row = self.student_or_err(run, student).await?;
        let lab = self.lab(&run_row)?;
        let stored = self.store.results(run, Some(student)).await?;
        let params = applab_lab::params::for_student(&lab, &run_row.secret, &row.id);
        Ok(student_results(&lab, run, &row, &params, &stored))
    }

    /// Every student × every task. Only verdicts are read (no evidence, no
    /// parameters, no texts): the class grid asks for this on every load.
    pub async fn matrix(&self, run: &str) -> Result<Matrix> {
        let run_row = self.store.run(run).await?.context("no such run")?;
        let lab = self.lab(&run_row)?;
        let local = self.load_verdicts(run).await?;
        let v = self.grader.verdicts.lock().expect("verdicts");
        let Some(class) = local.as_ref().or_else(|| v.runs.get(run)) else {
            bail!("the verdicts of run {run} changed while loading; ask again");
        };
        let mut rows = Vec::new();
        let mut passed = vec![0usize; lab.tasks.len()];
        let max_points: f64 = lab.tasks.iter().map(|t| t.points).sum();
        let none = HashMap::new();
        for (id, name, email) in &class.students {
            let mine = class.stored.get(id).unwrap_or(&none);
            let cells: Vec<Status> = lab
                .tasks
                .iter()
                .map(|t| {
                    // The same rule as a student's own results.
                    applab_checks::task_status(t.checks.iter().map(|c| {
                        mine.get(&(t.id.clone(), c.id.clone()))
                            .copied()
                            .unwrap_or(Status::Pending)
                    }))
                })
                .collect();
            let mut points = 0.0;
            for (i, (c, t)) in cells.iter().zip(&lab.tasks).enumerate() {
                if *c == Status::Pass {
                    passed[i] += 1;
                    points += t.points;
                }
            }
            rows.push(MatrixRow {
                id: id.clone(),
                name: name.clone(),
                email: email.clone(),
                cells,
                points,
                max_points,
            });
        }
        Ok(Matrix {
            run: run.into(),
            lab: lab.name.clone(),
            tasks: lab
                .tasks
                .iter()
                .zip(passed)
                .map(|(t, passed)| MatrixTask {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    points: t.points,
                    passed,
                })
                .collect(),
            students: rows,
        })
    }

    /// Read a run's verdicts from the store unless they are in memory. A
    /// load that raced a change is not kept (the change may be missing from
    /// it) and is tried again; after three, it is used once, uncached.
    async fn load_verdicts(&self, run: &str) -> Result<Option<RunVerdicts>> {
        for attempt in 0..3 {
            let seen = {
                let v = self.grader.verdicts.lock().expect("verdicts");
                if v.runs.contains_key(run) {
                    return Ok(None);
                }
                v.seen.get(run).copied().unwrap_or(0)
            };
            let students: Vec<(String, String, String)> = self
                .store
                .students(run)
                .await?
                .into_iter()
                .map(|s| (s.id, s.name, s.email))
                .collect();
            let mut stored: HashMap<String, HashMap<(String, String), Status>> = HashMap::new();
            for (student, task, check, status) in self.store.result_statuses(run).await? {
                stored.entry(student).or_default().insert(
                    (task, check),
                    Status::parse(&status).unwrap_or(Status::Error),
                );
            }
            let class = RunVerdicts { students, stored };
            let mut v = self.grader.verdicts.lock().expect("verdicts");
            if v.seen.get(run).copied().unwrap_or(0) == seen {
                v.runs.insert(run.to_string(), class);
                return Ok(None);
            }
            if attempt == 2 {
                return Ok(Some(class));
            }
        }
        Ok(None)
    }

    /// Keep a student's answer, judge it now, return the task's results.
    pub async fn answer(
        &self,
        run: &str,
        student: &str,
        task: &str,
        question: &str,
        value: &str,
    ) -> Result<TaskView> {
        let run_row = self.store.run(run).await?.context("no such run")?;
        self.student_or_err(run, student).await?;
        let lab = self.lab(&run_row)?;
        let Some(t) = lab.tasks.iter().find(|t| t.id == task) else {
            bail!("lab {} has no task {task:?}", lab.name);
        };
        if !t.questions.iter().any(|q| q.id == question) {
            let ids: Vec<&str> = t.questions.iter().map(|q| q.id.as_str()).collect();
            bail!(
                "task {task:?} has no question {question:?} (its questions: {})",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            );
        }
        if value.len() > 200 {
            bail!("an answer is at most 200 characters");
        }
        self.store
            .add_submission(
                run,
                &SubmissionRow {
                    student: student.into(),
                    task: task.into(),
                    question: question.into(),
                    value: value.trim().into(),
                    at: crate::store::now_f(),
                },
            )
            .await?;
        {
            let mut st = self.grader.students.lock().expect("grader lock");
            let g = st
                .entry((run.to_string(), student.to_string()))
                .or_default();
            g.dirty.insert(task.to_string());
            if let Some(c) = g.cache.as_mut() {
                c.answers = None;
            }
        }
        self.grade_student(run, student, false).await?;
        let res = self.results(run, student).await?;
        res.tasks
            .into_iter()
            .find(|t| t.task == task)
            .context("the task's results")
    }
}

/// Results rows laid out in the lab's order, pending where nothing is stored.
pub fn student_results(
    lab: &Lab,
    run: &str,
    s: &crate::store::StudentRow,
    params: &BTreeMap<String, String>,
    stored: &[ResultRow],
) -> StudentResults {
    let by: BTreeMap<(&str, &str), &ResultRow> = stored
        .iter()
        .map(|r| ((r.task.as_str(), r.check_id.as_str()), r))
        .collect();
    let mut tasks = Vec::new();
    let (mut points, mut max_points) = (0.0, 0.0);
    for t in &lab.tasks {
        let checks: Vec<CheckView> = t
            .checks
            .iter()
            .map(|c| match by.get(&(t.id.as_str(), c.id.as_str())) {
                Some(r) => CheckView {
                    check: c.id.clone(),
                    status: Status::parse(&r.status).unwrap_or(Status::Error),
                    expected: r.expected.clone(),
                    seen: r.seen.clone(),
                    evidence: serde_json::from_str(&r.evidence).unwrap_or_default(),
                    first_passed_at: r.first_passed_at,
                    updated_at: Some(r.updated_at),
                    changes: r.changes,
                },
                None => CheckView {
                    check: c.id.clone(),
                    status: Status::Pending,
                    expected: applab_lab::template::render(&c.expect, params)
                        .unwrap_or_else(|_| c.expect.clone()),
                    seen: "not checked yet".into(),
                    evidence: Vec::new(),
                    first_passed_at: None,
                    updated_at: None,
                    changes: 0,
                },
            })
            .collect();
        let status = applab_checks::task_status(checks.iter().map(|c| c.status));
        let earned = if status == Status::Pass {
            t.points
        } else {
            0.0
        };
        points += earned;
        max_points += t.points;
        tasks.push(TaskView {
            task: t.id.clone(),
            title: t.title.clone(),
            status,
            points: earned,
            max_points: t.points,
            checks,
        });
    }
    StudentResults {
        run: run.into(),
        student: s.id.clone(),
        name: s.name.clone(),
        email: s.email.clone(),
        tasks,
        points,
        max_points,
    }
}
