//! `http --rate R ...`: the load of the lecture's web-caching example.
//!
//! Requests leave at a steady rate (open loop: a slow answer does not slow
//! the next request, as independent browsers would not wait for each
//! other), each for an object of `--size` bytes. `--repeat P` is the share
//! of requests for an object already asked for, which is what sets a
//! cache's hit rate; the rest ask for objects never asked for before
//! (numbered from a random start, so also new after an earlier run).
//! The summary gives the hit rate the proxy reported (`X-Cache`), the
//! response times and the throughput seen.

use super::http::{Client, Url};
use rand::Rng;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Requests waiting for an answer at once, at most: beyond this the link
/// is hopelessly overloaded and more threads would not help.
const MAX_IN_FLIGHT: usize = 512;

pub struct Load {
    pub rate: f64,
    pub size: u64,
    pub duration: Duration,
    pub repeat: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub rate: f64,
    pub size: u64,
    pub repeat: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub completed: u64,
    pub failed: u64,
    /// Not sent: too many requests already waiting.
    pub skipped: u64,
    pub hits: u64,
    pub misses: u64,
    pub revalidated: u64,
    pub hit_rate: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub bytes: u64,
    /// Body bits received per second over the run.
    pub throughput_bps: f64,
    /// First failures, for the reader.
    pub errors: Vec<String>,
}

struct Done {
    ms: f64,
    result: Result<(u16, String, u64), String>,
}

/// The URL of object `id`: `BASE` + `ID-SIZE.jpg` (the origin's load objects).
fn object_url(base: &Url, id: u64, size: u64) -> Url {
    let mut u = base.clone();
    if !u.path.ends_with('/') {
        u.path.push('/');
    }
    u.path.push_str(&format!("{id}-{size}.jpg"));
    u
}

pub fn run(base: &Url, client: &Client, load: &Load, progress: bool) -> Summary {
    let (tx, rx) = mpsc::channel::<Done>();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / load.rate.max(0.001));
    let mut rng = rand::thread_rng();
    let mut asked: Vec<u64> = Vec::new();
    // New objects are new to every cache, also after an earlier run.
    let first: u64 = rng.gen_range(1..4_000_000_000);
    let (mut sent, mut skipped, mut in_flight) = (0u64, 0u64, 0usize);
    let mut done: Vec<Done> = Vec::new();
    let mut next_report = start + Duration::from_secs(1);
    let collect = |d: Done, done: &mut Vec<Done>, in_flight: &mut usize| {
        *in_flight -= 1;
        done.push(d);
    };
    while start.elapsed() < load.duration {
        let due = start + interval.mul_f64(sent as f64 + skipped as f64);
        // Collect answers while waiting for the next departure.
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            if let Ok(d) = rx.recv_timeout(due - now) {
                collect(d, &mut done, &mut in_flight);
            }
        }
        if in_flight >= MAX_IN_FLIGHT {
            skipped += 1;
            continue;
        }
        let id = if !asked.is_empty() && rng.gen::<f64>() < load.repeat {
            asked[rng.gen_range(0..asked.len())]
        } else {
            let id = first + asked.len() as u64;
            asked.push(id);
            id
        };
        let url = object_url(base, id, load.size);
        let mut c = client.fresh();
        let tx = tx.clone();
        in_flight += 1;
        sent += 1;
        std::thread::spawn(move || {
            let t = Instant::now();
            let result = c.fetch("GET", &url, &[]).map(|(r, _)| {
                let cache = r
                    .head
                    .header("x-cache")
                    .map(|v| String::from_utf8_lossy(v).to_string())
                    .unwrap_or_default();
                (r.head.status, cache, r.body_len)
            });
            let _ = tx.send(Done {
                ms: t.elapsed().as_secs_f64() * 1e3,
                result,
            });
        });
        if progress && Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let hits = done
                .iter()
                .filter(|d| matches!(&d.result, Ok((_, c, _)) if c == "HIT"))
                .count();
            eprintln!(
                "{:>5.1}s  sent {sent:>5}  answered {:>5}  hits {hits:>5}  waiting {in_flight:>3}",
                start.elapsed().as_secs_f64(),
                done.len()
            );
        }
    }
    // Wait for the stragglers (each is bounded by the client's timeout).
    drop(tx);
    while in_flight > 0 {
        match rx.recv() {
            Ok(d) => collect(d, &mut done, &mut in_flight),
            Err(_) => break,
        }
    }
    summarize(load, start.elapsed(), sent, skipped, done)
}

fn summarize(load: &Load, took: Duration, sent: u64, skipped: u64, done: Vec<Done>) -> Summary {
    let mut ms: Vec<f64> = Vec::new();
    let (mut hits, mut misses, mut reval, mut failed, mut bytes) = (0, 0, 0, 0, 0);
    let mut errors = Vec::new();
    for d in &done {
        match &d.result {
            Ok((status, cache, len)) if *status < 400 => {
                ms.push(d.ms);
                bytes += len;
                match cache.as_str() {
                    "HIT" => hits += 1,
                    "REVALIDATED" => reval += 1,
                    _ => misses += 1,
                }
            }
            Ok((status, _, _)) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(format!("status {status}"));
                }
            }
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(e.clone());
                }
            }
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((ms.len() - 1) as f64 * p).round() as usize]
        }
    };
    let completed = ms.len() as u64;
    let secs = took.as_secs_f64().max(1e-3);
    Summary {
        rate: load.rate,
        size: load.size,
        repeat: load.repeat,
        duration_s: secs,
        requests: sent,
        completed,
        failed,
        skipped,
        hits,
        misses,
        revalidated: reval,
        hit_rate: if completed == 0 {
            0.0
        } else {
            hits as f64 / completed as f64
        },
        mean_ms: if ms.is_empty() {
            0.0
        } else {
            ms.iter().sum::<f64>() / ms.len() as f64
        },
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        max_ms: ms.last().copied().unwrap_or(0.0),
        bytes,
        throughput_bps: bytes as f64 * 8.0 / secs,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_urls_and_the_summary() {
        let base = Url::parse("http://origin/load").unwrap();
        assert_eq!(object_url(&base, 7, 12500).path, "/load/7-12500.jpg");
        let load = Load {
            rate: 10.0,
            size: 100,
            duration: Duration::from_secs(1),
            repeat: 0.5,
        };
        let d = |ms: f64, cache: &str| Done {
            ms,
            result: Ok((200, cache.to_string(), 100)),
        };
        let s = summarize(
            &load,
            Duration::from_secs(2),
            5,
            0,
            vec![
                d(10.0, "MISS"),
                d(1.0, "HIT"),
                d(2.0, "HIT"),
                d(30.0, "REVALIDATED"),
                Done {
                    ms: 5.0,
                    result: Err("refused".into()),
                },
            ],
        );
        assert_eq!(
            (s.completed, s.failed, s.hits, s.misses, s.revalidated),
            (4, 1, 2, 1, 1)
        );
        assert!((s.hit_rate - 0.5).abs() < 1e-9);
        assert_eq!((s.p50_ms, s.max_ms), (10.0, 30.0));
        assert_eq!(s.throughput_bps, 400.0 * 8.0 / 2.0);
    }
}
