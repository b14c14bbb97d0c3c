//! Link shaping: the delay, rate and loss a lab file gives an attachment of
//! a node to a network, applied on this host (DESIGN.md decision 11).
//!
//! - Rate: a `tbf` qdisc on each side of the attachment's veth pair, the
//!   host side for traffic to the node and the node's side (its network
//!   namespace entered with `setns` on a thread) for traffic from it.
//! - Delay and loss: the NFQUEUE delay line (`delay_line`), fed by an
//!   nf_tables table of this controller's (`ip applab_XXXXXXXX`, chain
//!   `prerouting` at mangle priority) whose rules match frames entering a
//!   student's bridge from a shaped node and frames on the bridge for it.
//!   The rules bypass the queue if the line is down (traffic still flows,
//!   undelayed); the table is rebuilt whole, atomically, at every change.
//!   One mechanism on every kernel: the delay line is what this kernel
//!   (no netem) needs, and it holds delay to ±1 ms where netem exists too.
//! - Traffic: the host-side veth's byte counters, sampled, give each
//!   link's throughput and utilization (bytes over the rate, per window).
//!
//! Everything goes through netlink (`netlink`): no host program is run,
//! so the controller's FROM-scratch image shapes as the host-run one does.
//! It needs CAP_NET_ADMIN, and CAP_SYS_ADMIN with the host's pids to enter
//! a node's namespace; without them `Mechanism::Unavailable` says why.

pub mod delay_line;
pub mod netlink;

use delay_line::{DelayLine, Stage, Table};
use netlink::{QueueRule, Route, Tbf};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shaping of one attachment. `delay` is one-way and applies in both
/// directions; `rate` limits each direction; `loss` is per frame each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    pub delay_us: u64,
    pub rate_bps: Option<u64>,
    pub loss: f64,
}

impl Shape {
    pub fn is_none(&self) -> bool {
        self.delay_us == 0 && self.rate_bps.is_none() && self.loss == 0.0
    }
    fn delays(&self) -> bool {
        self.delay_us > 0 || self.loss > 0.0
    }
}

/// One node's attachment to one network, as found on the host.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Names the attachment (run/student/node/network); unique per controller.
    pub tag: String,
    /// The container, so a recreated one (a reset) is shaped again.
    pub container: String,
    pub pid: u32,
    /// The node's MAC address on this network: finds its interface.
    pub mac: String,
    pub ip: Ipv4Addr,
    /// The network's gateway (the host): traffic to it is not delayed, so
    /// the controller's own probes of the node are not slowed.
    pub gateway: Option<Ipv4Addr>,
    /// Host-side bridge device of the network.
    pub bridge: String,
    pub shape: Shape,
}

/// How links are shaped on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    DelayLine { queue: u16, table: String },
    Unavailable(String),
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mechanism::DelayLine { queue, table } => write!(
                f,
                "tbf (rtnetlink) for rate, NFQUEUE delay line (queue {queue}, nf_tables table ip {table}) for delay and loss"
            ),
            Mechanism::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// A shaped link's measured traffic.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkUsage {
    pub tag: String,
    pub host_veth: String,
    pub shape: Shape,
    /// Bits per second towards the node, and from it, over the last window.
    pub to_node_bps: f64,
    pub from_node_bps: f64,
    /// The busier direction's bits over the rate (none without a rate).
    pub utilization: Option<f64>,
    pub window_seconds: f64,
    pub to_node_bytes: u64,
    pub from_node_bytes: u64,
}

struct Applied {
    container: String,
    pid: u32,
    node_ifindex: u32,
    host_veth: String,
    host_ifindex: u32,
    bridge_ifindex: u32,
    ip: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
    shape: Shape,
    /// (time, to-node bytes, from-node bytes) samples, oldest first.
    samples: Vec<(Instant, u64, u64)>,
}

pub struct Shaper {
    mechanism: Mechanism,
    line: Option<DelayLine>,
    applied: Mutex<HashMap<String, Applied>>,
    publishing: Mutex<()>,
}

/// Throughput is averaged over this long.
const WINDOW: Duration = Duration::from_secs(10);

impl Shaper {
    /// Find out what this host can do and remove the rules a previous run
    /// of this controller (`instance`) left behind.
    pub fn new(instance: &str) -> Shaper {
        let mut s = Shaper {
            mechanism: Mechanism::Unavailable("not probed".into()),
            line: None,
            applied: Mutex::new(HashMap::new()),
            publishing: Mutex::new(()),
        };
        s.mechanism = match s.probe(instance) {
            Ok(m) => m,
            Err(why) => Mechanism::Unavailable(why),
        };
        tracing::info!(mechanism = %s.mechanism, "link shaping");
        s
    }

    fn probe(&mut self, instance: &str) -> Result<Mechanism, String> {
        let table = format!("applab_{:08x}", fnv(instance));
        // Removing our table proves nf_tables answers us (and clears what
        // a killed predecessor left).
        netlink::nft_delete_table(&table)?;
        Route::open()?.links()?;
        // A queue number of our own, stable across restarts of this
        // controller, apart from other controllers' on the same host.
        let first = 20000 + (fnv(instance) % 20000) as u16;
        let line = DelayLine::start(first)?;
        let queue = line.queue;
        self.line = Some(line);
        Ok(Mechanism::DelayLine { queue, table })
    }

