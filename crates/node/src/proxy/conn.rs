//! One client connection to the proxy: requests read with every limit
//! (idle and header timeouts, line, head and body sizes), answers written
//! in order, with the proxy's own framing and `Connection` handling, and
//! bodies too big to keep streamed from the origin as they arrive.

use super::stats::Outcome;
use super::upstream::Answer;
use super::wire::{Body, Wire, WireError};
use super::Proxy;
use applab_proto::http::{self, Framing, RequestHead};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What one connection beyond the limit is told before it is closed.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 46\r\nConnection: close\r\n\r\nToo many connections to the proxy; try again.\n";

/// Accept connections until the listener fails.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) -> anyhow::Result<()> {
    let max = proxy.args.max_connections;
    crate::accept::accept_loop(listener, max, BUSY, "proxy", move |sock, peer| {
        let proxy = proxy.clone();
        async move {
            let id = proxy.conn_ids.fetch_add(1, Ordering::Relaxed);
            let _ = sock.set_nodelay(true);
            proxy.connection(sock, peer, id).await;
        }
    })
    .await
}

/// A response being sent to a client.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: ReplyBody,
    pub(super) outcome: Outcome,
    pub(super) from_origin: u64,
    /// No body whatever the headers say (HEAD, 204, 304).
    pub(super) head_only: bool,
}

pub(super) enum ReplyBody {
    Full(Bytes),
    /// Too big to hold: the rest comes from the origin as it arrives.
    Stream {
        answer: Box<Answer>,
        body: Body,
        first: Vec<u8>,
    },
}

/// An answer made by the proxy itself, with a readable text body.
pub(super) fn simple(status: u16, text: &str) -> Reply {
    Reply {
        status,
        reason: http::reason(status).to_string(),
        headers: vec![("Content-Type".into(), b"text/plain; charset=utf-8".to_vec())],
        body: ReplyBody::Full(Bytes::from(format!(
            "{status} {}\n\n{text}",
            http::reason(status)
        ))),
        outcome: Outcome::Error,
        from_origin: 0,
        head_only: false,
    }
}

impl Reply {
    /// The head, and the whole message when the body is in memory.
    fn bytes(&self, client_minor: u8, close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        http::put_status_line(&mut out, self.status, &self.reason);
        let framing_field = |n: &str| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        };
        for (n, v) in &self.headers {
            // The proxy frames the body itself, except for bodiless answers,
            // whose Content-Length describes the resource (HEAD, 304).
            if framing_field(n) && !self.head_only {
                continue;
            }
            put_field(&mut out, n, v);
        }
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("date"))
        {
            put_field(
                &mut out,
                "Date",
                httpdate::fmt_http_date(SystemTime::now()).as_bytes(),
            );
        }
        put_field(&mut out, "X-Cache", self.outcome.x_cache().as_bytes());
        if !self.head_only {
            match &self.body {
                ReplyBody::Full(b) => put_field(
                    &mut out,
                    "Content-Length",
                    itoa::Buffer::new().format(b.len()).as_bytes(),
                ),
                ReplyBody::Stream { answer, .. } => match answer.framing {
                    Framing::Length(n) => put_field(
                        &mut out,
                        "Content-Length",
                        itoa::Buffer::new().format(n).as_bytes(),
                    ),
                    _ if client_minor == 1 => put_field(&mut out, "Transfer-Encoding", b"chunked"),
                    _ => {} // HTTP/1.0: the end of the connection ends the body
                },
            }
        }
        if close {
            put_field(&mut out, "Connection", b"close");
        } else if client_minor == 0 {
            put_field(&mut out, "Connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        if let (false, ReplyBody::Full(b)) = (self.head_only, &self.body) {
            out.extend_from_slice(b);
        }
        out
    }

    /// Whether the connection must close after this reply (a streamed body
    /// of unknown length to an HTTP/1.0 client ends with the connection).
    fn forces_close(&self, client_minor: u8) -> bool {
        match &self.body {
            ReplyBody::Stream { answer, .. } => {
                !self.head_only
                    && client_minor == 0
                    && !matches!(answer.framing, Framing::Length(_))
            }
            ReplyBody::Full(_) => false,
        }
    }
}

pub(super) use applab_proto::http::put_field;

/// How reading a request ended when it did not give a request.
enum Stop {
    /// The client went away or stayed idle: close quietly.
    Quiet,
    /// Answer this status, then close.
    Refuse(u16, String),
}

