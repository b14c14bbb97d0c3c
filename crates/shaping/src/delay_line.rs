//! The delay line: packets queued by the kernel (iptables NFQUEUE in
//! mangle PREROUTING, on the host side of a student's bridge) are held in
//! user space for their link's one-way delay, dropped with its loss
//! probability, and handed back in time.
//!
//! One kernel queue serves every shaped attachment of this controller. A
//! packet's delay is the sum of the delay of the attachment it came in by
//! (the bridge port, `physindev`) and of the attachment its destination
//! address sits behind (bridge and address): a packet between two shaped
//! nodes is delayed by both links, as it would cross both. Within one flow
//! every packet has the same delay, so order is kept.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one attachment does to a packet crossing it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub delay: Duration,
    pub loss: f64,
}

/// The attachments the line knows, by how a packet meets them.
#[derive(Debug, Default, Clone)]
pub struct Table {
    /// Packets entering the bridge from this port (host-side veth ifindex).
    pub from_port: HashMap<u32, Stage>,
    /// Packets on this bridge (ifindex) for this address.
    pub to_addr: HashMap<(u32, Ipv4Addr), Stage>,
}

impl Table {
    /// The delay and the chance of delivery of a packet.
    fn judge(&self, physindev: u32, bridge: u32, dst: Option<Ipv4Addr>) -> (Duration, f64) {
        let mut delay = Duration::ZERO;
        let mut keep = 1.0;
        if let Some(s) = self.from_port.get(&physindev) {
            delay += s.delay;
            keep *= 1.0 - s.loss;
        }
        if let Some(s) = dst.and_then(|d| self.to_addr.get(&(bridge, d))) {
            delay += s.delay;
            keep *= 1.0 - s.loss;
        }
        (delay, keep)
    }
}

/// Counters the status shows.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct LineStats {
    pub queued: u64,
    pub released: u64,
    pub dropped: u64,
    pub held: u64,
}

pub struct DelayLine {
    pub queue: u16,
    table: Arc<Mutex<Table>>,
    stats: Arc<Mutex<LineStats>>,
}

/// Most packets held at once; the kernel queue is set to this length, and
/// it must exceed twice packets per second times the delay.
pub const MAX_HELD: u32 = 200_000;

