//! Making the engine match the store, one student at a time.

use crate::{converge, plan};
use crate::{Controller, NodeState, Phase, Progress, StudentState};
use anyhow::{Context, Result};
use applab_lab::Role;
use applab_runtime::{ContainerInfo, ContainerState, Error as RtError};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: String,
    pub state: NodeState,
    /// True when the role's service accepts a TCP connection.
    pub healthy: bool,
    /// True when the instructor stopped it on purpose.
    pub stopped_on_purpose: bool,
    pub addresses: BTreeMap<String, String>,
    pub image: String,
    pub container_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentStatus {
    pub id: String,
    pub name: String,
    pub email: String,
    pub state: StudentState,
    /// Why the last pass failed, when `state` is failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the last convergence pass got to (none since this controller started).
    pub phase: Option<Phase>,
    pub generation: i64,
    pub nodes: Vec<NodeStatus>,
}

/// One attachment's shaping, as wanted, and as measured when shaped.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyLink {
    pub node: String,
    pub network: String,
    pub delay_us: u64,
    pub rate_bps: Option<u64>,
    pub loss: f64,
    pub measured: Option<crate::links::LinkStatus>,
}

/// A student's nodes and links as they are now.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub run: String,
    pub student: String,
    pub nodes: Vec<NodeStatus>,
    pub links: Vec<TopologyLink>,
    pub shaping: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStatus {
    pub run: String,
    pub lab: String,
    pub created_at: i64,
    pub engine: String,
    pub students: Vec<StudentStatus>,
    /// How links are shaped on this host (or why they cannot be).
    #[serde(default)]
    pub shaping: String,
    /// Every shaped link with its measured traffic.
    #[serde(default)]
    pub links: Vec<crate::links::LinkStatus>,
}

/// A node that should answer: its container, planned address and port.
struct Probe {
    name: String,
    ip: String,
    port: u16,
}

const HEALTH_TIMEOUT: Duration = Duration::from_millis(400);
const HEALTH_WAIT: Duration = Duration::from_secs(30);

/// How long a node found answering counts as answering without a new
/// probe (a status polled every few hundred ms).
const HEALTH_FRESH: Duration = Duration::from_secs(2);

/// Does the role's service accept a TCP connection at `ip`?
async fn answers(ip: &str, port: u16) -> bool {
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    match tokio::time::timeout(HEALTH_TIMEOUT, tokio::net::TcpStream::connect((ip, port))).await {
        Ok(Ok(s)) => {
            // Closed with a reset, not a FIN: no TIME_WAIT socket here and
            // a conntrack entry that lasts 10 s, not 120 s. Thousands of
            // those (a status polled through a launch) made every network
            // namespace's removal slower: 100 students' containers took
            // 27 s to remove instead of 19 s (measured, bench/launch).
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            true
        }
        _ => false,
    }
}

/// Run engine calls at once; the first error, if any.
async fn all_ok<F>(calls: impl IntoIterator<Item = F>) -> applab_runtime::Result<()>
where
    F: std::future::Future<Output = applab_runtime::Result<()>>,
{
    join_all(calls).await.into_iter().collect()
}

/// What the engine held when a pass began.
struct Snapshot {
    taken_at: std::time::Instant,
    containers: Vec<ContainerInfo>,
    networks: Vec<applab_runtime::NetworkInfo>,
    volumes: Vec<applab_runtime::VolumeInfo>,
    /// Subnets of networks that are not this controller's.
    foreign: Vec<ipnet::Ipv4Net>,
}

