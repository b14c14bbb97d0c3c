//! Link shaping: the delay, rate and loss a lab file gives an attachment of
//! a node to a network, applied on this host (DESIGN.md decision 11).
//!
//! - Rate: a `tbf` qdisc on each side of the attachment's veth pair, the
//!   host side for traffic to the node and the node's side (entered with
//!   `nsenter`) for traffic from it.
//! - Delay and loss: `netem` where the kernel has it; otherwise the
//!   NFQUEUE delay line (`delay_line`), fed by iptables rules in mangle
//!   PREROUTING that match frames entering the bridge from the node's
//!   port and frames on the bridge addressed to the node. The rules carry
//!   `--queue-bypass` (traffic still flows, undelayed, if the line is down)
//!   and a comment naming this controller, so exactly they are removed.
//! - Traffic: the host-side veth's byte counters, sampled, give each
//!   link's throughput and utilization (bytes over the rate, per window).
//!
//! Everything here needs root on the host and the `tc`, `iptables` and
//! `nsenter` programs; without them `Mechanism::Unavailable` says why.

pub mod delay_line;

use delay_line::{DelayLine, Stage, Table};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Command;
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

/// How delay and loss are made on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Netem,
    DelayLine { queue: u16 },
    Unavailable(String),
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mechanism::Netem => write!(f, "tbf for rate, netem for delay and loss"),
            Mechanism::DelayLine { queue } => write!(
                f,
                "tbf for rate, NFQUEUE delay line (queue {queue}, mangle PREROUTING) for delay and loss"
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
    host_veth: String,
    host_ifindex: u32,
    bridge_ifindex: u32,
    ip: Ipv4Addr,
    shape: Shape,
    /// (time, to-node bytes, from-node bytes) samples, oldest first.
    samples: Vec<(Instant, u64, u64)>,
}

pub struct Shaper {
    comment: String,
    mechanism: Mechanism,
    line: Option<DelayLine>,
    applied: Mutex<HashMap<String, Applied>>,
}

/// Throughput is averaged over this long.
const WINDOW: Duration = Duration::from_secs(10);

impl Shaper {
    /// Find out what this host can do and remove rules a previous run of
    /// this controller (`instance`) left behind.
    pub fn new(instance: &str) -> Shaper {
        let comment = format!("applab-shaping:{instance}");
        let mut s = Shaper {
            comment,
            mechanism: Mechanism::Unavailable("not probed".into()),
            line: None,
            applied: Mutex::new(HashMap::new()),
        };
        s.mechanism = match s.probe(instance) {
            Ok(m) => m,
            Err(why) => Mechanism::Unavailable(why),
        };
        if !matches!(s.mechanism, Mechanism::Unavailable(_)) {
            s.delete_rules(&s.comment.clone());
        }
        tracing::info!(mechanism = %s.mechanism, "link shaping");
        s
    }

