//! [`Runtime`] over the Docker Engine API with bollard.
//!
//! Always negotiates the API version: the engines we meet are Debian's
//! docker.io 20.10 (API 1.41), and nothing newer may be assumed. In 1.41 a
//! container is created on one network; the others are connected before it
//! starts.

use crate::*;
use bollard::container::{
    Config, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    NetworkingConfig, RemoveContainerOptions, StartContainerOptions, StatsOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::image::BuildImageOptions;
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount, MountTypeEnum,
};
use bollard::network::{ConnectNetworkOptions, CreateNetworkOptions, ListNetworksOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions, RemoveVolumeOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::time::Duration;

pub struct DockerRuntime {
    docker: Docker,
}

fn map_err(e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code: 404,
            message,
        } => Error::NotFound(message),
        B::DockerResponseServerError {
            status_code: 409,
            message,
        } => Error::Conflict(message),
        B::DockerResponseServerError {
            status_code: 403,
            message,
        } if message.contains("active endpoints") => Error::Conflict(message),
        // A Swarm overlay with a container's attachment still on it.
        B::DockerResponseServerError {
            status_code: 400,
            message,
        } if message.contains("in use by task") => Error::Conflict(message),
        other => Error::Engine(other.to_string()),
    }
}

fn filters(label_filter: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    // An empty value filters on the label's presence alone.
    let labels = label_filter
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    HashMap::from([("label".to_string(), labels)])
}

/// The plan's subnet and gateway: the controller decides addresses, never
/// the engine's pool.
fn ipam(spec: &NetworkSpec) -> Ipam {
    Ipam {
        driver: Some("default".into()),
        config: Some(vec![IpamConfig {
            subnet: Some(spec.subnet.clone()),
            gateway: Some(spec.gateway.clone()),
            ..Default::default()
        }]),
        options: None,
    }
}

impl DockerRuntime {
    /// Connect through the local socket (`DOCKER_HOST` honoured) and
    /// negotiate the API version down to what the engine speaks.
    pub async fn connect() -> Result<DockerRuntime> {
        let docker = Docker::connect_with_local_defaults().map_err(map_err)?;
        let docker = docker.negotiate_version().await.map_err(map_err)?;
        Ok(DockerRuntime { docker })
    }

