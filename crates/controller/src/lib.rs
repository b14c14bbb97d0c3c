//! The controller: desired state in the store, reconciled through the runtime.
//!
//! Verbs (launch, reset, stop, start, teardown) only write the store and
//! wake the reconciler; the reconciler compares each student's plan with
//! what the engine's labels say exists and repairs the difference. That is
//! why `launch` can be repeated after any crash: nothing is duplicated
//! (deterministic names, labels, stored subnets) and nothing is orphaned
//! (labelled objects without a student in the store are collected).

pub mod captures;
pub mod converge;
pub mod credentials;
pub mod grades;
pub mod grading;
pub mod images;
pub mod links;
pub mod plan;
pub mod problem;

use problem::Problem;
pub mod api;
mod reconcile;
pub mod roster;
pub mod state;
pub mod store;

use anyhow::{bail, Context, Result};
use applab_lab::Lab;
use applab_runtime::{ExecOutput, Runtime};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Store, StudentRow};

pub use reconcile::{NodeStatus, RunStatus, StudentStatus, Topology, TopologyLink};
pub use state::{NodeState, Phase, Progress, StudentState};

#[derive(Debug, Clone)]
pub struct Config {
    /// Store, lab snapshots and the instructor token live here.
    pub data_dir: PathBuf,
    /// Subnets for student networks are cut from this pool.
    pub pool: Ipv4Net,
    /// Prefix length of one student network.
    pub prefix: u8,
    /// Students converged at once.
    pub parallel: usize,
    /// How often every topology is compared with its plan.
    pub interval: Duration,
    pub sources: images::Sources,
    /// Bytes of pcap kept per student network (a ring of files).
    pub capture_bytes: u64,
}

