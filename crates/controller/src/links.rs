//! The lab's link shaping applied to running topologies: each attachment
//! with a delay, rate or loss (from the lab file, or changed by the
//! instructor with `applab shape`) is handed to `applab_shaping` once its
//! container runs, again after a reset recreates it, and undone at
//! teardown. The measured traffic of every shaped link is in the status.

use crate::plan::StudentPlan;
use crate::store::LinkOverride;
use crate::Controller;
use anyhow::{bail, Context, Result};
use applab_lab::Lab;
use applab_shaping::{Attachment, LinkUsage, Shape};

/// A link's shaping and measured traffic, for the status.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LinkStatus {
    pub student: String,
    pub node: String,
    pub network: String,
    pub delay_us: u64,
    pub rate_bps: Option<u64>,
    pub loss: f64,
    pub to_node_bps: f64,
    pub from_node_bps: f64,
    pub utilization: Option<f64>,
    pub window_seconds: f64,
    pub to_node_bytes: u64,
    pub from_node_bytes: u64,
}

/// The shaping an attachment should have: the lab's, with the
/// instructor's changes over it.
pub fn wanted(lab: &Lab, overrides: &[LinkOverride]) -> Vec<(String, String, Shape)> {
    let mut out = Vec::new();
    for n in &lab.nodes {
        for a in &n.attach {
            let mut s = Shape {
                delay_us: a.shaping.delay_us.unwrap_or(0),
                rate_bps: a.shaping.rate_bps,
                loss: a.shaping.loss.unwrap_or(0.0),
            };
            if let Some(o) = overrides
                .iter()
                .find(|o| o.node == n.name && o.network == a.network)
            {
                if let Some(d) = o.delay_us {
                    s.delay_us = d.max(0) as u64;
                }
                if let Some(r) = o.rate_bps {
                    // 0 lifts the rate limit.
                    s.rate_bps = (r > 0).then_some(r as u64);
                }
                if let Some(l) = o.loss {
                    s.loss = l;
                }
            }
            out.push((n.name.clone(), a.network.clone(), s));
        }
    }
    out
}

pub fn tag(run: &str, student: &str, node: &str, network: &str) -> String {
    format!("{run}/{student}/{node}/{network}")
}