impl Proxy {
    async fn connection(&self, sock: TcpStream, peer: SocketAddr, id: u64) {
        let mut wire = Wire::new(sock);
        let mut served = 0u32;
        loop {
            let head = match self.read_head(&mut wire).await {
                Ok(h) => h,
                Err(Stop::Quiet) => return,
                Err(Stop::Refuse(status, why)) => {
                    tracing::info!(client = %peer, conn = id, status, "refused: {why}");
                    let r = simple(status, &format!("{why}\n"));
                    self.stats.record(Outcome::Error, 0, 0);
                    let _ = wire.stream.write_all(&r.bytes(1, true)).await;
                    return;
                }
            };
            served += 1;
            let started = Instant::now();
            let body = match self.read_body(&mut wire, &head).await {
                Ok(b) => b,
                Err(Stop::Quiet) => return,
                Err(Stop::Refuse(status, why)) => {
                    let r = simple(status, &format!("{why}\n"));
                    self.stats.record(Outcome::Error, 0, 0);
                    let _ = wire.stream.write_all(&r.bytes(head.minor, true)).await;
                    return;
                }
            };
            let reply = self.handle(&head, body).await;
            let close = !head.keep_alive()
                || served >= self.args.max_requests
                || reply.forces_close(head.minor);
            let (sent, ok) = self.send(&mut wire.stream, reply, head.minor, close).await;
            tracing::info!(
                client = %peer,
                conn = id,
                reused = served > 1,
                request = %format_args!("{} {} HTTP/1.{}", head.method, head.target, head.minor),
                status = sent.0,
                cache = sent.1.x_cache(),
                bytes = sent.2,
                us = started.elapsed().as_micros() as u64,
                "exchange"
            );
            if close || !ok {
                return;
            }
        }
    }

    /// Read one request head: the idle timeout until it starts, then the
    /// header timeout for all of it.
    async fn read_head(&self, wire: &mut Wire) -> Result<RequestHead, Stop> {
        let mut deadline: Option<Instant> = None;
        loop {
            let blank = http::blank_lines_before_request(&wire.buf);
            wire.buf.drain(..blank);
            if !wire.buf.is_empty() {
                match http::parse_request_head(&wire.buf, &self.limits) {
                    Ok(Some((head, n))) => {
                        wire.buf.drain(..n);
                        return Ok(head);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(Stop::Refuse(e.status(), e.to_string())),
                }
                deadline.get_or_insert_with(|| {
                    Instant::now() + Duration::from_secs(self.args.head.header_timeout)
                });
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => self.idle(),
            };
            match wire.fill(wait).await {
                Ok(0) => return Err(Stop::Quiet),
                Ok(_) => {}
                Err(WireError::Timeout) if deadline.is_some() => {
                    return Err(Stop::Refuse(408, "the request head took too long".into()))
                }
                Err(_) => return Err(Stop::Quiet),
            }
        }
    }

    async fn read_body(&self, wire: &mut Wire, head: &RequestHead) -> Result<Bytes, Stop> {
        let framing =
            http::request_framing(head).map_err(|e| Stop::Refuse(e.status(), e.to_string()))?;
        if framing == Framing::None {
            return Ok(Bytes::new());
        }
        let max = self.args.max_body as usize;
        if matches!(framing, Framing::Length(n) if n > max as u64) {
            return Err(Stop::Refuse(
                413,
                format!("request bodies are limited to {max} bytes"),
            ));
        }
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
        {
            let _ = wire
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await;
        }
        let mut out = Vec::new();
        match Body::new(framing)
            .read_all(wire, &mut out, max, self.idle())
            .await
        {
            Ok(true) => Ok(out.into()),
            Ok(false) => Err(Stop::Refuse(
                413,
                format!("request bodies are limited to {max} bytes"),
            )),
            Err(WireError::Http(e)) => Err(Stop::Refuse(400, e.to_string())),
            Err(_) => Err(Stop::Quiet),
        }
    }

    /// Write a reply; returns what to log (status, outcome, bytes) and
    /// whether the connection is still usable.
    async fn send(
        &self,
        sock: &mut TcpStream,
        reply: Reply,
        minor: u8,
        close: bool,
    ) -> ((u16, Outcome, u64), bool) {
        let head = reply.bytes(minor, close);
        let mut sent = head.len() as u64;
        let mut ok = sock.write_all(&head).await.is_ok();
        let mut from_origin = reply.from_origin;
        let (status, outcome) = (reply.status, reply.outcome);
        // The counters page does not count itself.
        let own_page = matches!(reply.outcome, Outcome::Own);
        if let (
            ReplyBody::Stream {
                mut answer,
                mut body,
                first,
            },
            false,
        ) = (reply.body, reply.head_only)
        {
            let chunked = minor == 1 && !matches!(answer.framing, Framing::Length(_));
            let mut piece = first;
            let idle = self.upstream.response_timeout;
            loop {
                if !piece.is_empty() && ok {
                    sent += piece.len() as u64;
                    ok = if chunked {
                        let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
                        c.extend_from_slice(&piece);
                        c.extend_from_slice(b"\r\n");
                        sock.write_all(&c).await.is_ok()
                    } else {
                        sock.write_all(&piece).await.is_ok()
                    };
                }
                piece.clear();
                if !ok {
                    break;
                }
                match body.next(&mut answer.wire, &mut piece, idle).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        // The origin broke off mid-body: the client must
                        // see a broken message, not a complete one.
                        tracing::warn!(origin = %answer.origin, "body cut short: {e}");
                        ok = false;
                        break;
                    }
                }
            }
            if ok && chunked {
                ok = sock.write_all(b"0\r\n\r\n").await.is_ok();
            }
            from_origin += answer.wire.bytes_in;
            if ok && body.is_done() && answer.reusable() {
                let origin = answer.origin.clone();
                self.upstream.put_back(origin, answer.wire);
            }
        }
        if !own_page {
            self.stats.record(outcome, from_origin, sent);
        }
        ((status, outcome, sent), ok)
    }
}
