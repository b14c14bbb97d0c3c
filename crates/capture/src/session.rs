//! A capture session: one student network's pcap ring and decoder, fed by
//! the host's one tap (`Hub`).
//!
//! A session first replays what its ring already holds (frames recorded
//! before a controller restart), decoding it into the sink, so the frame
//! list and the events survive a restart as long as the ring keeps the
//! frames. Then it joins the hub, which finds its bridge (again after the
//! bridge was recreated), makes it promiscuous, and hands each of its
//! frames to the session: written to the ring, decoded, and the frame's
//! summary and the events it completed given to the sink.
//!
//! One tap, one kernel ring and one thread for every network of the host,
//! as `tcpdump -i any`: the capture's memory grows with the traffic (the
//! decoders' flows), not with the number of networks. Dropping the session
//! leaves the hub.

use crate::decoder::Decoder;
use crate::decoder::FrameInfo;
use crate::event::Event;
use crate::ring::Ring;
use crate::tap::{Received, Tap};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a session counts, readable while it runs.
#[derive(Default)]
pub struct Stats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames the kernel dropped because the thread fell behind.
    pub drops: AtomicU64,
    /// Whether the tap is open now.
    pub open: AtomicBool,
    /// Flushes asked for, and done: a download first has the ring flushed.
    flush_asked: AtomicU64,
    flush_done: AtomicU64,
}