impl Controller {
    /// One pass over every run and student, then garbage collection.
    pub async fn reconcile_all(self: &Arc<Self>) -> Result<()> {
        // One listing of the engine for the whole pass: per-student listings
        // would load the engine exactly while it is busiest, during a launch.
        let snap = Arc::new(self.snapshot().await?);
        self.sync_captures(&snap).await;
        let mut tasks = Vec::new();
        for run in self.store.runs().await? {
            for s in self.store.students(&run.name).await? {
                let me = self.clone();
                let run = run.name.clone();
                let snap = snap.clone();
                tasks.push(tokio::spawn(async move {
                    let slot = me.slots.acquire().await.ok();
                    if let Err(e) = me.converge_with(&run, &s.id, Some(&snap), slot).await {
                        tracing::warn!(run, student = s.id, "converge failed: {e:#}");
                        me.set_progress(&run, &s.id, Progress::failed(format!("{e:#}")));
                    }
                }));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        self.collect(None).await
    }

    /// A tap on every network of every student in the store (before their
    /// containers start, so the first frames are seen), and the names of
    /// the nodes' addresses as the engine reports them.
    async fn sync_captures(&self, snap: &Snapshot) {
        let mut wanted = Vec::new();
        let Ok(runs) = self.store.runs().await else {
            return;
        };
        for run in runs {
            let Ok(lab) = self.lab(&run) else { continue };
            let Ok(students) = self.store.students(&run.name).await else {
                continue;
            };
            for s in students {
                for n in &lab.networks {
                    wanted.push(crate::captures::Wanted {
                        run: run.name.clone(),
                        student: s.id.clone(),
                        network: n.name.clone(),
                    });
                }
                let mut names = std::collections::HashMap::new();
                for c in &snap.containers {
                    if converge::owned(&c.labels, &run.name, &s.id) {
                        if let Some(node) = c.labels.get(plan::NODE) {
                            for ip in c.addresses.values() {
                                if let Ok(ip) = ip.parse() {
                                    names.insert(ip, node.clone());
                                }
                            }
                        }
                    }
                }
                self.captures.set_names(&run.name, &s.id, names);
            }
        }
        self.captures.sync(&wanted);
    }

    /// Name a student's addresses if nothing has yet: every reconcile pass
    /// names them from its snapshot, and a node keeps its planned address,
    /// so only a topology that just started needs the engine asked now.
    /// Readers of the capture call this, not [`Self::refresh_capture_names`].
    pub async fn ensure_capture_names(&self, run: &str, student: &str) -> Result<()> {
        if self.captures.names_snapshot(run, student).is_empty() {
            self.refresh_capture_names(run, student).await?;
        }
        Ok(())
    }

    /// Learn a student's node addresses from the engine now (the frames of
    /// a topology that just started arrive before the next pass).
    pub async fn refresh_capture_names(&self, run: &str, student: &str) -> Result<()> {
        let mut names = std::collections::HashMap::new();
        for c in self.containers_of(run, Some(student)).await? {
            if let Some(node) = c.labels.get(plan::NODE) {
                for ip in c.addresses.values() {
                    if let Ok(ip) = ip.parse() {
                        names.insert(ip, node.clone());
                    }
                }
            }
        }
        self.captures.set_names(run, student, names);
        Ok(())
    }

    /// This controller's engine objects, and the subnets of everyone else's networks.
    async fn snapshot(&self) -> Result<Snapshot> {
        let mine = [(plan::INSTANCE, self.instance.as_str())];
        let all_nets = self.rt.list_networks(&[]).await?;
        let (networks, others): (Vec<_>, Vec<_>) = all_nets
            .into_iter()
            .partition(|n| n.labels.get(plan::INSTANCE) == Some(&self.instance));
        Ok(Snapshot {
            taken_at: std::time::Instant::now(),
            containers: self.rt.list_containers(&mine).await?,
            networks,
            volumes: self.rt.list_volumes(&mine).await?,
            foreign: others
                .into_iter()
                .filter_map(|n| n.subnet.and_then(|s| s.parse().ok()))
                .collect(),
        })
    }

    /// Bring one student's topology to its plan, looking at the engine now.
    pub async fn converge(&self, run: &str, student: &str) -> Result<()> {
        self.converge_with(run, student, None, None).await
    }

    /// Bring one student's topology to its plan, from a snapshot of the
    /// engine when given. A snapshot may be stale (a verb ran since): every
    /// removal is by id and every creation by name, so staleness can only
    /// fail this pass harmlessly, and the next pass repairs it.
    ///
    /// `slot` bounds how many students make engine calls at once; it is
    /// given back before the wait for the nodes to answer, which costs the
    /// engine nothing, so the next students start meanwhile.
    async fn converge_with(
        &self,
        run: &str,
        student: &str,
        snap: Option<&Snapshot>,
        slot: Option<tokio::sync::SemaphorePermit<'_>>,
    ) -> Result<()> {
        let lock = self.lock_for(run, student);
        let _g = lock.lock().await;
        // A snapshot older than this student's last converge (a reset, a
        // stop, a launch since) no longer shows their objects: look again.
        let snap = snap.filter(|s| self.touched_before(run, student, s.taken_at));
        let r = self.converge_locked(run, student, snap).await;
        self.touch(run, student);
        drop(slot);
        let probes = r?;
        self.wait_answering(run, student, probes).await
    }

    /// Wait until every node that should run answers on its port, at the
    /// address the plan gave it: TCP probes only, no engine listing, so a
    /// large launch does not slow the engine down.
    async fn wait_answering(
        &self,
        run: &str,
        student: &str,
        mut pending: Vec<Probe>,
    ) -> Result<()> {
        self.set_progress(run, student, Progress::at(Phase::Starting));
        let t0 = tokio::time::Instant::now();
        let deadline = t0 + HEALTH_WAIT;
        loop {
            let ok = join_all(pending.iter().map(|p| answers(&p.ip, p.port))).await;
            let mut ok = ok.into_iter();
            pending.retain(|_| !ok.next().unwrap_or(false));
            if pending.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<&str> = pending.iter().map(|p| p.name.as_str()).collect();
                anyhow::bail!("not answering after {HEALTH_WAIT:?}: {}", names.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::debug!(
            run,
            student,
            wait_ms = t0.elapsed().as_millis() as u64,
            "answering"
        );
        self.set_progress(run, student, Progress::at(Phase::Ready));
        Ok(())
    }

    /// The engine made to match the plan; what should answer then.
    async fn converge_locked(
        &self,
        run: &str,
        student: &str,
        snap: Option<&Snapshot>,
    ) -> Result<Vec<Probe>> {
        let Some(run_row) = self.store.run(run).await? else {
            return Ok(Vec::new());
        };
        let Some(srow) = self.store.student(run, student).await? else {
            return Ok(Vec::new());
        };
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        let lab = self.lab(&run_row)?;
        let images = self.images().await?;
        self.set_progress(run, student, Progress::at(Phase::Networks));
        let lab_nets: Vec<String> = lab.networks.iter().map(|n| n.name.clone()).collect();
        let fresh;
        let snap = match snap {
            Some(s) => s,
            None => {
                fresh = self.snapshot().await?;
                &fresh
            }
        };
        let exclude = snap.foreign.clone();
        let subnets = self
            .store
            .allocate_subnets(
                run,
                student,
                &lab_nets,
                self.cfg.pool,
                self.cfg.prefix,
                &exclude,
            )
            .await?;
        let plan = plan::plan(&self.instance, &run_row, &lab, &srow, &subnets, &images)?;
        let stopped = self.store.stopped(run, student).await?;

        let planned = ms(t0);
        let t1 = std::time::Instant::now();
        // Decide (pure, unit-tested in `converge`), then apply in order.
        let todo = converge::actions(
            &plan,
            &converge::Engine {
                containers: &snap.containers,
                networks: &snap.networks,
                volumes: &snap.volumes,
            },
            &converge::Student {
                run,
                student,
                generation: srow.generation,
                stopped: &stopped,
            },
        );
        for r in &todo.remove_containers {
            tracing::info!(
                run,
                student,
                container = r.name,
                id = r.id,
                why = r.why,
                "replacing container"
            );
            self.rt.remove_container(&r.id).await?;
        }
        for (id, name) in &todo.remove_networks {
            tracing::info!(run, student, network = name, "removing network not in plan");
            self.rt.remove_network(id).await?;
        }
        for &i in &todo.create_networks {
            let spec = &plan.networks[i].spec;
            match self.rt.create_network(spec).await {
                Ok(_) => {}
                // Created by a pass the list did not see yet: fine.
                Err(RtError::Conflict(_)) => {}
                Err(e) => return Err(e).context(format!("creating network {}", spec.name)),
            }
        }
        for v in &todo.remove_volumes {
            self.rt.remove_volume(v).await?;
        }
        all_ok(todo.create_volumes.iter().map(|&i| {
            let n = &plan.nodes[i];
            self.rt.create_volume(&n.volume, &n.volume_labels)
        }))
        .await?;

        let networked = ms(t1);
        let t2 = std::time::Instant::now();
        self.set_progress(run, student, Progress::at(Phase::Containers));
        let results = join_all(plan.nodes.iter().zip(&todo.nodes).map(|(n, action)| {
            let lab = lab.clone();
            let plan = &plan;
            async move {
                let fill = |id: String| {
                    let lab = lab.clone();
                    async move {
                        if let Some(tar) = plan::content_tar(&lab, &n.node, &plan.params)? {
                            self.rt
                                .upload(&id, plan::DATA_DIR, tar)
                                .await
                                .with_context(|| format!("filling {}", n.spec.name))?;
                        }
                        anyhow::Ok(())
                    }
                };
                match action {
                    converge::NodeAction::Create { start } => {
                        let id = match self.rt.create_container(&n.spec).await {
                            Ok(id) => id,
                            Err(RtError::Conflict(m)) => {
                                return Err(self.name_taken(&n.spec.name, m).await)
                            }
                            Err(e) => {
                                return Err(e).with_context(|| format!("creating {}", n.spec.name))
                            }
                        };
                        fill(id.clone()).await?;
                        if *start {
                            self.rt.start_container(&id).await?;
                        }
                    }
                    converge::NodeAction::Adopt {
                        id,
                        connect,
                        fill: needs_fill,
                        power,
                    } => {
                        // Finish what a crash may have left undone.
                        for &e in connect {
                            self.rt.connect_network(id, &n.spec.endpoints[e]).await?;
                        }
                        if *needs_fill {
                            fill(id.clone()).await?;
                        }
                        match power {
                            converge::Power::Start => self.rt.start_container(id).await?,
                            converge::Power::Stop => self.rt.stop_container(id).await?,
                            converge::Power::Keep => {}
                        }
                    }
                }
                anyhow::Ok(())
            }
        }))
        .await;
        for r in results {
            r?;
        }
        let containers = ms(t2);
        let t3 = std::time::Instant::now();
        self.shape_links(run, student, &lab, &plan).await?;
        // Where a pass's time goes (RUST_LOG=applab_controller=debug).
        tracing::debug!(
            run,
            student,
            plan_ms = planned,
            networks_ms = networked,
            containers_ms = containers,
            shaping_ms = ms(t3),
            "converged"
        );

        Ok(plan
            .nodes
            .iter()
            .filter(|n| !stopped.contains(&n.node))
            .filter_map(|n| {
                Some(Probe {
                    name: n.spec.name.clone(),
                    ip: n.spec.endpoints.first()?.ipv4.clone()?,
                    port: n.role.service_port(),
                })
            })
            .collect())
    }

    /// Why a container name is taken: most often by another controller
    /// (another data folder) that launched a run of the same name.
    async fn name_taken(&self, name: &str, msg: String) -> anyhow::Error {
        match self.rt.inspect_container(name).await {
            Ok(c) if c.labels.get(plan::INSTANCE) != Some(&self.instance) => anyhow::anyhow!(
                "container name {name} is taken by another applab controller (instance {}); \
                 tear that run down there, or launch this one under another --run",
                c.labels
                    .get(plan::INSTANCE)
                    .map(String::as_str)
                    .unwrap_or("unknown")
            ),
            // Ours, created by an operation still in flight when we listed: the next pass adopts it.
            _ => anyhow::anyhow!("creating {name}: {msg}"),
        }
    }

    /// This controller's containers of a run (of one student when given),
    /// in one engine call.
    async fn containers_of(&self, run: &str, student: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let mut f = vec![(plan::INSTANCE, self.instance.as_str()), (plan::RUN, run)];
        if let Some(s) = student {
            f.push((plan::STUDENT, s));
        }
        Ok(self.rt.list_containers(&f).await?)
    }

    /// A student's nodes, from the run's containers as listed (`cs`):
    /// states from the listing, health by a TCP connect to each.
    async fn node_status(
        &self,
        cs: &[ContainerInfo],
        student: &str,
        nodes: &[(String, Role)],
        stopped: &BTreeSet<String>,
    ) -> Vec<NodeStatus> {
        let futs = nodes.iter().map(|(node, role)| {
            let c = cs.iter().find(|c| {
                c.labels.get(plan::STUDENT).map(String::as_str) == Some(student)
                    && c.labels.get(plan::NODE).map(String::as_str) == Some(node)
            });
            async move {
                let (state, addresses, image, id) = match c {
                    Some(c) => (
                        NodeState::from(&c.state),
                        c.addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect::<BTreeMap<_, _>>(),
                        c.image.clone(),
                        c.id.clone(),
                    ),
                    None => (
                        NodeState::Missing,
                        BTreeMap::new(),
                        String::new(),
                        String::new(),
                    ),
                };
                let healthy = match (c, addresses.values().next()) {
                    (Some(c), Some(ip)) if c.state == ContainerState::Running => {
                        self.answers_fresh(&c.id, ip, role.service_port()).await
                    }
                    _ => false,
                };
                NodeStatus {
                    name: node.clone(),
                    role: role.name().to_string(),
                    state,
                    healthy,
                    stopped_on_purpose: stopped.contains(node),
                    addresses,
                    image,
                    container_id: id,
                }
            }
        });
        join_all(futs).await
    }

    /// Each student's phase, without asking the engine anything.
    pub async fn progress(&self, run: &str) -> Result<crate::api::RunProgress> {
        self.store
            .run(run)
            .await?
            .with_context(|| format!("no run named {run:?}"))?;
        let students = self
            .store
            .students(run)
            .await?
            .into_iter()
            .map(|s| {
                let p = self.progress_of(run, &s.id);
                crate::api::StudentProgress {
                    phase: p.as_ref().map(|p| p.phase),
                    error: p.and_then(|p| p.error),
                    id: s.id,
                }
            })
            .collect();
        Ok(crate::api::RunProgress {
            run: run.to_string(),
            students,
        })
    }

    /// [`answers`], or true without a probe when the container answered
    /// within [`HEALTH_FRESH`]. Only answers are kept: a node that starts
    /// answering is seen at the next probe.
    async fn answers_fresh(&self, id: &str, ip: &str, port: u16) -> bool {
        let key = (id.to_string(), port);
        let fresh = |t: &std::time::Instant| t.elapsed() < HEALTH_FRESH;
        if self
            .health
            .lock()
            .expect("health")
            .get(&key)
            .is_some_and(fresh)
        {
            return true;
        }
        let ok = answers(ip, port).await;
        let mut h = self.health.lock().expect("health");
        if ok {
            h.insert(key, std::time::Instant::now());
        } else {
            h.remove(&key);
        }
        // Bounded by the containers probed within the window.
        h.retain(|_, t| fresh(t));
        ok
    }

    /// The live state of a run, probed now (answers within 2 s count).
    pub async fn status(&self, run: &str) -> Result<crate::RunStatus> {
        let run_row = self
            .store
            .run(run)
            .await?
            .with_context(|| format!("no run named {run:?}"))?;
        let lab = self.lab(&run_row)?;
        let engine = self
            .rt
            .info()
            .await
            .map(|i| format!("{} (API {})", i.version, i.api_version))?;
        let mut students = Vec::new();
        let rows = self.store.students(run).await?;
        let node_roles: Vec<(String, Role)> =
            lab.nodes.iter().map(|n| (n.name.clone(), n.role)).collect();
        // One listing for the whole run, not one per student: the panel
        // and `applab status` poll this while the engine may be busy.
        let cs = self.containers_of(run, None).await?;
        let futs = rows.iter().map(|s| {
            let (node_roles, cs) = (&node_roles, &cs);
            async move {
                let stopped = self.store.stopped(run, &s.id).await?;
                let nodes = self.node_status(cs, &s.id, node_roles, &stopped).await;
                let progress = self.progress_of(run, &s.id);
                let all_ok = nodes
                    .iter()
                    .all(|n| n.healthy || (n.stopped_on_purpose && n.state != NodeState::Running));
                let state = StudentState::of(progress.as_ref(), all_ok);
                anyhow::Ok(crate::StudentStatus {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    email: s.email.clone(),
                    state,
                    error: progress
                        .as_ref()
                        .filter(|_| state == StudentState::Failed)
                        .and_then(|p| p.error.clone()),
                    phase: progress.map(|p| p.phase),
                    generation: s.generation,
                    nodes,
                })
            }
        });
        for r in join_all(futs).await {
            students.push(r?);
        }
        Ok(crate::RunStatus {
            run: run.to_string(),
            lab: run_row.lab_name.clone(),
            created_at: run_row.created_at,
            engine,
            students,
            shaping: self.shaper.mechanism().to_string(),
            links: self.link_status(run),
        })
    }

    /// One student's topology as it is: nodes with state, health and
    /// addresses, and each attachment's shaping (wanted) with its measured
    /// traffic where the link is shaped. The panel's topology page.
    pub async fn student_topology(&self, run: &str, student: &str) -> Result<Topology> {
        let run_row = self
            .store
            .run(run)
            .await?
            .with_context(|| format!("no run named {run:?}"))?;
        let lab = self.lab(&run_row)?;
        self.student_or_err(run, student).await?;
        let node_roles: Vec<(String, Role)> =
            lab.nodes.iter().map(|n| (n.name.clone(), n.role)).collect();
        let stopped = self.store.stopped(run, student).await?;
        let cs = self.containers_of(run, Some(student)).await?;
        let nodes = self.node_status(&cs, student, &node_roles, &stopped).await;
        let overrides = self.store.links(run, student).await?;
        let measured = self.link_status(run);
        let links = crate::links::wanted(&lab, &overrides)
            .into_iter()
            .map(|(node, network, shape)| {
                let m = measured
                    .iter()
                    .find(|l| l.student == student && l.node == node && l.network == network)
                    .cloned();
                TopologyLink {
                    node,
                    network,
                    delay_us: shape.delay_us,
                    rate_bps: shape.rate_bps,
                    loss: shape.loss,
                    measured: m,
                }
            })
            .collect();
        Ok(Topology {
            run: run.to_string(),
            student: student.to_string(),
            nodes,
            links,
            shaping: self.shaper.mechanism().to_string(),
        })
    }

    /// Remove every labelled object whose run or student is not in the
    /// store (limited to one run when given).
    pub async fn collect(&self, only_run: Option<&str>) -> Result<()> {
        // One at a time, each from the store and the engine as they are
        // once it holds the lock: a second one then finds what the first
        // removed gone.
        let _one = self.collecting.lock().await;
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for r in self.store.runs().await? {
            for s in self.store.students(&r.name).await? {
                wanted.insert((r.name.clone(), s.id));
            }
        }
        let filter: Vec<(&str, &str)> = match only_run {
            Some(r) => vec![(plan::INSTANCE, self.instance.as_str()), (plan::RUN, r)],
            None => vec![(plan::INSTANCE, self.instance.as_str())],
        };
        let key = |l: &applab_runtime::Labels| {
            (
                l.get(plan::RUN).cloned().unwrap_or_default(),
                l.get(plan::STUDENT).cloned().unwrap_or_default(),
            )
        };
        let orphan = |l: &applab_runtime::Labels| !wanted.contains(&key(l));
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        // Containers first: networks and volumes in use cannot go.
        let mut orphans = self.rt.list_containers(&filter).await?;
        orphans.retain(|c| orphan(&c.labels));
        all_ok(orphans.iter().map(|c| self.rt.remove_container(&c.id))).await?;
        let containers_ms = ms(t0);
        let mut nets = self.rt.list_networks(&filter).await?;
        nets.retain(|n| orphan(&n.labels));
        all_ok(nets.iter().map(|n| self.rt.remove_network(&n.id))).await?;
        let networks_ms = ms(t0) - containers_ms;
        let mut vols = self.rt.list_volumes(&filter).await?;
        vols.retain(|v| orphan(&v.labels));
        all_ok(vols.iter().map(|v| self.rt.remove_volume(&v.name))).await?;
        if !orphans.is_empty() || !nets.is_empty() || !vols.is_empty() {
            tracing::info!(
                containers = orphans.len(),
                networks = nets.len(),
                volumes = vols.len(),
                containers_ms,
                networks_ms,
                volumes_ms = ms(t0) - containers_ms - networks_ms,
                "collected objects with no student in the store"
            );
        }
        Ok(())
    }
}
