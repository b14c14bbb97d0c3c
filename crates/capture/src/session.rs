//! A capture session: one tap, its pcap ring, its decoder, on one thread.
//!
//! The thread first replays what the ring already holds (frames recorded
//! before a controller restart), decoding it into the sink, so the frame
//! list and the events survive a restart as long as the ring keeps the
//! frames. Then it opens the tap (and keeps trying while the bridge does
//! not exist yet, or again after it was recreated), writes every frame to
//! the ring, decodes it, and hands the frame's summary and the events it
//! completed to a sink. Dropping the session stops the thread.

use crate::decoder::{Decoder, FrameInfo};
use crate::event::Event;
use crate::ring::Ring;
use crate::tap::Tap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Session {
    /// Capture on `ifname` into the ring at `dir` (at most `ring_bytes`).
    pub fn spawn(
        ifname: String,
        dir: PathBuf,
        ring_bytes: u64,
        mut decoder: Decoder,
        mut sink: Sink,
    ) -> std::io::Result<Session> {
        let old_files = crate::ring::files(&dir);
        let mut ring = Ring::open(&dir, ring_bytes)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let (st, sts) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tap-{ifname}"))
            .spawn(move || {
                let mut tap: Option<Tap> = None;
                let mut buf = vec![0u8; 65536];
                let mut last_flush = Instant::now();
                let mut events = Vec::new();
                // What was recorded before this session: decoded again.
                let mut replayed = 0u64;
                for f in &old_files {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = crate::ring::each_frame(f, |time, data| {
                        let info = decoder.frame(time.as_secs_f64(), data, &mut events);
                        sink(info, std::mem::take(&mut events));
                        replayed += 1;
                    });
                }
                if replayed > 0 {
                    tracing::info!(
                        ifname,
                        frames = replayed,
                        "earlier capture replayed from the ring"
                    );
                }
                while !st.load(Ordering::Relaxed) {
                    if tap.is_none() {
                        let asked = sts.flush_asked.load(Ordering::SeqCst);
                        sts.flush_done.store(asked, Ordering::SeqCst);
                    }
                    let Some(t) = tap.as_mut() else {
                        match Tap::open(&ifname, Duration::from_millis(50)) {
                            Ok(t) => {
                                tracing::debug!(ifname, "tap open");
                                sts.open.store(true, Ordering::Relaxed);
                                tap = Some(t);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(300)),
                        }
                        continue;
                    };
                    match t.recv(&mut buf) {
                        Ok(Some(r)) => {
                            let data = &buf[..r.captured];
                            if let Err(e) = ring.write(r.time, r.wire_len as u32, data) {
                                tracing::warn!(ifname, "pcap ring: {e}");
                            }
                            sts.frames.fetch_add(1, Ordering::Relaxed);
                            sts.bytes.fetch_add(r.wire_len as u64, Ordering::Relaxed);
                            let info = decoder.frame(r.time.as_secs_f64(), data, &mut events);
                            sink(info, std::mem::take(&mut events));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // The bridge went away (teardown, recreation): reopen.
                            tracing::debug!(ifname, "tap closed: {e}");
                            sts.open.store(false, Ordering::Relaxed);
                            tap = None;
                        }
                    }
                    let asked = sts.flush_asked.load(Ordering::SeqCst);
                    if asked > sts.flush_done.load(Ordering::SeqCst) {
                        let _ = ring.flush();
                        sts.flush_done.store(asked, Ordering::SeqCst);
                    }
                    if last_flush.elapsed() > Duration::from_millis(200) {
                        let _ = ring.flush();
                        if let Some(t) = tap.as_ref() {
                            if let Ok((_, drops)) = t.stats() {
                                sts.drops.fetch_add(drops, Ordering::Relaxed);
                            }
                        }
                        last_flush = Instant::now();
                    }
                }
                let _ = ring.flush();
            })?;
        Ok(Session {
            stop,
            thread: Some(thread),
            stats,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