    /// Connect to the engine at a unix socket path (one Swarm node's).
    pub async fn connect_unix(path: &str) -> Result<DockerRuntime> {
        let docker =
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION).map_err(map_err)?;
        let docker = docker.negotiate_version().await.map_err(map_err)?;
        Ok(DockerRuntime { docker })
    }

    /// Remove a network, retrying while the engine says it is busy: `tries`
    /// times, the wait doubling from 100 ms up to `max_wait`. Gone is done;
    /// still busy at the end is the engine's last refusal.
    pub async fn remove_network_retrying(
        &self,
        id: &str,
        tries: u32,
        max_wait: Duration,
    ) -> Result<()> {
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for _ in 0..tries {
            match self.docker.remove_network(id).await.map_err(map_err) {
                Ok(()) | Err(Error::NotFound(_)) => return Ok(()),
                Err(Error::Conflict(m)) => {
                    tracing::debug!(network = id, "network busy, retrying: {m}");
                    last = m;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max_wait);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(last))
    }

    /// An attachable, internal overlay across a Swarm's nodes (a manager's
    /// engine makes it): the controller's subnet, and an MTU that fits
    /// the VXLAN header inside the underlay's.
    pub async fn create_overlay(&self, spec: &NetworkSpec, mtu: u32) -> Result<String> {
        let opts = CreateNetworkOptions {
            name: spec.name.clone(),
            check_duplicate: true,
            driver: "overlay".to_string(),
            internal: true,
            attachable: true,
            ipam: ipam(spec),
            options: HashMap::from([(
                "com.docker.network.driver.mtu".to_string(),
                mtu.to_string(),
            )]),
            labels: spec.labels.clone(),
            ..Default::default()
        };
        let r = self.docker.create_network(opts).await.map_err(map_err)?;
        Ok(r.id)
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn info(&self) -> Result<EngineInfo> {
        let v = self.docker.version().await.map_err(map_err)?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
        })
    }

    async fn image_exists(&self, tag: &str) -> Result<bool> {
        match self.docker.inspect_image(tag).await.map_err(map_err) {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn build_image(
        &self,
        context_tar: Vec<u8>,
        tags: &[String],
        labels: &Labels,
        on_line: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String> {
        let first = tags.first().cloned().unwrap_or_default();
        let opts = BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: first.clone(),
            rm: true,
            forcerm: true,
            labels: labels.clone(),
            ..Default::default()
        };
        let mut stream = self
            .docker
            .build_image(opts, None, Some(context_tar.into()));
        let mut id = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(map_err)?;
            if let Some(err) = info.error {
                return Err(Error::Engine(format!("image build failed: {err}")));
            }
            if let Some(s) = info.stream {
                on_line(s.trim_end());
            }
            if let Some(aux) = info.aux.and_then(|a| a.id) {
                id = aux;
            }
        }
        for t in tags.iter().skip(1) {
            let (repo, tag) = t.rsplit_once(':').unwrap_or((t, "latest"));
            let opts = bollard::image::TagImageOptions { repo, tag };
            self.docker
                .tag_image(&first, Some(opts))
                .await
                .map_err(map_err)?;
        }
        Ok(id)
    }

    async fn list_networks(&self, label_filter: &[(&str, &str)]) -> Result<Vec<NetworkInfo>> {
        let opts = ListNetworksOptions {
            filters: filters(label_filter),
        };
        let nets = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(map_err)?;
        Ok(nets
            .into_iter()
            .map(|n| NetworkInfo {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                subnet: n
                    .ipam
                    .and_then(|i| i.config)
                    .and_then(|c| c.into_iter().next())
                    .and_then(|c| c.subnet),
                labels: n.labels.unwrap_or_default(),
            })
            .collect())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<String> {
        let opts = CreateNetworkOptions {
            name: spec.name.clone(),
            check_duplicate: true,
            driver: "bridge".to_string(),
            // Internal: no route out, and Docker's isolation rules keep
            // other bridges (other students) unreachable.
            internal: true,
            ipam: ipam(spec),
            options: HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                spec.bridge.clone(),
            )]),
            labels: spec.labels.clone(),
            ..Default::default()
        };
        let r = self.docker.create_network(opts).await.map_err(map_err)?;
        Ok(r.id)
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        // The engine refuses for a moment after the last container went
        // ("has active endpoints").
        match self
            .remove_network_retrying(id, 20, Duration::from_secs(2))
            .await
        {
            Err(Error::Conflict(_)) => Err(Error::Conflict(format!(
                "network {id} still has active endpoints"
            ))),
            other => other,
        }
    }

    async fn list_containers(&self, label_filter: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let opts = ListContainersOptions {
            all: true,
            filters: filters(label_filter),
            ..Default::default()
        };
        let cs = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(map_err)?;
        Ok(cs
            .into_iter()
            .map(|c| {
                let (addresses, networks, macs) =
                    endpoints(c.network_settings.and_then(|n| n.networks));
                ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: parse_state(c.state.as_deref().unwrap_or("")),
                    labels: c.labels.unwrap_or_default(),
                    addresses,
                    networks,
                    macs,
                    pid: None,
                }
            })
            .collect())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let first = spec.endpoints.first();
        let mounts = spec
            .volumes
            .iter()
            .map(|(name, path)| Mount {
                target: Some(path.clone()),
                source: Some(name.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                ..Default::default()
            })
            .collect();
        let host = HostConfig {
            memory: Some(spec.memory_bytes),
            // No swap beyond the memory limit.
            memory_swap: Some(spec.memory_bytes),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(spec.pids),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(spec.cap_add.clone()),
            readonly_rootfs: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            tmpfs: Some(spec.tmpfs.iter().cloned().collect()),
            mounts: Some(mounts),
            network_mode: first.map(|e| e.network.clone()),
            init: Some(false),
            ..Default::default()
        };
        let config = Config {
            hostname: Some(spec.hostname.clone()),
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            labels: Some(spec.labels.clone()),
            host_config: Some(host),
            networking_config: first.map(|e| NetworkingConfig {
                endpoints_config: HashMap::from([(e.network.clone(), endpoint_settings(e))]),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: spec.name.clone(),
            platform: None,
        };
        let r = self
            .docker
            .create_container(Some(opts), config)
            .await
            .map_err(map_err)?;
        for e in spec.endpoints.iter().skip(1) {
            self.connect_network(&r.id, e).await?;
        }
        Ok(r.id)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(map_err)?;
        let state = c
            .state
            .as_ref()
            .and_then(|s| s.status)
            .map(|s| parse_state(s.as_ref()))
            .unwrap_or(ContainerState::Other(String::new()));
        let pid = c
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .filter(|&p| p > 0)
            .map(|p| p as u32);
        let (addresses, networks, macs) = endpoints(c.network_settings.and_then(|n| n.networks));
        Ok(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: c
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            state,
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
            addresses,
            networks,
            macs,
            pid,
        })
    }

    async fn connect_network(&self, id: &str, e: &Endpoint) -> Result<()> {
        let opts = ConnectNetworkOptions {
            container: id.to_string(),
            endpoint_config: endpoint_settings(e),
        };
        match self
            .docker
            .connect_network(&e.network, opts)
            .await
            .map_err(map_err)
        {
            Ok(()) => Ok(()),
            // "endpoint ... already exists in network": connected already.
            Err(Error::Engine(m) | Error::Conflict(m)) if m.contains("already exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn upload(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let opts = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(opts), tar.into())
            .await
            .map_err(map_err)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let r = self
            .docker
            .start_container(id, None::<StartContainerOptions<String>>)
            .await;
        already_done_ok(r)
    }

    async fn stop_container(&self, id: &str) -> Result<()> {
        let r = self
            .docker
            .stop_container(id, Some(StopContainerOptions { t: 5 }))
            .await;
        already_done_ok(r)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self
            .docker
            .remove_container(id, Some(opts))
            .await
            .map_err(map_err)
        {
            Ok(()) | Err(Error::NotFound(_)) => Ok(()),
            // "removal already in progress" is a 409: treat as done.
            Err(Error::Conflict(m)) if m.contains("in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecOutput> {
        let opts = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(id, opts).await.map_err(map_err)?;
        let mut out = ExecOutput {
            exit_code: -1,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(map_err)?
        {
            use bollard::container::LogOutput;
            while let Some(chunk) = output.next().await {
                match chunk.map_err(map_err)? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let info = self.docker.inspect_exec(&exec.id).await.map_err(map_err)?;
        out.exit_code = info.exit_code.unwrap_or(-1);
        Ok(out)
    }

    async fn exec_tty(
        &self,
        id: &str,
        cmd: &[String],
        env: &[String],
        cols: u16,
        rows: u16,
    ) -> Result<Tty> {
        let opts = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            env: Some(env.to_vec()),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(id, opts).await.map_err(map_err)?;
        let start = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: Some(64 * 1024),
        };
        match self
            .docker
            .start_exec(&exec.id, Some(start))
            .await
            .map_err(map_err)?
        {
            StartExecResults::Attached { output, input } => {
                use bollard::container::LogOutput;
                let output = output.filter_map(|chunk| async move {
                    match chunk {
                        Ok(LogOutput::StdOut { message })
                        | Ok(LogOutput::StdErr { message })
                        | Ok(LogOutput::Console { message }) => Some(Ok(message)),
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(map_err(e))),
                    }
                });
                // The size is set once the exec runs (the engine refuses before).
                let _ = self.resize_tty(&exec.id, cols, rows).await;
                Ok(Tty {
                    id: exec.id,
                    output: Box::pin(output),
                    input,
                })
            }
            StartExecResults::Detached => Err(Error::Engine("exec started detached".into())),
        }
    }

    async fn resize_tty(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        self.docker
            .resize_exec(
                exec_id,
                ResizeExecOptions {
                    height: rows.max(1),
                    width: cols.max(1),
                },
            )
            .await
            .map_err(map_err)
    }

    async fn memory_usage(&self, id: &str) -> Result<u64> {
        let mut s = self.docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let st = s
            .next()
            .await
            .ok_or_else(|| Error::Engine("no stats".into()))?
            .map_err(map_err)?;
        let usage = st.memory_stats.usage.unwrap_or(0);
        // As `docker stats` does: page cache that can be dropped is not use.
        let cache = st
            .memory_stats
            .stats
            .map(|s| match s {
                bollard::container::MemoryStatsStats::V1(v1) => v1.total_inactive_file,
                bollard::container::MemoryStatsStats::V2(v2) => v2.inactive_file,
            })
            .unwrap_or(0);
        Ok(usage.saturating_sub(cache))
    }

    async fn list_volumes(&self, label_filter: &[(&str, &str)]) -> Result<Vec<VolumeInfo>> {
        let opts = ListVolumesOptions {
            filters: filters(label_filter),
        };
        let r = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(map_err)?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<()> {
        let opts = CreateVolumeOptions {
            name: name.to_string(),
            driver: "local".to_string(),
            labels: labels.clone(),
            ..Default::default()
        };
        self.docker
            .create_volume(opts)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        // A volume can stay "in use" for a moment after its container is gone.
        for _ in 0..20 {
            match self
                .docker
                .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
                .await
                .map_err(map_err)
            {
                Ok(()) | Err(Error::NotFound(_)) => return Ok(()),
                Err(Error::Conflict(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!("volume {name} still in use")))
    }
}

/// (network → address, network names) from the engine's endpoint map.
type Endpoints = (
    HashMap<String, String>,
    Vec<String>,
    HashMap<String, String>,
);

/// Addresses, network names and MAC addresses of a container's endpoints.
fn endpoints(nets: Option<HashMap<String, EndpointSettings>>) -> Endpoints {
    let nets = nets.unwrap_or_default();
    let mut names: Vec<String> = nets.keys().cloned().collect();
    names.sort();
    let macs = nets
        .iter()
        .filter_map(|(k, v)| {
            v.mac_address
                .clone()
                .filter(|a| !a.is_empty())
                .map(|a| (k.clone(), a))
        })
        .collect();
    let addrs = nets
        .into_iter()
        .filter_map(|(k, v)| v.ip_address.filter(|a| !a.is_empty()).map(|a| (k, a)))
        .collect();
    (addrs, names, macs)
}

fn endpoint_settings(e: &Endpoint) -> EndpointSettings {
    EndpointSettings {
        aliases: Some(e.aliases.clone()),
        ipam_config: e.ipv4.as_ref().map(|a| EndpointIpamConfig {
            ipv4_address: Some(a.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Start and stop answer 304 when the container is already in that state.
fn already_done_ok(r: std::result::Result<(), bollard::errors::Error>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        Err(e) => Err(map_err(e)),
    }
}

fn parse_state(s: &str) -> ContainerState {
    match s {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "exited" => ContainerState::Exited,
        other => ContainerState::Other(other.to_string()),
    }
}