impl Stats {
    /// Have the thread write out buffered frames; wait up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let want = self.flush_asked.fetch_add(1, Ordering::SeqCst) + 1;
        FLUSH_WANTED.store(true, Ordering::SeqCst);
        let t = Instant::now();
        while self.flush_done.load(Ordering::SeqCst) < want {
            if t.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

pub type Sink = Box<dyn FnMut(FrameInfo, Vec<Event>) + Send>;

pub struct Session {
    state: Arc<Mutex<Joined>>,
    slot: Arc<Mutex<Slot>>,
    pub stats: Arc<Stats>,
}

/// Where a session is with the hub.
enum Joined {
    /// Replaying its ring (on a thread of its own).
    Replaying,
    Member(u64),
    Left,
}

/// What the hub's thread works on for one session.
struct Slot {
    ifname: String,
    ring: Ring,
    decoder: Decoder,
    sink: Sink,
    events: Vec<Event>,
    stats: Arc<Stats>,
}

impl Slot {
    fn frame(&mut self, r: &Received, data: &[u8]) {
        if let Err(e) = self.ring.write(r.time, r.wire_len as u32, data) {
            tracing::warn!(ifname = self.ifname, "pcap ring: {e}");
        }
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(r.wire_len as u64, Ordering::Relaxed);
        let info = self
            .decoder
            .frame(r.time.as_secs_f64(), data, &mut self.events);
        (self.sink)(info, std::mem::take(&mut self.events));
    }

    /// Write out buffered frames if asked (or `always`).
    fn flush(&mut self, always: bool) {
        let asked = self.stats.flush_asked.load(Ordering::SeqCst);
        if always || asked > self.stats.flush_done.load(Ordering::SeqCst) {
            let _ = self.ring.flush();
            self.stats.flush_done.store(asked, Ordering::SeqCst);
        }
    }
}

impl Session {
    /// Capture on `ifname` into the ring at `dir` (at most `ring_bytes`).
    pub fn spawn(
        ifname: String,
        dir: PathBuf,
        ring_bytes: u64,
        decoder: Decoder,
        sink: Sink,
    ) -> std::io::Result<Session> {
        let hub = Hub::get()?;
        let old_files = crate::ring::files(&dir);
        let ring = Ring::open(&dir, ring_bytes)?;
        let stats = Arc::new(Stats::default());
        let slot = Arc::new(Mutex::new(Slot {
            ifname: ifname.clone(),
            ring,
            decoder,
            sink,
            events: Vec::new(),
            stats: stats.clone(),
        }));
        let state = Arc::new(Mutex::new(Joined::Replaying));
        let (sl, st, sts) = (slot.clone(), state.clone(), stats.clone());
        // What was recorded before this session is decoded again first, on
        // a thread of its own (a restart replays many rings at once, and
        // the hub's thread never waits on one); then the session joins.
        std::thread::Builder::new()
            .name(format!("replay-{ifname}"))
            .spawn(move || {
                let mut replayed = 0u64;
                {
                    let mut slot = sl.lock().unwrap_or_else(|e| e.into_inner());
                    let Slot {
                        decoder,
                        sink,
                        events,
                        ..
                    } = &mut *slot;
                    for f in &old_files {
                        if matches!(*st.lock().unwrap_or_else(|e| e.into_inner()), Joined::Left) {
                            return;
                        }
                        let _ = crate::ring::each_frame(f, |time, data| {
                            let info = decoder.frame(time.as_secs_f64(), data, events);
                            sink(info, std::mem::take(events));
                            replayed += 1;
                        });
                    }
                }
                if replayed > 0 {
                    tracing::info!(
                        ifname,
                        frames = replayed,
                        "earlier capture replayed from the ring"
                    );
                }
                let mut state = st.lock().unwrap_or_else(|e| e.into_inner());
                if matches!(*state, Joined::Replaying) {
                    *state = Joined::Member(hub.join(ifname, sl.clone(), sts));
                }
            })?;
        Ok(Session { state, slot, stats })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Joined::Member(id) = *state {
            if let Ok(hub) = Hub::get() {
                hub.leave(id);
            }
        }
        *state = Joined::Left;
        drop(state);
        self.slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush(true);
    }
}

/// Any session asked for a flush since the hub last looked.
static FLUSH_WANTED: AtomicBool = AtomicBool::new(false);

type Slots = HashMap<i32, Arc<Mutex<Slot>>>;

/// What the hub has told the kernel about its tap: the interfaces made
/// promiscuous, and those its filter passes (a new filter only on change).
#[derive(Default)]
struct InKernel {
    promisc: HashSet<i32>,
    filter: Vec<i32>,
}

struct Member {
    ifname: String,
    slot: Arc<Mutex<Slot>>,
    /// The slot's, here so the hub never locks a slot under `members`.
    stats: Arc<Stats>,
    /// The bridge's index while it exists.
    ifindex: Option<i32>,
}

/// The host's one tap and the sessions it feeds.
pub struct Hub {
    members: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
    /// Set when members change: the thread refreshes its view at once.
    changed: AtomicBool,
}

static HUB: OnceLock<Result<Arc<Hub>, String>> = OnceLock::new();

/// How often bridges are looked for (a new one, or one recreated).
const REFRESH: Duration = Duration::from_millis(300);

impl Hub {
    /// The hub, its tap opened and its thread started on first use.
    pub fn get() -> std::io::Result<Arc<Hub>> {
        HUB.get_or_init(|| {
            let hub = Arc::new(Hub {
                members: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                changed: AtomicBool::new(true),
            });
            let tap = Tap::open_all(Duration::from_millis(50)).map_err(|e| e.to_string())?;
            let h = hub.clone();
            std::thread::Builder::new()
                .name("capture-hub".into())
                .spawn(move || h.run(tap))
                .map_err(|e| e.to_string())?;
            Ok(hub)
        })
        .clone()
        .map_err(std::io::Error::other)
    }

    fn join(&self, ifname: String, slot: Arc<Mutex<Slot>>, stats: Arc<Stats>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Member {
                    ifname,
                    slot,
                    stats,
                    ifindex: None,
                },
            );
        self.changed.store(true, Ordering::SeqCst);
        id
    }

    fn leave(&self, id: u64) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.changed.store(true, Ordering::SeqCst);
    }

