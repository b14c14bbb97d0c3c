//! Taps on every student network, and what they recorded.
//!
//! For each network of each student in the store there is one capture
//! session on the network's bridge (decision 6): it writes a bounded pcap
//! ring under `data/captures/<run>/<student>/<network>/` and decodes frames
//! into the frame list and protocol events kept here per student, with
//! addresses named after the student's nodes. Sessions follow the store:
//! [`Captures::sync`] starts what is missing (a session waits for its
//! bridge to appear, and reopens it if the bridge is recreated) and stops
//! what is no longer wanted. Subscribers get each student's events live.

use crate::plan;
use applab_capture::session::Session;
use applab_capture::{Decoder, Event, FrameInfo, Limits};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Frames and events kept in memory per student (older ones are dropped;
/// the pcap ring keeps the frames themselves).
const KEEP_FRAMES: usize = 50_000;
pub const KEEP_EVENTS: usize = 20_000;

/// A frame of the list, with its network and the nodes it went between.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Frame {
    pub network: String,
    pub src_node: Option<String>,
    pub dst_node: Option<String>,
    #[serde(flatten)]
    pub frame: FrameInfo,
}

/// A protocol event, numbered, with its network and the nodes at each end.
pub use applab_capture::event::NodeEvent;

type Key = (String, String);
/// A student's node names by address, shared with their tap threads.
type Names = Arc<RwLock<HashMap<IpAddr, String>>>;

struct StudentLog {
    frames: VecDeque<Frame>,
    events: VecDeque<NodeEvent>,
    /// The id of the last event logged (ids count from 1 per student).
    last_id: u64,
    live: Live<NodeEvent>,
    /// Frames as they are logged (the panel's live packet list).
    live_frames: Live<Frame>,
}

impl StudentLog {
    fn new() -> StudentLog {
        StudentLog {
            frames: VecDeque::new(),
            events: VecDeque::new(),
            last_id: 0,
            live: Live::new(4096),
            // Frames are many and small; a viewer that lags is told so.
            live_frames: Live::new(1024),
        }
    }
}

/// A live feed that exists only while someone watches: a broadcast
/// channel allocates all its slots up front (4,096 events are about a
/// megabyte), and most students are not watching most of the time.
struct Live<T> {
    capacity: usize,
    tx: Option<tokio::sync::broadcast::Sender<T>>,
}

impl<T: Clone> Live<T> {
    fn new(capacity: usize) -> Self {
        Live { capacity, tx: None }
    }

    fn subscribe(&mut self) -> tokio::sync::broadcast::Receiver<T> {
        match &self.tx {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = tokio::sync::broadcast::channel(self.capacity);
                self.tx = Some(tx);
                rx
            }
        }
    }

    /// Made (cloned) only while someone watches; the channel goes with
    /// the last watcher.
    fn send(&mut self, item: impl FnOnce() -> T) {
        if let Some(tx) = &self.tx {
            if tx.receiver_count() == 0 {
                self.tx = None;
            } else {
                let _ = tx.send(item());
            }
        }
    }
}

/// How many items matched, and the page of them the query asks for.
fn page<'a, T: Clone + 'a>(matching: impl Iterator<Item = &'a T>, q: &Query) -> (usize, Vec<T>) {
    let mut total = 0;
    let mut out = Vec::new();
    for item in matching {
        if total >= q.offset && out.len() < q.limit.max(1) {
            out.push(item.clone());
        }
        total += 1;
    }
    (total, out)
}

/// One student network to tap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wanted {
    pub run: String,
    pub student: String,
    pub network: String,
}

/// Told of every event as it is logged (the check engine).
pub type EventHook = Arc<dyn Fn(&str, &str, &NodeEvent) + Send + Sync>;

pub struct Captures {
    dir: PathBuf,
    hook: RwLock<Option<EventHook>>,
    ring_bytes: u64,
    sessions: Mutex<HashMap<Wanted, Session>>,
    logs: Mutex<HashMap<Key, Arc<Mutex<StudentLog>>>>,
    /// Per student: address → node name.
    names: Mutex<HashMap<Key, Names>>,
}

/// Filters for the frame list and the events.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub network: Option<String>,
    pub node: Option<String>,
    pub protocol: Option<String>,
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// One TCP connection or UDP exchange (events only; flows are numbered
    /// per network).
    pub flow: Option<u64>,
    pub offset: usize,
    pub limit: usize,
}

