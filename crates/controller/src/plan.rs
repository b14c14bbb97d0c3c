//! From a lab and one student to the engine objects of their topology.
//!
//! Pure functions: names, labels, subnets and container specs are derived
//! from the store's rows alone, so every reconcile pass (after any crash)
//! computes the same plan and can compare it with what the engine has.

use crate::images::Image;
use crate::store::{RunRow, StudentRow};
use anyhow::{Context, Result};
use applab_lab::{params, template, Lab, Role};
use applab_runtime::{ContainerSpec, Endpoint, Labels, NetworkSpec};
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The controller (its data folder) that owns an object: two controllers
/// on one engine never collect each other's objects.
pub const INSTANCE: &str = "applab.instance";
pub const RUN: &str = "applab.run";
pub const LAB: &str = "applab.lab";
pub const STUDENT: &str = "applab.student";
pub const NODE: &str = "applab.node";
pub const NETWORK: &str = "applab.network";
pub const GENERATION: &str = "applab.generation";

/// Where every node keeps state that survives its restart.
pub const DATA_DIR: &str = "/data";

pub struct NetworkPlan {
    pub lab_network: String,
    pub spec: NetworkSpec,
}

pub struct NodePlan {
    pub node: String,
    pub role: Role,
    pub volume: String,
    pub volume_labels: Labels,
    pub spec: ContainerSpec,
}

pub struct StudentPlan {
    pub networks: Vec<NetworkPlan>,
    pub nodes: Vec<NodePlan>,
    pub params: BTreeMap<String, String>,
}

fn base_labels(instance: &str, run: &RunRow, student: &str) -> Labels {
    Labels::from([
        (INSTANCE.to_string(), instance.to_string()),
        (RUN.to_string(), run.name.clone()),
        (LAB.to_string(), run.lab_name.clone()),
        (STUDENT.to_string(), student.to_string()),
    ])
}

/// Linux limits interface names to 15 bytes; derive a stable short name so
/// taps and shaping can find a student network's bridge.
pub fn bridge_name(run: &str, student: &str, network: &str) -> String {
    let h = Sha256::digest(format!("{run}\0{student}\0{network}").as_bytes());
    format!("al-{}", &hex::encode(h)[..10])
}

pub fn object_name(run: &str, student: &str, item: &str) -> String {
    format!("applab-{run}-{student}-{item}")
}

pub fn plan(
    instance: &str,
    run: &RunRow,
    lab: &Lab,
    student: &StudentRow,
    subnets: &BTreeMap<String, Ipv4Net>,
    images: &BTreeMap<String, Image>,
) -> Result<StudentPlan> {
    let mut params = params::for_student(lab, &run.secret, &student.id);
    // Every node has a fixed address on each of its networks: the n-th
    // node of the lab takes the subnet's (n+2)-th host (the first is the
    // gateway), so a zone's A records can name it before it exists.
    let address = |node_index: usize, network: &str| -> Result<String> {
        let subnet = subnets
            .get(network)
            .with_context(|| format!("no subnet for network {network}"))?;
        subnet
            .hosts()
            .nth(node_index + 1)
            .map(|a| a.to_string())
            .with_context(|| format!("subnet {subnet} too small for {} nodes", lab.nodes.len()))
    };
    for (i, n) in lab.nodes.iter().enumerate() {
        if let Some(a) = n.attach.first() {
            params.insert(
                format!("{}{}", params::ADDR_PREFIX, n.name),
                address(i, &a.network)?,
            );
        }
    }
    let mut networks = Vec::new();
    for n in &lab.networks {
        let subnet = subnets
            .get(&n.name)
            .with_context(|| format!("no subnet for network {}", n.name))?;
        let gateway = subnet.hosts().next().context("subnet too small")?;
        let mut labels = base_labels(instance, run, &student.id);
        labels.insert(NETWORK.to_string(), n.name.clone());
        networks.push(NetworkPlan {
            lab_network: n.name.clone(),
            spec: NetworkSpec {
                name: object_name(&run.name, &student.id, &n.name),
                subnet: subnet.to_string(),
                gateway: gateway.to_string(),
                bridge: bridge_name(&run.name, &student.id, &n.name),
                labels,
            },
        });
    }
    let mut nodes = Vec::new();
    for (index, n) in lab.nodes.iter().enumerate() {
        let image = images
            .get(n.role.name())
            .with_context(|| format!("no image for role {}", n.role.name()))?;
        let mut labels = base_labels(instance, run, &student.id);
        labels.insert(NODE.to_string(), n.name.clone());
        labels.insert(GENERATION.to_string(), student.generation.to_string());
        let mut endpoints = Vec::new();
        for a in &n.attach {
            let mut aliases = vec![n.name.clone()];
            for al in &a.aliases {
                let name = template::render(al, &params).map_err(|p| {
                    anyhow::anyhow!("alias {al:?} uses unknown parameter {:?}", p.name)
                })?;
                aliases.push(name);
            }
            endpoints.push(Endpoint {
                network: object_name(&run.name, &student.id, &a.network),
                aliases,
                ipv4: Some(address(index, &a.network)?),
            });
        }
        let volume = object_name(
            &run.name,
            &student.id,
            &format!("{}-g{}", n.name, student.generation),
        );
        nodes.push(NodePlan {
            node: n.name.clone(),
            role: n.role,
            volume: volume.clone(),
            volume_labels: labels.clone(),
            spec: ContainerSpec {
                name: object_name(&run.name, &student.id, &n.name),
                hostname: n.name.clone(),
                image: image.tag.clone(),
                cmd: n.role.command(),
                labels,
                endpoints,
                memory_bytes: n.limits.memory_bytes as i64,
                nano_cpus: (n.limits.cpus * 1e9) as i64,
                pids: n.limits.pids,
                cap_add: n
                    .role
                    .capabilities()
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                tmpfs: vec![("/tmp".into(), "rw,nosuid,nodev,size=16m,mode=1777".into())],
                volumes: vec![(volume, DATA_DIR.into())],
            },
        });
    }
    Ok(StudentPlan {
        networks,
        nodes,
        params,
    })
}