    /// Find every member's bridge, make the new ones promiscuous, tell the
    /// filter when the set changed, and give the thread its index →
    /// session map. Also every member, bridge or not (a flush is answered
    /// for all).
    fn refresh(&self, tap: &Tap, k: &mut InKernel) -> (Slots, Vec<Arc<Mutex<Slot>>>) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_index = HashMap::new();
        let all = members.values().map(|m| m.slot.clone()).collect();
        for m in members.values_mut() {
            let now = crate::tap::index_of(&m.ifname).ok().map(|i| i as i32);
            if now != m.ifindex {
                tracing::debug!(ifname = m.ifname, ifindex = ?now, "tap {}", if now.is_some() { "open" } else { "closed" });
                m.ifindex = now;
            }
            m.stats.open.store(now.is_some(), Ordering::Relaxed);
            if let Some(i) = now {
                by_index.insert(i, m.slot.clone());
            }
        }
        drop(members);
        for i in by_index.keys() {
            if !k.promisc.contains(i) && tap.add_promisc(*i).is_ok() {
                k.promisc.insert(*i);
            }
        }
        k.promisc.retain(|i| {
            by_index.contains_key(i) || {
                // Gone with its bridge, or no longer captured.
                let _ = tap.drop_promisc(*i);
                false
            }
        });
        let mut wanted: Vec<i32> = by_index.keys().copied().collect();
        wanted.sort_unstable();
        if wanted != k.filter {
            match tap.set_interfaces(&wanted) {
                Ok(()) => k.filter = wanted,
                Err(e) => tracing::warn!("capture filter: {e}"),
            }
        }
        (by_index, all)
    }

    fn run(&self, mut tap: Tap) {
        let mut buf = vec![0u8; 65536];
        let mut k = InKernel::default();
        let mut slots: Slots = HashMap::new();
        let mut all = Vec::new();
        let mut refreshed = Instant::now() - REFRESH;
        let mut flushed = Instant::now();
        loop {
            if self.changed.swap(false, Ordering::SeqCst) || refreshed.elapsed() >= REFRESH {
                (slots, all) = self.refresh(&tap, &mut k);
                refreshed = Instant::now();
            }
            match tap.recv(&mut buf) {
                Ok(Some(r)) => {
                    if let Some(slot) = slots.get(&r.ifindex) {
                        slot.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .frame(&r, &buf[..r.captured]);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("host tap: {e}; opening it again");
                    std::thread::sleep(Duration::from_millis(300));
                    match Tap::open_all(Duration::from_millis(50)) {
                        Ok(t) => {
                            tap = t;
                            k = InKernel::default();
                            self.changed.store(true, Ordering::SeqCst);
                        }
                        Err(e) => tracing::warn!("host tap: {e}"),
                    }
                }
            }
            let every = flushed.elapsed() > Duration::from_millis(200);
            if every || FLUSH_WANTED.swap(false, Ordering::SeqCst) {
                let drops = if every {
                    tap.stats().map(|(_, d)| d).unwrap_or(0)
                } else {
                    0
                };
                for slot in &all {
                    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                    s.flush(every);
                    // The kernel counts drops for the one socket: every
                    // network is told (any of them may have lost frames).
                    s.stats.drops.fetch_add(drops, Ordering::Relaxed);
                }
                if every {
                    flushed = Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::Limits;

    #[test]
    fn a_session_gets_its_interfaces_frames_from_the_hub_and_keeps_them() {
        // Needs CAP_NET_RAW (the tests run as root, as the controller does).
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(0u64));
        let s2 = seen.clone();
        let sink: Sink = Box::new(move |_info, _events| *s2.lock().unwrap() += 1);
        let session = Session::spawn(
            "lo".into(),
            dir.path().join("ring"),
            1 << 20,
            Decoder::new(Limits::default()),
            sink,
        )
        .unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = Instant::now();
        while *seen.lock().unwrap() == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "no frame reached the session"
            );
            sock.send_to(b"applab-hub-probe", sock.local_addr().unwrap())
                .unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(session.stats.open.load(Ordering::Relaxed));
        assert!(
            session.stats.flush(Duration::from_secs(2)),
            "a flush is answered"
        );
        drop(session);
        // The frames are in the ring, and a new session replays them.
        let replayed = Arc::new(Mutex::new(0u64));
        let r2 = replayed.clone();
        let again = Session::spawn(
            "applab-no-such-bridge".into(),
            dir.path().join("ring"),
            1 << 20,
            Decoder::new(Limits::default()),
            Box::new(move |_, _| *r2.lock().unwrap() += 1),
        )
        .unwrap();
        let t = Instant::now();
        while *replayed.lock().unwrap() == 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "nothing replayed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A bridge that does not exist: not open, yet a flush is answered.
        assert!(again.stats.flush(Duration::from_secs(2)));
        assert!(!again.stats.open.load(Ordering::Relaxed));
    }
}
