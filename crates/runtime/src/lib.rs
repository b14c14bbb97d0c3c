//! The seam between orchestration and the container engine.
//!
//! The controller speaks only [`Runtime`]: a handful of verbs over networks,
//! containers, volumes and images, with labels as the record of what belongs
//! to whom. [`docker::DockerRuntime`] implements it with bollard against the
//! Docker Engine API 1.41; [`swarm::SwarmRuntime`] is another `impl Runtime`
//! over a Docker Swarm (DESIGN.md decision 10), not a rewrite.

pub mod docker;
pub mod swarm;

use async_trait::async_trait;
use std::collections::HashMap;

pub type Labels = HashMap<String, String>;

/// Engine errors the controller must tell apart to converge.
#[derive(Debug)]
pub enum Error {
    /// The object does not exist (already removed, never created).
    NotFound(String),
    /// A name is taken or the object is busy ("has active endpoints").
    Conflict(String),
    /// Anything else the engine said, or the engine did not answer.
    Engine(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Engine(m) => write!(f, "container engine: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    /// Host-side bridge device name (so taps and shaping can find it).
    pub bridge: String,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub subnet: Option<String>,
    pub labels: Labels,
}

/// One network a container joins, and the names it answers to there.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub network: String,
    pub aliases: Vec<String>,
    /// A fixed address in the network's subnet (the plan's), or the engine picks.
    pub ipv4: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub labels: Labels,
    pub endpoints: Vec<Endpoint>,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub cap_add: Vec<String>,
    /// (path, mount options) of tmpfs mounts for scratch space.
    pub tmpfs: Vec<(String, String)>,
    /// (volume name, mount path).
    pub volumes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Other(String),
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub labels: Labels,
    /// Network name → IPv4 address (running containers).
    pub addresses: HashMap<String, String>,
    /// Names of the networks the container is connected to.
    pub networks: Vec<String>,
    /// Network name → the container's MAC address there (finds its
    /// interface for link shaping).
    pub macs: HashMap<String, String>,
    /// Process id of a running container (inspect only; listings say none).
    pub pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// An interactive command with a pseudo-terminal (the panel's console):
/// what it prints, and where its keystrokes go.
pub struct Tty {
    /// The engine's id of the exec, for [`Runtime::resize_tty`].
    pub id: String,
    pub output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes>> + Send>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

#[async_trait]
pub trait Runtime: Send + Sync {
    async fn info(&self) -> Result<EngineInfo>;

    async fn image_exists(&self, tag: &str) -> Result<bool>;
    /// Build an image from a tar build context; `on_line` gets the build log.
    async fn build_image(
        &self,
        context_tar: Vec<u8>,
        tags: &[String],
        labels: &Labels,
        on_line: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String>;

    async fn list_networks(&self, label_filter: &[(&str, &str)]) -> Result<Vec<NetworkInfo>>;
    async fn create_network(&self, spec: &NetworkSpec) -> Result<String>;
    /// Remove a network, retrying while the engine says it still has endpoints.
    async fn remove_network(&self, id: &str) -> Result<()>;

    async fn list_containers(&self, label_filter: &[(&str, &str)]) -> Result<Vec<ContainerInfo>>;
    /// Create a container joined to all its endpoints, not started.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo>;
    /// Connect a container to one more network (idempotent).
    async fn connect_network(&self, id: &str, endpoint: &Endpoint) -> Result<()>;
    /// Unpack a tar archive at `path` inside the container (a volume path if
    /// the root filesystem is read-only).
    async fn upload(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<()>;
    async fn start_container(&self, id: &str) -> Result<()>;
    async fn stop_container(&self, id: &str) -> Result<()>;
    async fn remove_container(&self, id: &str) -> Result<()>;
    async fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecOutput>;
    /// Run `cmd` in the container with a TTY of `cols` x `rows`, attached.
    async fn exec_tty(
        &self,
        id: &str,
        cmd: &[String],
        env: &[String],
        cols: u16,
        rows: u16,
    ) -> Result<Tty>;
    /// Tell a TTY's program its window changed.
    async fn resize_tty(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()>;
    /// Resident memory of a running container in bytes.
    async fn memory_usage(&self, id: &str) -> Result<u64>;

    async fn list_volumes(&self, label_filter: &[(&str, &str)]) -> Result<Vec<VolumeInfo>>;
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()>;
    async fn remove_volume(&self, name: &str) -> Result<()>;
}