impl DelayLine {
    /// Bind the first free queue number from `first` on, and start the
    /// thread that holds the packets.
    pub fn start(first: u16) -> Result<DelayLine, String> {
        let mut q =
            nfq::Queue::open().map_err(|e| format!("cannot open a netfilter queue socket: {e}"))?;
        let mut bound = None;
        let mut last_err = String::new();
        for n in first..first.saturating_add(64) {
            match q.bind(n) {
                Ok(()) => {
                    bound = Some(n);
                    break;
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        let n = bound.ok_or_else(|| format!("no free netfilter queue from {first}: {last_err}"))?;
        // Only the IPv4 header is needed: the destination address.
        q.set_copy_range(n, 20).map_err(|e| e.to_string())?;
        // Take segmentation-offloaded packets whole. Without this flag the
        // kernel cuts them into frames to queue, and on this kernel that
        // path sent a copy of the second frame in place of the next one
        // (seen as duplicate TCP segments, ~10% of the link's bytes).
        // A lost "packet" is then all frames of one send, each frame still
        // lost with the configured probability.
        q.set_recv_gso(n, true).map_err(|e| e.to_string())?;
        q.set_queue_max_len(n, MAX_HELD)
            .map_err(|e| e.to_string())?;
        // Fail-open would let packets pass undelayed when the queue is
        // full; dropping them is what a full link does.
        q.set_fail_open(n, false).map_err(|e| e.to_string())?;
        q.set_nonblocking(true);
        let table = Arc::new(Mutex::new(Table::default()));
        let stats = Arc::new(Mutex::new(LineStats::default()));
        let (t, s) = (table.clone(), stats.clone());
        std::thread::Builder::new()
            .name("delay-line".into())
            .spawn(move || run(q, t, s))
            .map_err(|e| e.to_string())?;
        tracing::info!(queue = n, "delay line bound");
        Ok(DelayLine {
            queue: n,
            table,
            stats,
        })
    }

    pub fn set_table(&self, t: Table) {
        *self.table.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    pub fn stats(&self) -> LineStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn destination(payload: &[u8]) -> Option<Ipv4Addr> {
    if payload.len() >= 20 && payload[0] >> 4 == 4 {
        Some(Ipv4Addr::new(
            payload[16],
            payload[17],
            payload[18],
            payload[19],
        ))
    } else {
        None
    }
}

/// Held packets, in the order they are due; `seq` keeps equal times FIFO.
type Held = BinaryHeap<Reverse<(Instant, u64, HeldMsg)>>;

struct HeldMsg(nfq::Message);
impl PartialEq for HeldMsg {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeldMsg {}
impl PartialOrd for HeldMsg {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeldMsg {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

fn run(mut q: nfq::Queue, table: Arc<Mutex<Table>>, stats: Arc<Mutex<LineStats>>) {
    use rand::Rng;
    let mut held: Held = BinaryHeap::new();
    let mut seq = 0u64;
    let mut rng = rand::thread_rng();
    loop {
        // Nothing held: sleep in the kernel until a packet comes (an idle
        // class costs no CPU); else look without waiting.
        q.set_nonblocking(!held.is_empty());
        // Take everything waiting (bounded per round so releases stay on time).
        let mut got = 0;
        let (mut queued, mut dropped) = (0u64, 0u64);
        while got < 4096 {
            let received = q.recv();
            q.set_nonblocking(true);
            let mut msg = match received {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("delay line: {e}");
                    break;
                }
            };
            got += 1;
            let now = Instant::now();
            let (delay, keep) = table.lock().unwrap_or_else(|e| e.into_inner()).judge(
                msg.get_physindev(),
                msg.get_indev(),
                destination(msg.get_payload()),
            );
            queued += 1;
            if keep < 1.0 && rng.gen::<f64>() >= keep {
                msg.set_verdict(nfq::Verdict::Drop);
                let _ = q.verdict(msg);
                dropped += 1;
                continue;
            }
            msg.set_verdict(nfq::Verdict::Accept);
            if delay.is_zero() {
                let _ = q.verdict(msg);
                continue;
            }
            seq += 1;
            held.push(Reverse((now + delay, seq, HeldMsg(msg))));
        }
        // Hand back what is due.
        let now = Instant::now();
        let mut released = 0u64;
        while held.peek().is_some_and(|Reverse((due, _, _))| *due <= now) {
            if let Some(Reverse((_, _, HeldMsg(m)))) = held.pop() {
                let _ = q.verdict(m);
                released += 1;
            }
        }
        {
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            s.queued += queued;
            s.dropped += dropped;
            s.released += released;
            s.held = held.len() as u64;
        }
        // Sleep until the next packet is due, but look for new ones often:
        // a packet arriving while asleep waits at most this long extra.
        let poll = Duration::from_micros(100);
        let wait = held
            .peek()
            .map(|Reverse((due, _, _))| due.saturating_duration_since(Instant::now()))
            .unwrap_or(poll)
            .min(poll);
        if got < 4096 && !wait.is_zero() && !held.is_empty() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_links_add_up_and_losses_combine() {
        let mut t = Table::default();
        let ms = Duration::from_millis;
        t.from_port.insert(
            7,
            Stage {
                delay: ms(20),
                loss: 0.1,
            },
        );
        t.to_addr.insert(
            (3, Ipv4Addr::new(10, 0, 0, 5)),
            Stage {
                delay: ms(50),
                loss: 0.5,
            },
        );
        let (d, keep) = t.judge(7, 3, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(d, ms(70));
        assert!((keep - 0.45).abs() < 1e-9);
        assert_eq!(t.judge(7, 3, Some(Ipv4Addr::new(10, 0, 0, 6))).0, ms(20));
        assert_eq!(
            t.judge(8, 4, Some(Ipv4Addr::new(10, 0, 0, 5))).0,
            ms(0),
            "another bridge"
        );
        let mut hdr = [0u8; 20];
        hdr[0] = 0x45;
        hdr[16..20].copy_from_slice(&[10, 0, 0, 5]);
        assert_eq!(destination(&hdr), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(destination(&hdr[..10]), None);
    }
}
