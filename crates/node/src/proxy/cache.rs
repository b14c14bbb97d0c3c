//! The proxy's store: responses kept in memory under their URI, with the
//! RFC 9111 decisions (may this be stored, is it fresh for this request,
//! how to revalidate it) made by http-cache-semantics.
//!
//! Memory is bounded: every entry is charged its body and header bytes, and
//! the least recently used entries go when the total would pass the
//! capacity. One URI may hold several responses when the origin varies them
//! (`Vary`). Concurrent misses for one URI wait for the first one's fetch
//! instead of each going to the origin (`Inflight`).

use super::message::{self, from_map};
use applab_proto::http::ResponseHead;
use bytes::Bytes;
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch;

/// What the cache keeps of one response.
pub struct Stored {
    pub policy: CachePolicy,
    /// The request that fetched it: its fields are what `Vary` compares.
    pub request: http::request::Parts,
    /// Status and header fields as the origin sent them (end-to-end only).
    pub head: ResponseHead,
    pub body: Bytes,
}

impl Stored {
    fn charge(&self, key: &str) -> usize {
        let headers: usize = self
            .head
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        // Fixed overhead of the entry and its policy's maps.
        key.len() + headers * 2 + self.body.len() + 512
    }

    /// The stored header fields with `Age` as of `now` (RFC 9111 §5.1).
    pub fn headers_now(&self, now: SystemTime) -> Vec<(String, Vec<u8>)> {
        let mut h = self.head.headers.clone();
        message::set_header(
            &mut h,
            "Age",
            self.policy.age(now).as_secs().to_string().into_bytes(),
        );
        h
    }
}

/// What the store has for a request.
pub enum Lookup {
    /// Fresh for this request: answer from the cache.
    Fresh(Arc<Stored>),
    /// Stored but must be revalidated; send these header fields (with the
    /// validators added) to the origin.
    Stale(Arc<Stored>, Vec<(String, Vec<u8>)>),
    Miss,
}

pub struct Cache {
    inner: Mutex<Inner>,
    capacity: usize,
    pub max_object: usize,
    pub opts: CacheOptions,
}

struct Inner {
    /// Per URI, its variants (one unless the origin sends `Vary`).
    lru: lru::LruCache<String, Vec<Arc<Stored>>>,
    bytes: usize,
    inflight: HashMap<String, watch::Receiver<()>>,
}

/// A fetch in progress for a URI; the others wait on it. Dropping it (the
/// fetch finished, stored or not, or failed) wakes them.
pub struct Inflight {
    cache: Arc<Cache>,
    key: String,
    _done: watch::Sender<()>,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.cache.inner.lock() {
            inner.inflight.remove(&self.key);
        }
    }
}

/// Either this request fetches (and the others wait), or it waits.
pub enum Turn {
    Fetch(Inflight),
    Wait(watch::Receiver<()>),
}

