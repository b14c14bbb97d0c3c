//! The proxy's side towards origins: connections kept open and reused per
//! origin (RFC 9112 §9.3), one request at a time on each, every wait
//! bounded. A failure to connect is a 502 for the client, an origin that
//! does not answer in time a 504.

use super::message::Target;
use super::wire::{Body, Wire, WireError};
use applab_proto::http::{self, Framing, Limits, ResponseHead};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Idle connections kept per origin.
const POOL_PER_ORIGIN: usize = 64;
/// An idle connection older than this is not reused: origins close theirs
/// (ours after 15 s), and a request sent on a closing one is lost.
const POOL_IDLE: Duration = Duration::from_secs(10);

pub struct Upstream {
    pool: Mutex<HashMap<String, Vec<(Wire, Instant)>>>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{0} broke the exchange: {1}")]
    Broken(String, String),
}

impl FetchError {
    pub fn status(&self) -> u16 {
        match self {
            FetchError::Timeout(..) => 504,
            _ => 502,
        }
    }
}

/// An origin's answer whose head has been read; the body is still on `wire`.
pub struct Answer {
    pub head: ResponseHead,
    pub framing: Framing,
    pub wire: Wire,
    /// The origin authority, for returning the connection to the pool.
    pub origin: String,
    /// Bytes of the head, as they came from the origin.
    pub head_bytes: u64,
}

impl Upstream {
    pub fn new(connect_timeout: Duration, response_timeout: Duration, limits: Limits) -> Upstream {
        Upstream {
            pool: Mutex::new(HashMap::new()),
            connect_timeout,
            response_timeout,
            limits,
        }
    }

    fn pooled(&self, origin: &str) -> Option<Wire> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(origin)?;
        while let Some((w, since)) = list.pop() {
            if since.elapsed() < POOL_IDLE {
                return Some(w);
            }
        }
        None
    }

    /// Give a connection back once its last answer was read to the end.
    pub fn put_back(&self, origin: String, mut wire: Wire) {
        if !wire.buf.is_empty() {
            // Bytes beyond the answer: the origin is confused; do not reuse.
            return;
        }
        wire.bytes_in = 0;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.entry(origin).or_default();
        list.retain(|(_, since)| since.elapsed() < POOL_IDLE);
        if list.len() < POOL_PER_ORIGIN {
            list.push((wire, Instant::now()));
        }
    }

    async fn connect(&self, t: &Target) -> Result<Wire, FetchError> {
        let addr = (t.host.as_str(), t.port);
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(Wire::new(s))
            }
            Ok(Err(e)) => Err(FetchError::Connect(t.authority.clone(), e.to_string())),
            Err(_) => Err(FetchError::Timeout(
                t.authority.clone(),
                self.connect_timeout,
            )),
        }
    }

    /// Send a request and read the head of its answer. A request that may
    /// be repeated (RFC 9110 §9.2.2) goes on a kept connection when there
    /// is one, and once more on a new connection if that one turns out to
    /// have been closed by the origin before anything came back.
    pub async fn send(
        &self,
        t: &Target,
        method: &str,
        request: &[u8],
    ) -> Result<Answer, FetchError> {
        let idempotent = matches!(
            method,
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        );
        if idempotent {
            if let Some(w) = self.pooled(&t.authority) {
                match self.exchange(t, w, method, request, true).await {
                    Ok(a) => return Ok(a),
                    Err((false, _)) => {} // nothing came back: try a new one
                    Err((true, e)) => return Err(e),
                }
            }
        }
        let w = self.connect(t).await?;
        self.exchange(t, w, method, request, false)
            .await
            .map_err(|(_, e)| e)
    }

    /// One request on one connection. The error says whether any of the
    /// answer had arrived (then it must not be retried).
    async fn exchange(
        &self,
        t: &Target,
        mut wire: Wire,
        method: &str,
        request: &[u8],
        reused: bool,
    ) -> Result<Answer, (bool, FetchError)> {
        let broken = |e: String| FetchError::Broken(t.authority.clone(), e);
        if let Err(e) = wire.stream.write_all(request).await {
            return Err((false, broken(e.to_string())));
        }
        let started = Instant::now();
        loop {
            match http::parse_response_head(&wire.buf, &self.limits) {
                Ok(Some((head, n))) => {
                    wire.buf.drain(..n);
                    // Interim answers (100 Continue, 103) are not passed on.
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    let framing = http::response_framing(method, &head)
                        .map_err(|e| (true, broken(e.to_string())))?;
                    return Ok(Answer {
                        head,
                        framing,
                        head_bytes: n as u64,
                        wire,
                        origin: t.authority.clone(),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err((true, broken(format!("bad response head: {e}")))),
            }
            let left = self
                .response_timeout
                .checked_sub(started.elapsed())
                .unwrap_or_default();
            match wire.fill(left).await {
                Ok(0) | Err(WireError::Closed) => {
                    // A kept connection the origin had closed: harmless.
                    let got = wire.bytes_in > 0 || !reused;
                    return Err((got, broken("closed the connection before answering".into())));
                }
                Ok(_) => {}
                Err(WireError::Timeout) => {
                    return Err((
                        true,
                        FetchError::Timeout(t.authority.clone(), self.response_timeout),
                    ))
                }
                Err(e) => return Err((wire.bytes_in > 0, broken(e.to_string()))),
            }
        }
    }
}

impl Answer {
    /// Read the rest of the body if it fits in `max`; `Ok(None)` leaves the
    /// answer to be streamed, with `first` holding what was read so far.
    pub async fn body(
        &mut self,
        body: &mut Body,
        out: &mut Vec<u8>,
        max: usize,
        idle: Duration,
    ) -> Result<bool, FetchError> {
        body.read_all(&mut self.wire, out, max, idle)
            .await
            .map_err(|e| self.failed(e))
    }

    pub fn failed(&self, e: WireError) -> FetchError {
        match e {
            WireError::Timeout => FetchError::Timeout(self.origin.clone(), Duration::ZERO),
            e => FetchError::Broken(self.origin.clone(), e.to_string()),
        }
    }

    /// Whether the connection may carry another request after this answer.
    pub fn reusable(&self) -> bool {
        self.framing != Framing::UntilClose && self.head.keep_alive()
    }
}
