//! The runtime over a Docker Swarm (DESIGN.md decision 10, issue 19).
//!
//! Swarm does what a cluster engine does and this file does not redo it:
//! membership and node health (`GET /nodes` on a manager), and the networks
//! across hosts (attachable overlays, VXLAN between the nodes). What is
//! ours: where a student's topology goes, and reaching the node that holds
//! a container.
//!
//! Nodes are plain containers on attachable overlays, not service tasks:
//! the lab files give nodes fixed addresses (zones say `{{addr.NODE}}`),
//! which tasks cannot have, and exec, upload and consoles need the
//! container's own engine. A student's containers and volumes all go to
//! one node (its state volumes live there), the ready, active node holding
//! the fewest students; overlays are made through the manager.

use crate::docker::DockerRuntime;
use crate::*;
use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeState};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// How to reach a Swarm: a manager's engine, and every node's own.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Unix socket of a manager's engine.
    pub manager: String,
    /// Node hostname (as Swarm knows it) → unix socket of its engine.
    pub engines: BTreeMap<String, String>,
    /// The overlays' MTU: the underlay's less VXLAN's 50 bytes.
    pub mtu: u32,
    /// Containers and volumes whose values of these labels are equal are
    /// placed on one node (a student's topology).
    pub group_by: Vec<String>,
}

/// One Swarm node as its managers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmNode {
    pub hostname: String,
    /// Swarm says it is up (its heartbeat arrives).
    pub ready: bool,
    /// Its availability is `active` (not drained or paused).
    pub active: bool,
    pub manager: bool,
}

pub struct SwarmRuntime {
    cfg: SwarmConfig,
    manager: DockerRuntime,
    engines: BTreeMap<String, DockerRuntime>,
    /// Container id, exec id or volume name → the node that holds it.
    placed: Mutex<HashMap<String, String>>,
    /// Group key → its node.
    groups: Mutex<HashMap<Vec<String>, String>>,
}

fn nowhere(what: &str) -> Error {
    Error::NotFound(format!("{what} is on no node that answers"))
}