    /// Whether an attachment is shaped now.
    pub fn has(&self, tag: &str) -> bool {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(tag)
    }

    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// Shape an attachment as asked, unless it already is (same container,
    /// same shape): cheap to call on every reconcile pass.
    pub fn ensure(&self, a: &Attachment) -> Result<(), String> {
        if let Mechanism::Unavailable(why) = &self.mechanism {
            if a.shape.is_none() {
                return Ok(());
            }
            return Err(format!("link shaping is unavailable: {why}"));
        }
        {
            let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(x) = applied.get(&a.tag) {
                if x.container == a.container && x.shape == a.shape && iface_exists(&x.host_veth) {
                    return Ok(());
                }
            }
        }
        self.forget(&a.tag);
        if a.shape.is_none() {
            return Ok(());
        }
        let s = a.shape;
        let tbf = s.rate_bps.map(|r| tbf(r, s.delay_us));
        // In the node's namespace: its interface on this network (by MAC),
        // the index of the veth's host end, and the rate of what it sends.
        let mac = a.mac.clone();
        let (node_if, node_ifindex, host_ifindex) = netlink::in_netns(a.pid, move || {
            let mut r = Route::open()?;
            let link = r
                .links()?
                .into_iter()
                .find(|l| l.mac.eq_ignore_ascii_case(&mac))
                .ok_or_else(|| format!("no interface with MAC {mac} in the node"))?;
            let peer = link
                .peer
                .ok_or_else(|| format!("{} is not one end of a veth pair", link.name))?;
            if let Some(t) = tbf {
                r.replace_tbf(link.index, &t)?;
            }
            Ok((link.name, link.index, peer))
        })?;
        let host_veth = ifname_by_index(host_ifindex).ok_or_else(|| {
            format!("no host interface with index {host_ifindex} (node's {node_if})")
        })?;
        let bridge_ifindex = read_u32(&format!("/sys/class/net/{}/ifindex", a.bridge))
            .ok_or_else(|| format!("no bridge {}", a.bridge))?;
        if let Some(t) = tbf {
            Route::open()?.replace_tbf(host_ifindex, &t)?;
        }
        let (to, from) = counters(&host_veth);
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                a.tag.clone(),
                Applied {
                    container: a.container.clone(),
                    pid: a.pid,
                    node_ifindex,
                    host_veth: host_veth.clone(),
                    host_ifindex,
                    bridge_ifindex,
                    ip: a.ip,
                    gateway: a.gateway,
                    shape: s,
                    samples: vec![(Instant::now(), to, from)],
                },
            );
        if s.delays() {
            if let Err(e) = self.publish() {
                self.forget(&a.tag);
                return Err(e);
            }
        }
        tracing::info!(tag = a.tag, host_veth, node_if, ?s, "link shaped");
        Ok(())
    }

    /// Undo the shaping of every attachment whose tag starts with `prefix`
    /// (a student's teardown: "run/student/").
    pub fn remove_prefix(&self, prefix: &str) {
        let tags: Vec<String> = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect();
        self.forget_all(&tags);
    }

    fn forget(&self, tag: &str) {
        self.forget_all(&[tag.to_string()]);
    }

    /// Forget attachments; the delay rules are rebuilt once for all of them.
    fn forget_all(&self, tags: &[String]) {
        let gone: Vec<(&String, Applied)> = {
            let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            tags.iter()
                .filter_map(|t| applied.remove(t).map(|g| (t, g)))
                .collect()
        };
        if gone.iter().any(|(_, g)| g.shape.delays()) {
            if let Err(e) = self.publish() {
                tracing::warn!("removing delay rules: {e}");
            }
        }
        // The qdiscs go with the veth when the container is removed; when
        // it stays (a new shape, or none), take them off both ends.
        for (tag, g) in gone {
            if g.shape.rate_bps.is_some() && iface_exists(&g.host_veth) {
                let host = Route::open().and_then(|mut r| r.delete_root(g.host_ifindex));
                let index = g.node_ifindex;
                let node = netlink::in_netns(g.pid, move || Route::open()?.delete_root(index));
                if let Err(e) = host.and(node) {
                    tracing::debug!(tag, "removing a link's rate: {e}");
                }
            }
        }
    }

    /// Give the delay line and the nf_tables table the current attachments.
    /// Publishes run one at a time, each from the set as it is when it
    /// starts, so the last one written is the newest; the attachments are
    /// not locked while the kernel is talked to (status and sampling go on).
    fn publish(&self) -> Result<(), String> {
        let Mechanism::DelayLine { queue, table } = &self.mechanism else {
            return Ok(());
        };
        let _one_at_a_time = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = Table::default();
        let mut rules = Vec::new();
        {
            let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            for a in applied.values().filter(|a| a.shape.delays()) {
                let stage = Stage {
                    delay: Duration::from_micros(a.shape.delay_us),
                    loss: a.shape.loss,
                };
                t.from_port.insert(a.host_ifindex, stage);
                t.to_addr.insert((a.bridge_ifindex, a.ip), stage);
                rules.extend(queue_rules(a.bridge_ifindex, a.ip, a.gateway, *queue));
            }
        }
        if let Some(line) = &self.line {
            line.set_table(t);
        }
        if rules.is_empty() {
            netlink::nft_delete_table(table)
        } else {
            netlink::nft_replace_table(table, &rules)
        }
    }

    /// Take a sample of every shaped link's byte counters; the window of
    /// the report slides by these (a thread calls this every second).
    pub fn sample(&self) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for a in applied.values_mut() {
            let (to, from) = counters(&a.host_veth);
            a.samples.push((now, to, from));
            // Keep one sample at or beyond the window to measure across it.
            while a.samples.len() > 2 && now.duration_since(a.samples[1].0) >= WINDOW {
                a.samples.remove(0);
            }
        }
    }

    /// Every shaped link's traffic over the last window.
    pub fn usage(&self) -> Vec<LinkUsage> {
        self.sample();
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut out = Vec::new();
        for (tag, a) in applied.iter() {
            let (_, to, from) = *a.samples.last().unwrap_or(&(now, 0, 0));
            let (t0, to0, from0) = a.samples[0];
            let secs = now.duration_since(t0).as_secs_f64().max(1e-3);
            let to_bps = to.saturating_sub(to0) as f64 * 8.0 / secs;
            let from_bps = from.saturating_sub(from0) as f64 * 8.0 / secs;
            out.push(LinkUsage {
                tag: tag.clone(),
                host_veth: a.host_veth.clone(),
                shape: a.shape,
                to_node_bps: to_bps,
                from_node_bps: from_bps,
                utilization: a.shape.rate_bps.map(|r| to_bps.max(from_bps) / r as f64),
                window_seconds: secs,
                to_node_bytes: to,
                from_node_bytes: from,
            });
        }
        out.sort_by(|a, b| a.tag.cmp(&b.tag));
        out
    }

    pub fn line_stats(&self) -> Option<delay_line::LineStats> {
        self.line.as_ref().map(|l| l.stats())
    }
}