impl Captures {
    pub fn new(dir: PathBuf, ring_bytes: u64) -> Captures {
        Captures {
            dir,
            hook: RwLock::new(None),
            ring_bytes,
            sessions: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Have `hook` called with every event logged from now on.
    pub fn set_hook(&self, hook: EventHook) {
        *self.hook.write().expect("hook lock") = Some(hook);
    }

    /// Where one network's pcap ring lives.
    pub fn ring_dir(&self, run: &str, student: &str, network: &str) -> PathBuf {
        self.dir.join(run).join(student).join(network)
    }

    fn log(&self, run: &str, student: &str) -> Arc<Mutex<StudentLog>> {
        self.logs
            .lock()
            .expect("logs lock")
            .entry((run.to_string(), student.to_string()))
            .or_insert_with(|| Arc::new(Mutex::new(StudentLog::new())))
            .clone()
    }

    fn names_of(&self, run: &str, student: &str) -> Names {
        self.names
            .lock()
            .expect("names lock")
            .entry((run.to_string(), student.to_string()))
            .or_default()
            .clone()
    }

    /// Record which address is which node (from the engine's view).
    pub fn set_names(&self, run: &str, student: &str, names: HashMap<IpAddr, String>) {
        let n = self.names_of(run, student);
        *n.write().expect("names lock") = names;
    }

    /// Start the sessions wanted and not running; stop the others.
    pub fn sync(&self, wanted: &[Wanted]) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|w, _| wanted.contains(w));
        for w in wanted {
            if sessions.contains_key(w) {
                continue;
            }
            let bridge = plan::bridge_name(&w.run, &w.student, &w.network);
            let log = self.log(&w.run, &w.student);
            let names = self.names_of(&w.run, &w.student);
            let network = w.network.clone();
            let hook = self.hook.read().expect("hook lock").clone();
            let (run, student) = (w.run.clone(), w.student.clone());
            let sink = Box::new(move |frame: FrameInfo, events: Vec<Event>| {
                let names = names.read().expect("names lock");
                let name = |s: &str| {
                    s.parse::<IpAddr>()
                        .ok()
                        .and_then(|ip| names.get(&ip).cloned())
                };
                let mut log = log.lock().expect("log lock");
                let src_node = name(&frame.src);
                let dst_node = name(&frame.dst);
                let f = Frame {
                    network: network.clone(),
                    src_node,
                    dst_node,
                    frame,
                };
                log.live_frames.send(|| f.clone());
                log.frames.push_back(f);
                while log.frames.len() > KEEP_FRAMES {
                    log.frames.pop_front();
                }
                for event in events {
                    log.last_id += 1;
                    let e = NodeEvent {
                        seq: log.last_id,
                        network: network.clone(),
                        client_node: names.get(&event.client.ip()).cloned(),
                        server_node: names.get(&event.server.ip()).cloned(),
                        event,
                    };
                    log.live.send(|| e.clone());
                    if let Some(h) = &hook {
                        h(&run, &student, &e);
                    }
                    log.events.push_back(e);
                    while log.events.len() > KEEP_EVENTS {
                        log.events.pop_front();
                    }
                }
            });
            let dir = self.ring_dir(&w.run, &w.student, &w.network);
            match Session::spawn(
                bridge.clone(),
                dir,
                self.ring_bytes,
                Decoder::new(Limits::default()),
                sink,
            ) {
                Ok(s) => {
                    tracing::info!(
                        run = w.run,
                        student = w.student,
                        network = w.network,
                        bridge,
                        "tap started"
                    );
                    sessions.insert(w.clone(), s);
                }
                Err(e) => tracing::warn!(bridge, "cannot start a tap: {e}"),
            }
        }
    }