impl SwarmRuntime {
    pub async fn connect(cfg: SwarmConfig) -> Result<SwarmRuntime> {
        let manager = DockerRuntime::connect_unix(&cfg.manager).await?;
        let mut engines = BTreeMap::new();
        for (host, sock) in &cfg.engines {
            engines.insert(host.clone(), DockerRuntime::connect_unix(sock).await?);
        }
        Ok(SwarmRuntime {
            cfg,
            manager,
            engines,
            placed: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// The Swarm's nodes and their health, from a manager.
    pub async fn nodes(&self) -> Result<Vec<SwarmNode>> {
        let body = get_unix(&self.cfg.manager, "/nodes").await?;
        let nodes: Vec<Node> =
            serde_json::from_slice(&body).map_err(|e| Error::Engine(format!("GET /nodes: {e}")))?;
        let mut out: Vec<SwarmNode> = nodes
            .into_iter()
            .map(|n| SwarmNode {
                hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                ready: n.status.and_then(|s| s.state) == Some(NodeState::READY),
                active: n.spec.as_ref().and_then(|s| s.availability)
                    == Some(NodeSpecAvailabilityEnum::ACTIVE),
                manager: n.manager_status.is_some(),
            })
            .collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(out)
    }

    /// Which node holds each container of the listing (by id).
    pub fn node_of(&self, id: &str) -> Option<String> {
        self.placed.lock().expect("placed").get(id).cloned()
    }

    /// Nodes that may take new work: ready, active, and reachable here.
    async fn usable(&self) -> Result<Vec<String>> {
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.ready && n.active && self.engines.contains_key(&n.hostname))
            .map(|n| n.hostname)
            .collect())
    }

    fn group(&self, labels: &Labels) -> Vec<String> {
        self.cfg
            .group_by
            .iter()
            .map(|k| labels.get(k).cloned().unwrap_or_default())
            .collect()
    }

    /// The node for an object with these labels: its group's, if the group
    /// is on a usable node; else the usable node with the fewest groups.
    async fn place(&self, labels: &Labels) -> Result<String> {
        let usable = self.usable().await?;
        let key = self.group(labels);
        let mut groups = self.groups.lock().expect("groups");
        if let Some(n) = groups.get(&key) {
            if usable.contains(n) {
                return Ok(n.clone());
            }
        }
        let load = |n: &String| groups.values().filter(|g| *g == n).count();
        let node = usable
            .iter()
            .min_by_key(|n| (load(n), (*n).clone()))
            .cloned()
            .ok_or_else(|| Error::Engine("no Swarm node is ready and active".into()))?;
        groups.insert(key, node.clone());
        Ok(node)
    }

    fn remember(&self, id: &str, node: &str) {
        self.placed
            .lock()
            .expect("placed")
            .insert(id.to_string(), node.to_string());
    }

    /// The node holding `id` and its engine: remembered, or found by
    /// asking each node.
    async fn locate(&self, id: &str) -> Result<(&String, &DockerRuntime)> {
        if let Some(n) = self.node_of(id) {
            if let Some(found) = self.engines.get_key_value(&n) {
                return Ok(found);
            }
        }
        for (host, e) in &self.engines {
            if e.inspect_container(id).await.is_ok() {
                self.remember(id, host);
                return Ok((host, e));
            }
        }
        Err(nowhere(&format!("container {id}")))
    }

    async fn engine_of(&self, id: &str) -> Result<&DockerRuntime> {
        Ok(self.locate(id).await?.1)
    }
}

/// `GET path` on an engine's unix socket; the body of a 200. (bollard 0.18
/// has no call for Swarm nodes; 0.21 does, and replaces this.)
async fn get_unix(socket: &str, path: &str) -> Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let err = |e: &dyn std::fmt::Display| Error::Engine(format!("GET {path} at {socket}: {e}"));
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| err(&e))?;
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| err(&e))?;
    tokio::spawn(conn);
    let req = http::Request::get(format!("/v1.41{path}"))
        .header("Host", "docker")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| err(&e))?;
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), tx.send_request(req))
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))?;
    let status = res.status();
    // A node list is a few KiB per node: 16 MiB bounds a broken answer.
    let body = http_body_util::Limited::new(res.into_body(), 16 << 20)
        .collect()
        .await
        .map_err(|e| err(&e))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(match status.as_u16() {
            404 => Error::NotFound(text.into_owned()),
            // 503: this engine is not a Swarm manager.
            _ => err(&format!("{status}: {}", text.trim())),
        });
    }
    Ok(body.to_vec())
}

#[async_trait]
impl Runtime for SwarmRuntime {
    async fn info(&self) -> Result<EngineInfo> {
        let i = self.manager.info().await?;
        Ok(EngineInfo {
            version: format!("{} (Swarm of {} nodes)", i.version, self.engines.len()),
            api_version: i.api_version,
        })
    }