/// The files a node serves, with the student's parameters filled into text
/// files, as a tar to unpack in `/data` (so under `/data/content`), and the
/// node's rendered `[nodes.config]` as `/data/node.toml`.
pub fn content_tar(
    lab: &Lab,
    node: &str,
    params: &BTreeMap<String, String>,
) -> Result<Option<Vec<u8>>> {
    let Some(n) = lab.node(node) else {
        return Ok(None);
    };
    let config = (!n.config.is_empty() || n.role.reads_config()).then(|| {
        // The role reads its `[nodes.config]` as /data/node.toml.
        let text = toml::to_string(&n.config).unwrap_or_default();
        template::render(&text, params).map_err(|ph| {
            anyhow::anyhow!(
                "node {}: config uses unknown parameter {:?}",
                n.name,
                ph.name
            )
        })
    });
    let dir = lab.content_dir(n);
    // The dns role's zones, rendered to master files in /data/zones.
    let mut zones = Vec::new();
    if n.role == Role::Dns {
        let cfg = applab_lab::roles::DnsConfig::from_table(&n.config)
            .map_err(|e| anyhow::anyhow!("node {}: {e}", n.name))?;
        for z in &cfg.zones {
            let text = template::render(&z.master_file(), params).map_err(|ph| {
                anyhow::anyhow!("node {}: zone uses unknown parameter {:?}", n.name, ph.name)
            })?;
            let origin = template::render(&z.file_name(), params).map_err(|ph| {
                anyhow::anyhow!("node {}: unknown parameter {:?}", n.name, ph.name)
            })?;
            zones.push((format!("zones/{origin}"), text));
        }
    }
    if config.is_none() && dir.is_none() && zones.is_empty() {
        return Ok(None);
    }
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, text: &str| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(crate::store::now() as u64);
        b.append_data(&mut h, name, text.as_bytes())?;
        Ok(())
    };
    if let Some(text) = config {
        file(&mut b, "node.toml", &text?)?;
    }
    if !zones.is_empty() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "zones", std::io::empty())?;
        for (name, text) in &zones {
            file(&mut b, name, text)?;
        }
    }
    let Some(dir) = dir else {
        return Ok(Some(b.into_inner()?));
    };
    let mut stack = vec![(dir.clone(), "content".to_string())];
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "content", std::io::empty())?;
    while let Some((d, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
            let mut h = tar::Header::new_gnu();
            if p.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, &name, std::io::empty())?;
                stack.push((p, name));
                continue;
            }
            let raw = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let data = if applab_lab::is_template_file(&p) {
                let text = String::from_utf8_lossy(&raw);
                template::render(&text, params)
                    .map_err(|ph| {
                        anyhow::anyhow!("{}: unknown parameter {:?}", p.display(), ph.name)
                    })?
                    .into_bytes()
            } else {
                raw
            };
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_mtime(crate::store::now() as u64);
            b.append_data(&mut h, &name, &data[..])?;
        }
    }
    Ok(Some(b.into_inner()?))
}