    /// Forget a student's record (teardown): sessions, memory and pcaps.
    pub fn forget(&self, run: &str, student: Option<&str>) {
        let matches = |r: &str, s: &str| r == run && student.is_none_or(|x| x == s);
        self.sessions
            .lock()
            .expect("sessions lock")
            .retain(|w, _| !matches(&w.run, &w.student));
        self.logs
            .lock()
            .expect("logs lock")
            .retain(|(r, s), _| !matches(r, s));
        let dir = match student {
            Some(s) => self.dir.join(run).join(s),
            None => self.dir.join(run),
        };
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Whether each of a student's taps is open now, by network.
    pub fn taps_open(&self, run: &str, student: &str) -> HashMap<String, bool> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .iter()
            .filter(|(w, _)| w.run == run && w.student == student)
            .map(|(w, s)| {
                (
                    w.network.clone(),
                    s.stats.open.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// A student's node names by address, as known now.
    pub fn names_snapshot(&self, run: &str, student: &str) -> HashMap<IpAddr, String> {
        self.names_of(run, student)
            .read()
            .expect("names lock")
            .clone()
    }

    /// Name what was recorded before the nodes' addresses were known (the
    /// tap starts before the containers do).
    fn name_late(&self, run: &str, student: &str) {
        let names = self.names_of(run, student);
        let names = names.read().expect("names lock");
        if names.is_empty() {
            return;
        }
        let name = |s: &str| {
            s.parse::<IpAddr>()
                .ok()
                .and_then(|ip| names.get(&ip).cloned())
        };
        let log = self.log(run, student);
        let mut log = log.lock().expect("log lock");
        for f in log
            .frames
            .iter_mut()
            .filter(|f| f.src_node.is_none() && f.dst_node.is_none())
        {
            f.src_node = name(&f.frame.src);
            f.dst_node = name(&f.frame.dst);
        }
        for e in log
            .events
            .iter_mut()
            .filter(|e| e.client_node.is_none() && e.server_node.is_none())
        {
            e.client_node = names.get(&e.event.client.ip()).cloned();
            e.server_node = names.get(&e.event.server.ip()).cloned();
        }
    }

    pub fn frames(&self, run: &str, student: &str, q: &Query) -> (usize, Vec<Frame>) {
        self.name_late(run, student);
        let log = self.log(run, student);
        let log = log.lock().expect("log lock");
        let keep = |f: &&Frame| {
            q.network.as_ref().is_none_or(|n| *n == f.network)
                && q.node.as_ref().is_none_or(|n| {
                    f.src_node.as_ref() == Some(n) || f.dst_node.as_ref() == Some(n)
                })
                && q.protocol
                    .as_ref()
                    .is_none_or(|p| f.frame.protocol.eq_ignore_ascii_case(p))
                && q.since.is_none_or(|t| f.frame.time >= t)
                && q.until.is_none_or(|t| f.frame.time <= t)
        };
        page(log.frames.iter().filter(keep), q)
    }

    pub fn events(&self, run: &str, student: &str, q: &Query) -> (usize, Vec<NodeEvent>) {
        self.name_late(run, student);
        let log = self.log(run, student);
        let log = log.lock().expect("log lock");
        let keep = |e: &&NodeEvent| {
            q.network.as_ref().is_none_or(|n| *n == e.network)
                && q.node.as_ref().is_none_or(|n| {
                    e.client_node.as_ref() == Some(n) || e.server_node.as_ref() == Some(n)
                })
                && q.protocol
                    .as_ref()
                    .is_none_or(|p| e.event.kind.protocol().eq_ignore_ascii_case(p))
                && q.since.is_none_or(|t| e.event.time >= t)
                && q.until.is_none_or(|t| e.event.time <= t)
                && q.flow.is_none_or(|f| e.event.flow == f)
        };
        page(log.events.iter().filter(keep), q)
    }

    /// A student's events as they happen.
    pub fn subscribe(
        &self,
        run: &str,
        student: &str,
    ) -> tokio::sync::broadcast::Receiver<NodeEvent> {
        self.log(run, student)
            .lock()
            .expect("log lock")
            .live
            .subscribe()
    }

    /// A student's frames as they are logged.
    pub fn subscribe_frames(
        &self,
        run: &str,
        student: &str,
    ) -> tokio::sync::broadcast::Receiver<Frame> {
        self.log(run, student)
            .lock()
            .expect("log lock")
            .live_frames
            .subscribe()
    }

    /// One frame of a student's network by its number, if still kept.
    pub fn frame(&self, run: &str, student: &str, network: &str, number: u64) -> Option<Frame> {
        self.name_late(run, student);
        let log = self.log(run, student);
        let log = log.lock().expect("log lock");
        log.frames
            .iter()
            .find(|f| f.network == network && f.frame.number == number)
            .cloned()
    }

    /// A frame's bytes, read back from the pcap ring (None once the ring
    /// has dropped it).
    pub fn frame_bytes(
        &self,
        run: &str,
        student: &str,
        f: &Frame,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let t = Duration::from_secs_f64(f.frame.time.max(0.0));
        let slack = Duration::from_micros(2);
        let pcap = self.pcap(run, student, &f.network, t.saturating_sub(slack), t + slack)?;
        let frames = applab_capture::pcap::read_from(&pcap[..]).map_err(std::io::Error::other)?;
        // Frames of one microsecond are told apart by their length.
        Ok(frames
            .into_iter()
            .min_by_key(|c| {
                let us = ((c.time.as_secs_f64() - f.frame.time).abs() * 1e6) as u64;
                (us, c.data.len() != f.frame.len)
            })
            .map(|c| c.data))
    }

    /// One network's frames between two times, as a pcap file.
    pub fn pcap(
        &self,
        run: &str,
        student: &str,
        network: &str,
        from: Duration,
        to: Duration,
    ) -> std::io::Result<Vec<u8>> {
        let wanted = Wanted {
            run: run.to_string(),
            student: student.to_string(),
            network: network.to_string(),
        };
        let stats = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(&wanted)
            .map(|s| s.stats.clone());
        if let Some(st) = stats {
            // Frames seen up to now are in the file before it is read.
            st.flush(Duration::from_secs(1));
        }
        applab_capture::ring::export(&self.ring_dir(run, student, network), from, to)
    }
}