    /// On every usable node: a student may be placed on any of them.
    async fn image_exists(&self, tag: &str) -> Result<bool> {
        for n in self.usable().await? {
            if !self.engines[&n].image_exists(tag).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Built on every usable node from the same context (no registry: each
    /// node holds its own copy; the same context gives the same image).
    async fn build_image(
        &self,
        context_tar: Vec<u8>,
        tags: &[String],
        labels: &Labels,
        on_line: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String> {
        let mut id = String::new();
        for n in self.usable().await? {
            id = self.engines[&n]
                .build_image(context_tar.clone(), tags, labels, on_line)
                .await?;
        }
        Ok(id)
    }

    async fn list_networks(&self, label_filter: &[(&str, &str)]) -> Result<Vec<NetworkInfo>> {
        self.manager.list_networks(label_filter).await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<String> {
        self.manager.create_overlay(spec, self.cfg.mtu).await
    }

    /// A container removed on a live node releases its attachment in a
    /// moment; one on a node that is down holds it until the node returns
    /// or leaves the Swarm, so the wait is short and the refusal says why.
    async fn remove_network(&self, id: &str) -> Result<()> {
        match self
            .manager
            .remove_network_retrying(id, 8, std::time::Duration::from_secs(1))
            .await
        {
            Err(Error::Conflict(m)) => Err(Error::Conflict(format!(
                "{m} (a node holding one of its containers may be down: \
                 it goes when that node returns or leaves the Swarm)"
            ))),
            other => other,
        }
    }

    /// Every node's containers that answer; a node whose engine does not
    /// answer holds none as far as the controller can act on them.
    async fn list_containers(&self, label_filter: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let lists = futures_util::future::join_all(
            self.engines
                .iter()
                .map(|(host, e)| async move { (host, e.list_containers(label_filter).await) }),
        )
        .await;
        let mut out = Vec::new();
        for (host, r) in lists {
            match r {
                Ok(cs) => {
                    let mut groups = self.groups.lock().expect("groups");
                    for c in &cs {
                        self.remember(&c.id, host);
                        groups
                            .entry(self.group(&c.labels))
                            .or_insert_with(|| host.clone());
                    }
                    out.extend(cs);
                }
                Err(e) => tracing::warn!(node = host, "swarm node's engine: {e}"),
            }
        }
        Ok(out)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let node = self.place(&spec.labels).await?;
        let id = self.engines[&node].create_container(spec).await?;
        self.remember(&id, &node);
        tracing::debug!(container = spec.name, node, "placed");
        Ok(id)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        self.engine_of(id).await?.inspect_container(id).await
    }

    async fn connect_network(&self, id: &str, endpoint: &Endpoint) -> Result<()> {
        self.engine_of(id)
            .await?
            .connect_network(id, endpoint)
            .await
    }

    async fn upload(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        self.engine_of(id).await?.upload(id, path, tar).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.engine_of(id).await?.start_container(id).await
    }

    async fn stop_container(&self, id: &str) -> Result<()> {
        self.engine_of(id).await?.stop_container(id).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        match self.engine_of(id).await {
            Ok(e) => e.remove_container(id).await,
            // Gone from every node that answers: removed, as far as any
            // engine can tell.
            Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecOutput> {
        self.engine_of(id).await?.exec(id, cmd).await
    }

    async fn exec_tty(
        &self,
        id: &str,
        cmd: &[String],
        env: &[String],
        cols: u16,
        rows: u16,
    ) -> Result<Tty> {
        let (node, engine) = self.locate(id).await?;
        let tty = engine.exec_tty(id, cmd, env, cols, rows).await?;
        self.remember(&tty.id, node);
        Ok(tty)
    }

    async fn resize_tty(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        let node = self
            .node_of(exec_id)
            .ok_or_else(|| nowhere(&format!("exec {exec_id}")))?;
        self.engines[&node].resize_tty(exec_id, cols, rows).await
    }

    async fn memory_usage(&self, id: &str) -> Result<u64> {
        self.engine_of(id).await?.memory_usage(id).await
    }

    async fn list_volumes(&self, label_filter: &[(&str, &str)]) -> Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (host, e) in &self.engines {
            match e.list_volumes(label_filter).await {
                Ok(vs) => {
                    for v in vs {
                        self.remember(&v.name, host);
                        if seen.insert(v.name.clone()) {
                            out.push(v);
                        }
                    }
                }
                Err(e) => tracing::warn!(node = host, "swarm node's engine: {e}"),
            }
        }
        Ok(out)
    }

    /// On the node its group (its student) is placed on.
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        let node = self.place(labels).await?;
        self.engines[&node].create_volume(name, labels).await?;
        self.remember(name, &node);
        Ok(())
    }

    /// From every node that answers and holds one of that name (a node
    /// that does not answer is cleaned when it returns).
    async fn remove_volume(&self, name: &str) -> Result<()> {
        for (host, e) in &self.engines {
            match e.remove_volume(name).await {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(Error::Engine(m)) => tracing::warn!(node = host, "swarm node's engine: {m}"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