/// The two rules of a node with a delay: frames it sends into its bridge
/// (except to the host itself: the controller's probes), and frames on the
/// bridge for its address. A frame between two shaped nodes matches the
/// first and is queued once; the line adds both links' delays.
fn queue_rules(bridge: u32, ip: Ipv4Addr, gateway: Option<Ipv4Addr>, queue: u16) -> [QueueRule; 2] {
    [
        QueueRule {
            bridge,
            src: Some(ip),
            dst: None,
            not_dst: gateway,
            queue,
        },
        QueueRule {
            bridge,
            src: None,
            dst: Some(ip),
            not_dst: None,
            queue,
        },
    ]
}

/// tbf for `rate`: a burst of 10 ms of data (at least a few frames), and a
/// queue of a second of data beyond the link's round trip, as an access
/// router's buffer: bursts of objects queue (the lecture's queueing delay)
/// instead of being dropped and sent again, which would inflate the bytes
/// on the link.
fn tbf(rate_bps: u64, delay_us: u64) -> Tbf {
    let bytes_per_s = rate_bps as f64 / 8.0;
    let burst = (bytes_per_s * 0.01).max(15_000.0);
    let rtt = 2.0 * delay_us as f64 / 1e6;
    let limit = (bytes_per_s * (rtt + 1.0)).max(64_000.0).max(2.0 * burst);
    Tbf {
        rate_bps,
        burst: burst.min(u32::MAX as f64) as u32,
        limit: limit.min(u32::MAX as f64) as u32,
    }
}

fn ifname_by_index(index: u32) -> Option<String> {
    for e in std::fs::read_dir("/sys/class/net").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if read_u32(&format!("/sys/class/net/{name}/ifindex")) == Some(index) {
            return Some(name);
        }
    }
    None
}

fn iface_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

fn read_u32(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Bytes the host-side veth sent (towards the node) and received (from it).
fn counters(veth: &str) -> (u64, u64) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{veth}/statistics/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("tx_bytes"), read("rx_bytes"))
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_holds_a_round_trip_of_data() {
        let t = tbf(10_000_000, 50_000);
        // 10 Mbit/s: 12.5 kB per 10 ms, so the 15 kB floor; 1.1 s of queue.
        assert_eq!(
            t,
            Tbf {
                rate_bps: 10_000_000,
                burst: 15_000,
                limit: 1_375_000
            }
        );
    }

    #[test]
    fn a_delayed_node_has_a_rule_each_way_and_probes_from_the_host_pass() {
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let [from, to] = queue_rules(9, ip, Some(gw), 20001);
        assert_eq!(
            (from.src, from.not_dst, from.dst),
            (Some(ip), Some(gw), None)
        );
        assert_eq!((to.src, to.dst), (None, Some(ip)));
        assert!(from.bridge == 9 && to.queue == 20001);
    }
}
