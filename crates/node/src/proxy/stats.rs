//! What the proxy has done, in total and over the last minute: the numbers
//! the web-caching lab reads (hit rate, bytes from the origin across the
//! access link, bytes to the clients on the campus side).

use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds covered by the sliding window.
pub const WINDOW: u64 = 60;

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub revalidations: u64,
    /// Requests answered with an error by the proxy itself (502, 504 ...).
    pub errors: u64,
    pub bytes_from_origin: u64,
    pub bytes_to_clients: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.hits += o.hits;
        self.misses += o.misses;
        self.revalidations += o.revalidations;
        self.errors += o.errors;
        self.bytes_from_origin += o.bytes_from_origin;
        self.bytes_to_clients += o.bytes_to_clients;
    }

    /// Hits over requests that could be cached (hits, misses, revalidations).
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses + self.revalidations;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

/// How one exchange ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Revalidated,
    Error,
    /// The proxy's own pages (its counters): not counted.
    Own,
}

impl Outcome {
    pub fn x_cache(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Miss | Outcome::Error | Outcome::Own => "MISS",
        }
    }
}

pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    total: Counts,
    /// One bucket per second, `WINDOW` of them, indexed by second mod WINDOW.
    buckets: Vec<(u64, Counts)>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub uptime_seconds: f64,
    pub total: Counts,
    pub total_hit_rate: f64,
    pub window_seconds: u64,
    pub window: Counts,
    pub window_hit_rate: f64,
    pub cache: super::cache::Usage,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                total: Counts::default(),
                buckets: vec![(u64::MAX, Counts::default()); WINDOW as usize],
            }),
        }
    }
}

impl Stats {
    pub fn record(&self, outcome: Outcome, from_origin: u64, to_client: u64) {
        self.record_at(self.started.elapsed(), outcome, from_origin, to_client)
    }

    fn record_at(&self, at: Duration, outcome: Outcome, from_origin: u64, to_client: u64) {
        let mut c = Counts {
            requests: 1,
            bytes_from_origin: from_origin,
            bytes_to_clients: to_client,
            ..Counts::default()
        };
        match outcome {
            Outcome::Hit => c.hits = 1,
            Outcome::Miss => c.misses = 1,
            Outcome::Revalidated => c.revalidations = 1,
            Outcome::Error => c.errors = 1,
            Outcome::Own => return,
        }
        let sec = at.as_secs();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total.add(&c);
        let slot = &mut inner.buckets[(sec % WINDOW) as usize];
        if slot.0 != sec {
            *slot = (sec, Counts::default());
        }
        slot.1.add(&c);
    }

    pub fn report(&self, cache: super::cache::Usage) -> Report {
        self.report_at(self.started.elapsed(), cache)
    }

    fn report_at(&self, at: Duration, cache: super::cache::Usage) -> Report {
        let now = at.as_secs();
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut window = Counts::default();
        for (sec, c) in &inner.buckets {
            if *sec != u64::MAX && now.saturating_sub(*sec) < WINDOW && *sec <= now {
                window.add(c);
            }
        }
        Report {
            uptime_seconds: at.as_secs_f64(),
            total: inner.total,
            total_hit_rate: inner.total.hit_rate(),
            window_seconds: WINDOW.min(now + 1),
            window,
            window_hit_rate: window.hit_rate(),
            cache,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let s = Stats::default();
        let usage = super::super::cache::Usage {
            objects: 0,
            bytes: 0,
            capacity: 1,
        };
        s.record_at(Duration::from_secs(1), Outcome::Miss, 1000, 1000);
        s.record_at(Duration::from_secs(30), Outcome::Hit, 0, 1000);
        s.record_at(Duration::from_secs(30), Outcome::Hit, 0, 1000);
        let r = s.report_at(Duration::from_secs(40), usage);
        assert_eq!(
            (r.window.requests, r.window.hits, r.window.misses),
            (3, 2, 1)
        );
        assert!((r.window_hit_rate - 2.0 / 3.0).abs() < 1e-9);
        let r = s.report_at(Duration::from_secs(75), usage);
        assert_eq!((r.window.requests, r.window.hits), (2, 2));
        assert_eq!(r.window.bytes_from_origin, 0);
        assert_eq!((r.total.requests, r.total.bytes_from_origin), (3, 1000));
        // A bucket reused a minute later starts from zero.
        s.record_at(Duration::from_secs(91), Outcome::Revalidated, 10, 10);
        let r = s.report_at(Duration::from_secs(91), usage);
        assert_eq!((r.window.requests, r.window.revalidations), (1, 1));
    }
}