/// Current cache contents, for the stats endpoint.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    pub objects: usize,
    pub bytes: usize,
    pub capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize, max_object: usize) -> Cache {
        Cache {
            inner: Mutex::new(Inner {
                lru: lru::LruCache::unbounded(),
                bytes: 0,
                inflight: HashMap::new(),
            }),
            capacity,
            max_object: max_object.min(capacity),
            opts: CacheOptions {
                shared: true,
                ..CacheOptions::default()
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data
        // (every change is a single insert or remove): keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Find a response for a GET or HEAD request. A HEAD is answered from a
    /// stored GET (RFC 9110 §9.3.2), so it is looked up as that GET.
    pub fn lookup(&self, key: &str, req: &http::request::Parts, now: SystemTime) -> Lookup {
        let variants = match self.lock().lru.get(key) {
            Some(v) => v.clone(),
            None => return Lookup::Miss,
        };
        let mut as_get;
        let req = if req.method == http::Method::HEAD {
            as_get = req.clone();
            as_get.method = http::Method::GET;
            &as_get
        } else {
            req
        };
        let mut stale = None;
        for s in variants {
            match s.policy.before_request(req, now) {
                BeforeRequest::Fresh(_) => return Lookup::Fresh(s),
                BeforeRequest::Stale {
                    request,
                    matches: true,
                } if stale.is_none() => stale = Some((s, from_map(&request.headers))),
                _ => {}
            }
        }
        match stale {
            Some((s, h)) => Lookup::Stale(s, h),
            None => Lookup::Miss,
        }
    }

    /// Keep a response, replacing the variant it supersedes; evict the
    /// least recently used entries beyond the capacity. Returns whether it
    /// was kept (too big or not storable: not).
    pub fn store(&self, key: &str, s: Stored) -> bool {
        if !s.policy.is_storable() || s.body.len() > self.max_object {
            return false;
        }
        // `Vary: *` never matches a later request: nothing to keep.
        if s.head
            .header("vary")
            .is_some_and(|v| v.trim_ascii() == b"*")
        {
            return false;
        }
        let charge = s.charge(key);
        if charge > self.capacity {
            return false;
        }
        let s = Arc::new(s);
        let mut inner = self.lock();
        let mut variants = inner.lru.pop(key).unwrap_or_default();
        let before: usize = variants.iter().map(|v| v.charge(key)).sum();
        // The same variant: the stored request would select the new one.
        variants.retain(|v| !same_variant(v, &s));
        variants.push(s);
        let after: usize = variants.iter().map(|v| v.charge(key)).sum();
        inner.bytes = inner.bytes - before + after;
        inner.lru.push(key.to_string(), variants);
        while inner.bytes > self.capacity {
            match inner.lru.pop_lru() {
                Some((k, gone)) => {
                    let freed: usize = gone.iter().map(|v| v.charge(&k)).sum();
                    inner.bytes -= freed;
                    tracing::debug!(uri = %k, freed, "evicted");
                }
                None => break,
            }
        }
        true
    }

    /// Forget every response for a URI (an unsafe method changed it,
    /// RFC 9111 §4.4).
    pub fn invalidate(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(gone) = inner.lru.pop(key) {
            let freed: usize = gone.iter().map(|v| v.charge(key)).sum();
            inner.bytes -= freed;
        }
    }

    /// Take the turn to fetch `key`, or the means to wait for whoever has it.
    pub fn turn(self: &Arc<Self>, key: &str) -> Turn {
        let mut inner = self.lock();
        if let Some(rx) = inner.inflight.get(key) {
            return Turn::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        inner.inflight.insert(key.to_string(), rx);
        Turn::Fetch(Inflight {
            cache: self.clone(),
            key: key.to_string(),
            _done: tx,
        })
    }

    pub fn usage(&self) -> Usage {
        let inner = self.lock();
        Usage {
            objects: inner.lru.len(),
            bytes: inner.bytes,
            capacity: self.capacity,
        }
    }

    /// Build the policy for a response fetched with `req`.
    pub fn policy(
        &self,
        req: &http::request::Parts,
        head: &ResponseHead,
        reverse: bool,
        now: SystemTime,
    ) -> CachePolicy {
        let mut res = message::response_parts(head);
        // RFC 9213: a CDN (the reverse mode) obeys CDN-Cache-Control in
        // place of Cache-Control when the origin sends a valid one.
        if reverse {
            let valid =
                |v: &http::HeaderValue| applab_proto::caching::valid_dictionary(v.as_bytes());
            if let Some(v) = res
                .headers
                .get("cdn-cache-control")
                .filter(|v| valid(v))
                .cloned()
            {
                res.headers.remove(http::header::CACHE_CONTROL);
                res.headers.insert(http::header::CACHE_CONTROL, v);
            }
        }
        CachePolicy::new_options(req, &res, now, self.opts)
    }
}

fn same_variant(old: &Stored, new: &Stored) -> bool {
    let Some(vary) = new.head.header("vary") else {
        return true;
    };
    String::from_utf8_lossy(vary)
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .all(|n| old.request.headers.get(&n) == new.request.headers.get(&n))
}

/// A stored response brought up to date by a 304 (RFC 9111 §4.3.4): every
/// field the 304 carries replaces the stored ones of that name, except the
/// ones describing the stored body's framing.
pub fn merge_304(stored: &ResponseHead, fresh: &ResponseHead) -> ResponseHead {
    const KEEP: &[&str] = &[
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "content-range",
    ];
    let mut head = stored.clone();
    let mut replaced: Vec<String> = Vec::new();
    for (n, v) in &message::end_to_end(&fresh.headers) {
        let lower = n.to_ascii_lowercase();
        if KEEP.contains(&lower.as_str()) {
            continue;
        }
        if !replaced.contains(&lower) {
            head.headers.retain(|(m, _)| !m.eq_ignore_ascii_case(n));
            replaced.push(lower);
        }
        head.headers.push((n.clone(), v.clone()));
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn head(status: u16, h: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            minor: 1,
            status,
            reason: String::new(),
            headers: h
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn req(uri: &str, h: &[(&str, &str)]) -> http::request::Parts {
        let hs: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        message::request_parts("GET", uri, &hs)
    }

    fn stored(
        c: &Cache,
        uri: &str,
        rq: &[(&str, &str)],
        rs: &[(&str, &str)],
        body: &str,
    ) -> Stored {
        let request = req(uri, rq);
        let head = head(200, rs);
        Stored {
            policy: c.policy(&request, &head, false, SystemTime::now()),
            request,
            head,
            body: Bytes::from(body.to_string()),
        }
    }

    const U: &str = "http://o/a";

    #[test]
    fn fresh_then_stale_with_validators() {
        let c = Cache::new(1 << 20, 1 << 20);
        let s = stored(
            &c,
            U,
            &[("host", "o")],
            &[("cache-control", "max-age=10"), ("etag", "\"v1\"")],
            "x",
        );
        assert!(c.store(U, s));
        let now = SystemTime::now();
        assert!(matches!(
            c.lookup(U, &req(U, &[("host", "o")]), now),
            Lookup::Fresh(_)
        ));
        let mut head = req(U, &[("host", "o")]);
        head.method = http::Method::HEAD;
        assert!(
            matches!(c.lookup(U, &head, now), Lookup::Fresh(_)),
            "HEAD from GET"
        );
        match c.lookup(U, &req(U, &[("host", "o")]), now + Duration::from_secs(11)) {
            Lookup::Stale(_, h) => assert!(h
                .iter()
                .any(|(n, v)| n == "If-None-Match" && v == b"\"v1\"")),
            _ => panic!("stale expected"),
        }
        // The client's own no-cache forces revalidation.
        let nc = req(U, &[("host", "o"), ("cache-control", "no-cache")]);
        assert!(matches!(c.lookup(U, &nc, now), Lookup::Stale(..)));
    }

    #[test]
    fn vary_keeps_variants_apart() {
        let c = Cache::new(1 << 20, 1 << 20);
        let rs = [("cache-control", "max-age=60"), ("vary", "Accept-Language")];
        assert!(c.store(
            U,
            stored(&c, U, &[("accept-language", "fr")], &rs, "bonjour")
        ));
        assert!(c.store(U, stored(&c, U, &[("accept-language", "en")], &rs, "hello")));
        let now = SystemTime::now();
        let body = |lang: &str| match c.lookup(U, &req(U, &[("accept-language", lang)]), now) {
            Lookup::Fresh(s) => String::from_utf8_lossy(&s.body).into_owned(),
            _ => "miss".into(),
        };
        assert_eq!(
            (body("fr"), body("en"), body("de")),
            ("bonjour".into(), "hello".into(), "miss".into())
        );
        assert_eq!(c.usage().objects, 1);
    }

    #[test]
    fn not_storable_and_eviction() {
        let c = Cache::new(8 * 1024, 4 * 1024);
        for cc in ["no-store", "private"] {
            assert!(!c.store(U, stored(&c, U, &[], &[("cache-control", cc)], "x")));
        }
        let big = "b".repeat(5000);
        assert!(!c.store(
            U,
            stored(&c, U, &[], &[("cache-control", "max-age=9")], &big)
        ));
        let obj = "o".repeat(3000);
        for i in 0..5 {
            let u = format!("http://o/{i}");
            assert!(c.store(
                &u,
                stored(&c, &u, &[], &[("cache-control", "max-age=9")], &obj)
            ));
        }
        let u = c.usage();
        assert!(u.bytes <= 8 * 1024 && u.objects == 2, "{u:?}");
        let now = SystemTime::now();
        assert!(matches!(
            c.lookup("http://o/4", &req("http://o/4", &[]), now),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            c.lookup("http://o/0", &req("http://o/0", &[]), now),
            Lookup::Miss
        ));
        c.invalidate("http://o/4");
        assert!(matches!(
            c.lookup("http://o/4", &req("http://o/4", &[]), now),
            Lookup::Miss
        ));
    }

    #[test]
    fn a_304_replaces_fields_but_not_the_framing() {
        let old = head(
            200,
            &[
                ("ETag", "\"1\""),
                ("Cache-Control", "max-age=1"),
                ("Content-Length", "5"),
                ("X-A", "a"),
            ],
        );
        let new = head(
            304,
            &[
                ("Cache-Control", "max-age=60"),
                ("Content-Length", "0"),
                ("X-B", "b"),
            ],
        );
        let m = merge_304(&old, &new);
        assert_eq!(m.status, 200);
        assert_eq!(m.header("cache-control"), Some(&b"max-age=60"[..]));
        assert_eq!(m.header("content-length"), Some(&b"5"[..]));
        assert_eq!(m.header("x-a"), Some(&b"a"[..]));
        assert_eq!(m.header("x-b"), Some(&b"b"[..]));
    }

    #[tokio::test]
    async fn concurrent_misses_wait_for_one_fetch() {
        let c = Arc::new(Cache::new(1 << 20, 1 << 20));
        let first = match c.turn(U) {
            Turn::Fetch(f) => f,
            Turn::Wait(_) => panic!("first fetches"),
        };
        let Turn::Wait(mut rx) = c.turn(U) else {
            panic!("second waits")
        };
        let waiter = tokio::spawn(async move { rx.changed().await.is_err() });
        drop(first);
        assert!(waiter.await.unwrap(), "woken when the fetch ends");
        assert!(matches!(c.turn(U), Turn::Fetch(_)));
    }
}