/// A credential handed out once, in plain text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    pub run: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// One run as `GET /api/runs` lists it (the CLI reads the same type).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub name: String,
    pub lab: String,
    pub students: usize,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchResult {
    pub run: String,
    pub lab: String,
    /// Students new to the run, with their one-time credentials.
    pub added: Vec<Credential>,
    /// Students already in the run, left untouched.
    pub kept: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialInfo {
    pub id: String,
    pub name: String,
    pub email: String,
    pub issued_at: i64,
}

/// (run, student id).
type StudentKey = (String, String);

pub struct Controller {
    pub cfg: Config,
    /// Labels every object this controller makes (`applab.instance`).
    pub instance: String,
    pub store: Store,
    pub rt: Arc<dyn Runtime>,
    /// Taps on every student network and what they recorded.
    pub captures: captures::Captures,
    /// Delay, rate and loss on the lab's links, and their measured traffic.
    pub shaper: Arc<applab_shaping::Shaper>,
    /// The check engine's state: each student's events, probes, marks.
    pub grader: grading::Grader,
    images: tokio::sync::Mutex<BTreeMap<String, images::Image>>,
    labs: Mutex<HashMap<String, Arc<Lab>>>,
    locks: Mutex<HashMap<StudentKey, Arc<tokio::sync::Mutex<()>>>>,
    progress: Mutex<HashMap<StudentKey, Progress>>,
    /// When each student's topology was last converged.
    touched: Mutex<HashMap<StudentKey, std::time::Instant>>,
    wake: tokio::sync::Notify,
    /// Held by a garbage collection: a teardown's and the reconcile
    /// loop's at the same time would each ask the engine to remove the
    /// same objects (twice the engine's work, and networks refused while
    /// the other's containers are still going).
    collecting: tokio::sync::Mutex<()>,
    /// (container id, port) → when it last answered a status's probe.
    health: Mutex<HashMap<(String, u16), std::time::Instant>>,
    slots: tokio::sync::Semaphore,
}

/// This data folder's instance id, made once.
fn instance_id(data: &std::path::Path) -> Result<String> {
    let p = data.join("instance");
    if let Ok(s) = std::fs::read_to_string(&p) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let id = hex::encode(rand::random::<[u8; 8]>());
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::rename(&tmp, &p)?;
    Ok(id)
}

/// A lab folder as the tar `launch` takes (symlinks followed: a lab may
/// share content with another).
pub fn pack_lab(dir: &std::path::Path) -> Result<Vec<u8>> {
    let mut tb = tar::Builder::new(Vec::new());
    tb.follow_symlinks(true);
    tb.append_dir_all(".", dir)
        .with_context(|| format!("packing the lab folder {}", dir.display()))?;
    Ok(tb.into_inner()?)
}

/// Run names become part of engine object names.
pub fn valid_run_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 24
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

impl Controller {
    pub async fn new(cfg: Config, rt: Arc<dyn Runtime>) -> Result<Arc<Controller>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let store = Store::open(&cfg.data_dir.join("applab.db")).await?;
        let instance = instance_id(&cfg.data_dir)?;
        let inst = instance.clone();
        let shaper = Arc::new(
            tokio::task::spawn_blocking(move || applab_shaping::Shaper::new(&inst)).await?,
        );
        // The links' traffic is sampled every second, so the status shows
        // the last window's utilization whenever it is asked.
        let sampler = Arc::downgrade(&shaper);
        std::thread::Builder::new()
            .name("link-sampler".into())
            .spawn(move || {
                while let Some(s) = sampler.upgrade() {
                    s.sample();
                    drop(s);
                    std::thread::sleep(Duration::from_secs(1));
                }
            })?;
        Ok(Arc::new(Controller {
            shaper,
            grader: grading::Grader::default(),
            captures: captures::Captures::new(cfg.data_dir.join("captures"), cfg.capture_bytes),
            instance,
            slots: tokio::sync::Semaphore::new(cfg.parallel.max(1)),
            cfg,
            store,
            rt,
            images: tokio::sync::Mutex::new(BTreeMap::new()),
            labs: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            collecting: tokio::sync::Mutex::new(()),
            health: Mutex::new(HashMap::new()),
        }))
    }

    /// The reconcile loop: every interval, or at once when a verb wakes it.
    pub async fn run_loop(self: Arc<Self>) {
        loop {
            if let Err(e) = self.reconcile_all().await {
                tracing::warn!("reconcile pass failed: {e:#}");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.interval) => {},
                _ = self.wake.notified() => {},
            }
        }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn lab_dir(&self, run: &str) -> PathBuf {
        self.cfg.data_dir.join("runs").join(run).join("lab")
    }

    /// The lab of a run, from its snapshot (cached).
    pub fn lab(&self, run: &store::RunRow) -> Result<Arc<Lab>> {
        if let Some(l) = self.labs.lock().expect("labs lock").get(&run.name) {
            return Ok(l.clone());
        }
        let lab = Lab::load(std::path::Path::new(&run.lab_dir)).map_err(|d| {
            anyhow::anyhow!("lab snapshot of run {} no longer validates:\n{d}", run.name)
        })?;
        let lab = Arc::new(lab);
        self.labs
            .lock()
            .expect("labs lock")
            .insert(run.name.clone(), lab.clone());
        Ok(lab)
    }

    /// The images for the current binaries (built if their digest is new).
    pub async fn images(&self) -> Result<BTreeMap<String, images::Image>> {
        let mut cache = self.images.lock().await;
        if cache.is_empty() {
            if let Some(m) = &self.cfg.sources.manifest {
                *cache = images::from_manifest(self.rt.as_ref(), m).await?;
                return Ok(cache.clone());
            }
            let roles: Vec<String> = applab_lab::Role::ALL
                .iter()
                .map(|r| r.name().to_string())
                .collect();
            *cache = images::ensure(self.rt.as_ref(), &self.cfg.sources, &roles, &|p| {
                if let images::Progress::Done { image } = p {
                    tracing::info!(role = %image.role, tag = %image.tag, built = image.built, "image ready");
                }
            })
            .await?;
        }
        Ok(cache.clone())
    }

    /// Create the run if new (snapshotting its lab from a tar of the lab
    /// folder) and add the roster's students that are not in it yet.
    pub async fn launch(
        &self,
        run: &str,
        lab_tar: &[u8],
        roster: &[roster::Entry],
    ) -> Result<LaunchResult> {
        if !valid_run_name(run) {
            bail!("bad run name {run:?}: 1-24 of a-z, 0-9 and '-'");
        }
        for e in roster {
            if !roster::valid_id(&e.id) {
                bail!("bad student id {:?}", e.id);
            }
        }
        let run_row = match self.store.run(run).await? {
            Some(r) => r,
            None => {
                let dir = self.lab_dir(run);
                let staging = dir.with_extension("new");
                let _ = std::fs::remove_dir_all(&staging);
                std::fs::create_dir_all(&staging)?;
                tar::Archive::new(lab_tar)
                    .unpack(&staging)
                    .context("unpacking the lab")?;
                let lab = Lab::load(&staging).map_err(|d| anyhow::anyhow!("{d}"))?;
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::rename(&staging, &dir)?;
                let secret: [u8; 32] = rand::random();
                self.store
                    .create_run(run, &lab.name, &dir.to_string_lossy(), &secret)
                    .await?
            }
        };
        let lab = self.lab(&run_row)?;
        self.images().await?;
        let mut kept = 0;
        let mut new = Vec::new();
        for e in roster {
            if self.store.student(run, &e.id).await?.is_some() {
                kept += 1;
            } else {
                new.push(e.clone());
            }
        }
        // Students first, so their topologies start at once; credentials are
        // hashed meanwhile (Argon2 is slow on purpose). Until its hash is
        // stored a student's empty hash matches no password; after a crash
        // in between, `credentials --reissue` hands out new ones.
        let now = store::now();
        let rows: Vec<StudentRow> = new
            .iter()
            .map(|e| StudentRow {
                run: run.to_string(),
                id: e.id.clone(),
                name: e.name.clone(),
                email: e.email.clone(),
                password_hash: String::new(),
                issued_at: now,
                generation: 1,
                added_at: now,
            })
            .collect();
        let mut fresh = Vec::new();
        for (e, is_new) in new.into_iter().zip(self.store.add_students(&rows).await?) {
            if is_new {
                fresh.push(e);
            } else {
                kept += 1;
            }
        }
        self.grader.roster_changed(run);
        self.wake();
        let hashed = credentials::issue_in_background(fresh).await?;
        let mut added = Vec::new();
        for (e, password, hash) in hashed {
            self.store.set_password(run, &e.id, &hash).await?;
            added.push(Credential {
                run: run.to_string(),
                id: e.id,
                name: e.name,
                email: e.email,
                password,
            });
        }
        Ok(LaunchResult {
            run: run.to_string(),
            lab: lab.name.clone(),
            added,
            kept,
        })
    }

    /// The one run when `name` is not given and exactly one exists.
    pub async fn resolve_run(&self, name: Option<&str>) -> Result<store::RunRow> {
        match name {
            Some(n) => self
                .store
                .run(n)
                .await?
                .ok_or_else(|| Problem::NotFound(format!("no run named {n:?}")).into()),
            None => {
                let mut runs = self.store.runs().await?;
                match runs.len() {
                    0 => Err(Problem::NotFound("no run exists; launch one first".into()).into()),
                    1 => Ok(runs.remove(0)),
                    _ => Err(Problem::Invalid(format!(
                        "several runs exist ({}); choose one with --run (or `applab use RUN`)",
                        runs.iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into()),
                }
            }
        }
    }

    pub(crate) async fn student_or_err(&self, run: &str, id: &str) -> Result<StudentRow> {
        self.store
            .student(run, id)
            .await?
            .ok_or_else(|| Problem::NotFound(format!("no student {id:?} in run {run:?}")).into())
    }

    /// One student of the run (checked to be in it), or all of them.
    pub(crate) async fn student_ids(
        &self,
        run: &str,
        student: Option<&str>,
    ) -> Result<Vec<String>> {
        Ok(match student {
            Some(s) => vec![self.student_or_err(run, s).await?.id],
            None => self
                .store
                .students(run)
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect(),
        })
    }

    /// Recreate a student's topology from scratch: new containers and empty state.
    pub async fn reset(&self, run: &str, student: &str) -> Result<()> {
        self.student_or_err(run, student).await?;
        self.store.bump_generation(run, student).await?;
        self.converge(run, student).await
    }

    pub async fn set_node_running(
        &self,
        run: &str,
        student: &str,
        node: &str,
        running: bool,
    ) -> Result<()> {
        let r = self.store.run(run).await?.context("no such run")?;
        if self.lab(&r)?.node(node).is_none() {
            bail!("lab {} has no node {node:?}", r.lab_name);
        }
        self.student_or_err(run, student).await?;
        self.store.set_stopped(run, student, node, !running).await?;
        self.converge(run, student).await
    }

    /// Remove a student (or the whole run) and every engine object of theirs.
    pub async fn teardown(&self, run: &str, student: Option<&str>) -> Result<()> {
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        // A student's lock is held to the end: no converge recreates what
        // is being removed.
        let (_held, prefix) = match student {
            Some(s) => {
                self.student_or_err(run, s).await?;
                let held = self.lock_for(run, s).lock_owned().await;
                self.store.delete_student(run, s).await?;
                (Some(held), format!("{run}/{s}/"))
            }
            None => {
                self.store.delete_run(run).await?;
                (None, format!("{run}/"))
            }
        };
        self.captures.forget(run, student);
        self.grader.forget(run, student);
        let forget_ms = ms(t0);
        self.forget_links(&prefix).await;
        let links_ms = ms(t0) - forget_ms;
        if student.is_none() {
            self.labs.lock().expect("labs lock").remove(run);
        }
        self.collect(Some(run)).await?;
        if student.is_none() {
            let _ = std::fs::remove_dir_all(self.cfg.data_dir.join("runs").join(run));
        }
        // Where a teardown's time goes (RUST_LOG=applab_controller=debug).
        tracing::debug!(
            run,
            student,
            forget_ms,
            links_ms,
            engine_ms = ms(t0) - forget_ms - links_ms,
            "torn down"
        );
        Ok(())
    }

    pub async fn exec(
        &self,
        run: &str,
        student: &str,
        node: &str,
        cmd: &[String],
    ) -> Result<ExecOutput> {
        let c = self.own_container(run, student, node).await?;
        Ok(self.rt.exec(&c.id, cmd).await?)
    }

    /// A student's container of one node, if this controller made it
    /// (never another controller's that happens to share the name).
    async fn own_container(
        &self,
        run: &str,
        student: &str,
        node: &str,
    ) -> Result<applab_runtime::ContainerInfo> {
        self.student_or_err(run, student).await?;
        let name = plan::object_name(run, student, node);
        let c = self
            .rt
            .inspect_container(&name)
            .await
            .with_context(|| format!("no node {node:?} for {student} (not there yet?)"))?;
        if c.labels.get(plan::INSTANCE) != Some(&self.instance) {
            bail!("container {name} does not belong to this controller");
        }
        Ok(c)
    }

    /// The node a student works from (the lab's first workstation).
    pub fn workstation(lab: &Lab) -> Option<&applab_lab::Node> {
        lab.nodes
            .iter()
            .find(|n| n.role == applab_lab::Role::Workstation)
    }

    /// A login shell on the student's workstation, with a TTY: the panel's
    /// console. Only ever the workstation of that student (the panel has no
    /// way to name another node).
    /// `session` names it (hex digits) for [`Controller::close_console`].
    pub async fn open_console(
        &self,
        run: &str,
        student: &str,
        session: &str,
        cols: u16,
        rows: u16,
    ) -> Result<applab_runtime::Tty> {
        if session.is_empty() || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("a console session is named by hex digits");
        }
        let r = self.store.run(run).await?.context("no such run")?;
        let lab = self.lab(&r)?;
        let ws = Self::workstation(&lab)
            .with_context(|| format!("lab {} has no workstation", lab.name))?;
        let c = self.own_container(run, student, &ws.name).await?;
        if c.state != applab_runtime::ContainerState::Running {
            bail!("your workstation ({}) is not running", ws.name);
        }
        // The shell notes its pid under the session's name, so the session
        // can be ended later (closing a TTY's input does not end its shell).
        let cmd = [
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("echo $$ > /tmp/.console-{session}.pid; exec /bin/sh -l"),
        ];
        // ENV is emptied: a login shell reads /etc/profile already.
        let env = [
            "TERM=xterm-256color".to_string(),
            "HOME=/tmp".to_string(),
            "ENV=".to_string(),
        ];
        Ok(self.rt.exec_tty(&c.id, &cmd, &env, cols, rows).await?)
    }

    /// End a console session's shell (and what runs in its terminal).
    pub async fn close_console(&self, run: &str, student: &str, session: &str) -> Result<()> {
        let r = self.store.run(run).await?.context("no such run")?;
        let lab = self.lab(&r)?;
        let ws = Self::workstation(&lab).context("no workstation")?;
        let f = format!("/tmp/.console-{session}.pid");
        let cmd = [
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("[ -f {f} ] && kill -HUP $(cat {f}); rm -f {f}"),
        ];
        self.exec(run, student, &ws.name, &cmd).await?;
        Ok(())
    }

    pub async fn resize_console(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        Ok(self.rt.resize_tty(exec_id, cols, rows).await?)
    }

    /// Create (or give a new password to) an instructor or assistant
    /// account; the password is returned once, in plain text.
    pub async fn add_staff(&self, name: &str, role: &str) -> Result<(String, bool)> {
        // Before the slow hash: a bad name or role is said at once.
        store::check_staff(name, role)?;
        let password = credentials::generate();
        let p = password.clone();
        let hash = tokio::task::spawn_blocking(move || credentials::hash(&p)).await??;
        let created = self.store.put_staff(name, role, &hash).await?;
        tracing::info!(name, role, created, "staff account");
        Ok((password, created))
    }

    /// At the first start there is nobody to log in as: make an instructor
    /// account named `instructor` and return its one-time password.
    pub async fn first_instructor(&self) -> Result<Option<String>> {
        if !self.store.staff_list().await?.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.add_staff("instructor", "instructor").await?.0))
    }

    /// List credentials, or reissue them (new passwords, shown once).
    pub async fn reissue(&self, run: &str, student: Option<&str>) -> Result<Vec<Credential>> {
        let rows = match student {
            Some(s) => vec![self.student_or_err(run, s).await?],
            None => self.store.students(run).await?,
        };
        let mut out = Vec::new();
        for r in rows {
            let password = credentials::generate();
            let p = password.clone();
            let hash = tokio::task::spawn_blocking(move || credentials::hash(&p)).await??;
            self.store.set_password(run, &r.id, &hash).await?;
            out.push(Credential {
                run: run.into(),
                id: r.id,
                name: r.name,
                email: r.email,
                password,
            });
        }
        Ok(out)
    }

    pub async fn credential_info(
        &self,
        run: &str,
        student: Option<&str>,
    ) -> Result<Vec<CredentialInfo>> {
        let rows = match student {
            Some(s) => vec![self.student_or_err(run, s).await?],
            None => self.store.students(run).await?,
        };
        Ok(rows
            .into_iter()
            .map(|r| CredentialInfo {
                id: r.id,
                name: r.name,
                email: r.email,
                issued_at: r.issued_at,
            })
            .collect())
    }

    /// A student's parameter values (for the instructor; the panel shows
    /// each student their own).
    pub async fn params(&self, run: &str, student: &str) -> Result<BTreeMap<String, String>> {
        let r = self.store.run(run).await?.context("no such run")?;
        self.student_or_err(run, student).await?;
        Ok(applab_lab::params::for_student(
            &*self.lab(&r)?,
            &r.secret,
            student,
        ))
    }

    fn lock_for(&self, run: &str, student: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("locks")
            .entry((run.to_string(), student.to_string()))
            .or_default()
            .clone()
    }

    fn touch(&self, run: &str, student: &str) {
        self.touched.lock().expect("touched").insert(
            (run.to_string(), student.to_string()),
            std::time::Instant::now(),
        );
    }

    /// True if the student's topology was last converged before `t` (or never).
    fn touched_before(&self, run: &str, student: &str, t: std::time::Instant) -> bool {
        self.touched
            .lock()
            .expect("touched")
            .get(&(run.to_string(), student.to_string()))
            .is_none_or(|at| *at < t)
    }

    fn set_progress(&self, run: &str, student: &str, progress: Progress) {
        self.progress
            .lock()
            .expect("progress")
            .insert((run.to_string(), student.to_string()), progress);
    }

    /// Each student's last convergence phase (with its error if it
    /// failed), from memory: cheap enough for a page a class reloads.
    pub fn phases(&self, run: &str) -> HashMap<String, Progress> {
        self.progress
            .lock()
            .expect("progress")
            .iter()
            .filter(|((r, _), _)| r == run)
            .map(|((_, s), p)| (s.clone(), p.clone()))
            .collect()
    }

    fn progress_of(&self, run: &str, student: &str) -> Option<Progress> {
        self.progress
            .lock()
            .expect("progress")
            .get(&(run.to_string(), student.to_string()))
            .cloned()
    }
}