impl Controller {
    /// Shape a student's running nodes' attachments as their plan says.
    pub(crate) async fn shape_links(
        &self,
        run: &str,
        student: &str,
        lab: &Lab,
        plan: &StudentPlan,
    ) -> Result<()> {
        // A host that cannot shape (without CAP_NET_ADMIN, or the host's
        // pids and CAP_SYS_ADMIN to enter a node's namespace) still runs
        // the labs, unshaped; `applab status` says why.
        if let applab_shaping::Mechanism::Unavailable(why) = self.shaper.mechanism() {
            tracing::debug!(run, student, "links not shaped: {why}");
            return Ok(());
        }
        let overrides = self.store.links(run, student).await?;
        for (node, network, shape) in wanted(lab, &overrides) {
            let t = tag(run, student, &node, &network);
            let (Some(np), Some(net)) = (
                plan.nodes.iter().find(|n| n.node == node),
                plan.networks.iter().find(|p| p.lab_network == network),
            ) else {
                continue;
            };
            if shape.is_none() && !self.shaper.has(&t) {
                continue;
            }
            let c = self
                .rt
                .inspect_container(&np.spec.name)
                .await
                .with_context(|| format!("inspecting {}", np.spec.name))?;
            let (Some(pid), Some(mac), Some(ip)) = (
                c.pid,
                c.macs.get(&net.spec.name),
                c.addresses.get(&net.spec.name).and_then(|a| a.parse().ok()),
            ) else {
                // Not running (stopped on purpose): shaped when it starts.
                continue;
            };
            let a = Attachment {
                tag: t,
                container: c.id.clone(),
                pid,
                mac: mac.clone(),
                ip,
                gateway: net.spec.gateway.parse().ok(),
                bridge: net.spec.bridge.clone(),
                shape,
            };
            let shaper = self.shaper.clone();
            tokio::task::spawn_blocking(move || shaper.ensure(&a))
                .await?
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("shaping {node} on {network}"))?;
        }
        Ok(())
    }

    /// Change one attachment's shaping while the run goes on, for one
    /// student or (`student` None) all of them.
    pub async fn set_link(
        &self,
        run: &str,
        student: Option<&str>,
        change: &LinkOverride,
    ) -> Result<Vec<String>> {
        let r = self.store.run(run).await?.context("no such run")?;
        let lab = self.lab(&r)?;
        let Some(node) = lab.node(&change.node) else {
            bail!("lab {} has no node {:?}", r.lab_name, change.node);
        };
        if !node.attach.iter().any(|a| a.network == change.network) {
            bail!(
                "node {} is not attached to network {:?} (it is on: {})",
                change.node,
                change.network,
                node.attach
                    .iter()
                    .map(|a| a.network.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if change.loss.is_some_and(|l| !(0.0..1.0).contains(&l)) {
            bail!("loss must be at least 0 and below 1");
        }
        let students = self.student_ids(run, student).await?;
        for s in &students {
            self.store.set_link(run, s, change).await?;
            self.converge(run, s).await?;
        }
        Ok(students)
    }

    /// Undo the shaping of a student's (or a run's) links.
    pub(crate) async fn forget_links(&self, prefix: &str) {
        let (shaper, prefix) = (self.shaper.clone(), prefix.to_string());
        let _ = tokio::task::spawn_blocking(move || shaper.remove_prefix(&prefix)).await;
    }

    /// Every shaped link of a run with its measured traffic.
    pub fn link_status(&self, run: &str) -> Vec<LinkStatus> {
        let prefix = format!("{run}/");
        let usage: Vec<LinkUsage> = self.shaper.usage();
        usage
            .into_iter()
            .filter_map(|u| {
                let rest = u.tag.strip_prefix(&prefix)?;
                let mut parts = rest.splitn(3, '/');
                let (student, node, network) = (parts.next()?, parts.next()?, parts.next()?);
                Some(LinkStatus {
                    student: student.into(),
                    node: node.into(),
                    network: network.into(),
                    delay_us: u.shape.delay_us,
                    rate_bps: u.shape.rate_bps,
                    loss: u.shape.loss,
                    to_node_bps: u.to_node_bps,
                    from_node_bps: u.from_node_bps,
                    utilization: u.utilization,
                    window_seconds: u.window_seconds,
                    to_node_bytes: u.to_node_bytes,
                    from_node_bytes: u.from_node_bytes,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let dir = tempfile::tempdir().unwrap();
        let lab_toml = r#"
[lab]
name = "t"
title = "t"
[[networks]]
name = "campus"
[[networks]]
name = "internet"
[[nodes]]
name = "proxy"
role = "workstation"
[[nodes.attach]]
network = "campus"
[[nodes.attach]]
network = "internet"
rate = "1.54mbit"
delay = "10ms"
"#;
        std::fs::write(dir.path().join("lab.toml"), lab_toml).unwrap();
        let lab = Lab::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let w = wanted(&lab, &[]);
        let internet = w.iter().find(|x| x.1 == "internet").unwrap().2;
        assert_eq!(
            (internet.delay_us, internet.rate_bps),
            (10_000, Some(1_540_000))
        );
        assert!(w.iter().find(|x| x.1 == "campus").unwrap().2.is_none());
        let o = LinkOverride {
            node: "proxy".into(),
            network: "internet".into(),
            rate_bps: Some(150_000_000),
            ..Default::default()
        };
        let w = wanted(&lab, &[o]);
        let internet = w.iter().find(|x| x.1 == "internet").unwrap().2;
        assert_eq!(
            (internet.delay_us, internet.rate_bps),
            (10_000, Some(150_000_000))
        );
    }
}