    fn probe(&mut self, instance: &str) -> Result<Mechanism, String> {
        for prog in ["tc", "iptables", "nsenter"] {
            if !program_exists(prog) {
                return Err(format!("`{prog}` is not installed on this host"));
            }
        }
        run(Command::new("iptables").args(["-t", "mangle", "-S", "PREROUTING"]))
            .map_err(|e| format!("iptables does not answer (root needed): {e}"))?;
        if netem_available() {
            return Ok(Mechanism::Netem);
        }
        // A queue number of our own, stable across restarts of this
        // controller, apart from other controllers' on the same host.
        let first = 20000 + (fnv(instance) % 20000) as u16;
        let line = DelayLine::start(first)?;
        let queue = line.queue;
        self.line = Some(line);
        Ok(Mechanism::DelayLine { queue })
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
        let (inner_if, host_ifindex) = find_interface(a.pid, &a.mac)?;
        let host_veth = ifname_by_index(host_ifindex).ok_or_else(|| {
            format!("no host interface with index {host_ifindex} (node's {inner_if})")
        })?;
        let bridge_ifindex = read_u32(&format!("/sys/class/net/{}/ifindex", a.bridge))
            .ok_or_else(|| format!("no bridge {}", a.bridge))?;
        let netns = format!("--net=/proc/{}/ns/net", a.pid);
        // Rate, both directions (replace: idempotent).
        let s = a.shape;
        if let Some(rate) = s.rate_bps {
            let args = tbf_args(rate, s.delay_us);
            run(Command::new("tc")
                .args(["qdisc", "replace", "dev", &host_veth, "root"])
                .args(&args))?;
            run(Command::new("nsenter")
                .arg(&netns)
                .args(["tc", "qdisc", "replace", "dev", &inner_if, "root"])
                .args(&args))?;
        }
        match &self.mechanism {
            Mechanism::Netem if s.delay_us > 0 || s.loss > 0.0 => {
                // netem on both sides, the rate's tbf (if any) under it.
                let mut netem = vec![
                    "netem".to_string(),
                    "delay".into(),
                    format!("{}us", s.delay_us),
                ];
                if s.loss > 0.0 {
                    netem.extend(["loss".into(), format!("{}%", s.loss * 100.0)]);
                }
                for (pre, dev) in [
                    (vec![], host_veth.as_str()),
                    (
                        vec!["nsenter".to_string(), netns.clone()],
                        inner_if.as_str(),
                    ),
                ] {
                    let mut c = if pre.is_empty() {
                        Command::new("tc")
                    } else {
                        let mut c = Command::new(&pre[0]);
                        c.args(&pre[1..]).arg("tc");
                        c
                    };
                    c.args(["qdisc", "replace", "dev", dev, "root", "handle", "1:"])
                        .args(&netem);
                    run(&mut c)?;
                    if let Some(rate) = s.rate_bps {
                        let mut c = if pre.is_empty() {
                            Command::new("tc")
                        } else {
                            let mut c = Command::new(&pre[0]);
                            c.args(&pre[1..]).arg("tc");
                            c
                        };
                        c.args([
                            "qdisc", "replace", "dev", dev, "parent", "1:1", "handle", "10:",
                        ])
                        .args(tbf_args(rate, s.delay_us));
                        run(&mut c)?;
                    }
                }
            }
            Mechanism::DelayLine { queue } if s.delay_us > 0 || s.loss > 0.0 => {
                let q = queue.to_string();
                let tag = format!("{} {}", self.comment, a.tag);
                let tag = tag.replace(' ', "/");
                // From the node: frames entering the bridge by its port,
                // except those for the host itself (the controller's probes).
                let not_host = a
                    .gateway
                    .map(|g| format!("! -d {g}/32"))
                    .unwrap_or_default();
                let from = format!("-m physdev --physdev-in {host_veth} {not_host}");
                // To the node: frames on its bridge for its address, from
                // the other ports.
                let to = format!(
                    "-i {} -d {}/32 -m physdev ! --physdev-in {host_veth}",
                    a.bridge, a.ip
                );
                for m in [from, to] {
                    let mut c = Command::new("iptables");
                    c.args(["-t", "mangle", "-I", "PREROUTING"])
                        .args(m.split_whitespace())
                        .args(["-m", "comment", "--comment", &tag])
                        .args(["-j", "NFQUEUE", "--queue-num", &q, "--queue-bypass"]);
                    run(&mut c)?;
                }
            }
            _ => {}
        }
        let (to, from) = counters(&host_veth);
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                a.tag.clone(),
                Applied {
                    container: a.container.clone(),
                    host_veth: host_veth.clone(),
                    host_ifindex,
                    bridge_ifindex,
                    ip: a.ip,
                    shape: s,
                    samples: vec![(Instant::now(), to, from)],
                },
            );
        self.publish();
        tracing::info!(
            tag = a.tag,
            host_veth,
            node_if = inner_if,
            ?s,
            "link shaped"
        );
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
        for t in tags {
            self.forget(&t);
        }
    }

    fn forget(&self, tag: &str) {
        let gone = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tag);
        let full = format!("{} {}", self.comment, tag).replace(' ', "/");
        self.delete_rules(&full);
        if let Some(g) = gone {
            // The qdiscs go with the veth when the container is removed;
            // when it stays (a new shape), replace them.
            if iface_exists(&g.host_veth) {
                let _ = run(Command::new("tc").args(["qdisc", "del", "dev", &g.host_veth, "root"]));
            }
        }
        self.publish();
    }

    /// Delete every mangle PREROUTING rule whose comment starts with `prefix`.
    fn delete_rules(&self, prefix: &str) {
        let Ok(listing) = run(Command::new("iptables").args(["-t", "mangle", "-S", "PREROUTING"]))
        else {
            return;
        };
        for line in listing.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ours = words
                .windows(2)
                .any(|w| w[0] == "--comment" && w[1].trim_matches('"').starts_with(prefix));
            if ours && words.first() == Some(&"-A") {
                let mut c = Command::new("iptables");
                c.args(["-t", "mangle", "-D"])
                    .args(words[1..].iter().map(|w| w.trim_matches('"')));
                if let Err(e) = run(&mut c) {
                    tracing::warn!("removing shaping rule: {e}");
                }
            }
        }
    }

    /// Tell the delay line the current attachments.
    fn publish(&self) {
        let Some(line) = &self.line else { return };
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = Table::default();
        for a in applied.values() {
            let stage = Stage {
                delay: Duration::from_micros(a.shape.delay_us),
                loss: a.shape.loss,
            };
            t.from_port.insert(a.host_ifindex, stage);
            t.to_addr.insert((a.bridge_ifindex, a.ip), stage);
        }
        line.set_table(t);
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

/// tbf for `rate`: a burst of 10 ms of data (at least a few frames), and a
/// queue of a second of data beyond the link's round trip, as an access
/// router's buffer: bursts of objects queue (the lecture's queueing delay)
/// instead of being dropped and sent again, which would inflate the bytes
/// on the link.
fn tbf_args(rate_bps: u64, delay_us: u64) -> Vec<String> {
    let bytes_per_s = rate_bps as f64 / 8.0;
    let burst = (bytes_per_s * 0.01).max(15_000.0) as u64;
    let rtt = 2.0 * delay_us as f64 / 1e6;
    let limit = (bytes_per_s * (rtt + 1.0))
        .max(64_000.0)
        .max(2.0 * burst as f64) as u64;
    vec![
        "tbf".into(),
        "rate".into(),
        format!("{rate_bps}bit"),
        "burst".into(),
        burst.to_string(),
        "limit".into(),
        limit.to_string(),
    ]
}

/// The node-side interface with this MAC, and the ifindex of its peer on
/// the host (`iflink`), read from the node's own /sys.
fn find_interface(pid: u32, mac: &str) -> Result<(String, u32), String> {
    let dir = format!("/proc/{pid}/root/sys/class/net");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let addr = std::fs::read_to_string(format!("{dir}/{name}/address")).unwrap_or_default();
        if addr.trim().eq_ignore_ascii_case(mac) {
            let link = read_u32(&format!("{dir}/{name}/iflink"))
                .ok_or_else(|| format!("{dir}/{name}/iflink unreadable"))?;
            return Ok((name, link));
        }
    }
    Err(format!("no interface with MAC {mac} in {dir}"))
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

fn program_exists(p: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| std::path::Path::new(d).join(p).is_file())
}

/// Whether this kernel has netem: try it on a throwaway dummy device.
fn netem_available() -> bool {
    let dev = format!("applabprobe{}", std::process::id() % 10000);
    if run(Command::new("ip").args(["link", "add", &dev, "type", "dummy"])).is_err() {
        return false;
    }
    let ok = run(
        Command::new("tc").args(["qdisc", "add", "dev", &dev, "root", "netem", "delay", "1ms"])
    )
    .is_ok();
    let _ = run(Command::new("ip").args(["link", "del", &dev]));
    ok
}

fn run(c: &mut Command) -> Result<String, String> {
    let shown = format!("{c:?}").replace('"', "");
    let o = c.output().map_err(|e| format!("{shown}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "{shown}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
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
        let a = tbf_args(10_000_000, 50_000);
        assert_eq!(a[..3], ["tbf", "rate", "10000000bit"]);
        // 10 Mbit/s: 12.5 kB per 10 ms, so the 15 kB floor; 1.1 s of queue.
        assert_eq!(a[4], "15000");
        assert_eq!(a[6], "1375000");
    }
}
