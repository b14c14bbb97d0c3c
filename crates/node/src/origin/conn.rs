//! One TCP connection: requests in, responses out, in order (RFC 9112 §9).
//!
//! Pipelined requests already in the buffer are answered before anything is
//! written, so their responses leave in one write, in request order. Every
//! wait is bounded: the idle timeout before a request starts, the header
//! timeout for a whole head (a slow client gets 408), the idle timeout per
//! body read.

use super::response::{self, Body, Persistence, Response};
use super::Server;
use applab_proto::http::{self, ChunkedDecoder, Framing, HeadError, RequestHead};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Write out once this much is waiting, even mid-pipeline.
const FLUSH_AT: usize = 64 * 1024;

#[cfg(test)]
pub async fn accept_loop(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(server.args.max_connections));
    let listener = Arc::new(listener);
    // One accepting task per worker thread, so each thread takes its own
    // connections and runs them where they arrived (as nginx's workers do).
    let acceptors = server.args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..acceptors.max(1) {
        tasks.spawn(accept(listener.clone(), server.clone(), slots.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

pub async fn accept(
    listener: Arc<TcpListener>,
    server: Arc<Server>,
    slots: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: wait, do not spin or die.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = server.conn_ids.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer, conn = id, "too many connections: 503");
            tokio::spawn(refuse(sock));
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut c = Conn {
                server: &server,
                sock,
                peer_text: addr_text(peer),
                id,
                buf: Vec::with_capacity(4096),
                out: Vec::with_capacity(4096),
                served: 0,
                linger: false,
            };
            if let Err(e) = c.run().await {
                tracing::debug!(client = %peer, conn = id, "connection ended: {e}");
            }
        });
    }
}

/// "10.1.2.3:4567" without the general formatter (once per connection).
fn addr_text(a: std::net::SocketAddr) -> String {
    match a {
        std::net::SocketAddr::V4(v4) => {
            let mut s = String::with_capacity(21);
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(b.format(*o));
            }
            s.push(':');
            s.push_str(b.format(v4.port()));
            s
        }
        v6 => v6.to_string(),
    }
}

async fn refuse(mut sock: TcpStream) {
    let r = Response::text(503, "the server has too many connections; try again");
    let mut out = Vec::new();
    response::write_head(
        &mut out,
        &r,
        &Persistence {
            keep: false,
            http10: false,
            timeout_secs: 0,
            left: 0,
        },
    );
    response::append_small_body(&mut out, &r.body);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        sock.write_all(&out).await?;
        sock.shutdown().await?;
        // Drain what the client sent: closing with unread data would reset
        // the connection and could destroy the 503 before it is read.
        let mut sink = vec![0u8; 4096];
        while sock.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

struct Conn<'a> {
    server: &'a Server,
    sock: TcpStream,
    /// The client's address as logged, formatted once per connection.
    peer_text: String,
    id: u64,
    /// Bytes received and not yet used.
    buf: Vec<u8>,
    /// Responses waiting to be written.
    out: Vec<u8>,
    served: u32,
    /// The client may have sent input we did not read (a refused body).
    linger: bool,
}

/// Why the connection loop stops.
enum Stop {
    Closed,
    Io(std::io::Error),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Stop {
        Stop::Io(e)
    }
}

impl Conn<'_> {
    async fn run(&mut self) -> std::io::Result<()> {
        match self.serve().await {
            Ok(()) | Err(Stop::Closed) => {}
            Err(Stop::Io(e)) => {
                let _ = self.flush().await;
                return Err(e);
            }
        }
        self.flush().await?;
        if self.linger || !self.buf.is_empty() {
            // Closing with unread input makes the kernel send a reset, which
            // can destroy the response before the client reads it: finish
            // our side and drain theirs briefly (a lingering close). The
            // buffer is on the heap: this future lives in every connection's
            // task, and its size is copied on each spawn.
            let _ = self.sock.shutdown().await;
            let mut sink = vec![0u8; 4096];
            let drain =
                async { while matches!(self.sock.read(&mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        }
        Ok(())
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        let s = self.server;
        loop {
            let (head, used) = match self.read_head().await? {
                Ok(h) => h,
                Err((status, msg)) => {
                    self.fail(status, &msg, "-", Instant::now());
                    return Ok(());
                }
            };
            let started = Instant::now();
            self.buf.drain(..used);
            self.served += 1;
            if self.served == 2 {
                // A persistent connection: small responses must not wait
                // for the previous one's ACK (Nagle). As nginx, only now.
                let _ = self.sock.set_nodelay(true);
            }
            let mut line = String::with_capacity(head.method.len() + head.target.len() + 10);
            line.push_str(&head.method);
            line.push(' ');
            line.push_str(&head.target);
            line.push_str(if head.minor == 0 {
                " HTTP/1.0"
            } else {
                " HTTP/1.1"
            });
            let body = match self.read_body(&head).await? {
                Ok(b) => b,
                Err((status, msg)) => {
                    self.fail(status, &msg, &line, started);
                    return Ok(());
                }
            };
            let resp = s.respond(&head, body).await;
            // After a 400 the client's idea of the framing is suspect: close.
            let keep = head.keep_alive() && self.served < s.args.max_requests && resp.status != 400;
            self.log(&line, resp.status, resp.body.len(), started);
            let conn = Persistence {
                keep,
                http10: head.minor == 0,
                timeout_secs: s.args.head.idle_timeout,
                left: s.args.max_requests.saturating_sub(self.served),
            };
            response::write_head(&mut self.out, &resp, &conn);
            if head.method != "HEAD"
                && resp.has_body()
                && !response::append_small_body(&mut self.out, &resp.body)
            {
                self.flush().await?;
                self.stream_body(resp.body).await?;
            }
            if !keep {
                return Ok(());
            }
            // Write now unless another pipelined request is already here.
            if self.buf.is_empty() || self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Answer a request that cannot be served with `status`, then close.
    fn fail(&mut self, status: u16, msg: &str, line: &str, started: Instant) {
        self.linger = true;
        let r = Response::text(status, msg);
        self.log(line, status, r.body.len(), started);
        let conn = Persistence {
            keep: false,
            http10: false,
            timeout_secs: 0,
            left: 0,
        };
        response::write_head(&mut self.out, &r, &conn);
        response::append_small_body(&mut self.out, &r.body);
    }

    /// Read until a whole head is buffered. The outer error ends the
    /// connection quietly; the inner one is answered with its status.
    async fn read_head(&mut self) -> Result<Result<(RequestHead, usize), (u16, String)>, Stop> {
        let s = self.server;
        let mut deadline = None;
        loop {
            // RFC 9112 §2.2: ignore empty lines before a request line.
            let skip = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skip > 0 {
                self.buf.drain(..skip);
            }
            if !self.buf.is_empty() {
                match http::parse_request_head(&self.buf, &s.limits) {
                    Ok(Some(p)) => return Ok(Ok(p)),
                    Ok(None) => {}
                    Err(e) => return Ok(Err((e.status(), e.to_string()))),
                }
                // The head has begun: the client has the header timeout for all of it.
                deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + Duration::from_secs(s.args.head.header_timeout)
                });
            }
            // Pipelined responses wait while we block on the next request.
            self.flush().await?;
            let limit = match deadline {
                Some(d) => d,
                None => tokio::time::Instant::now() + s.idle(),
            };
            self.buf.reserve(4096);
            match tokio::time::timeout_at(limit, self.sock.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) => return Err(Stop::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Stop::Io(e)),
                Err(_) if deadline.is_some() => {
                    return Ok(Err((
                        408,
                        format!(
                            "the request head did not arrive within {} s",
                            s.args.head.header_timeout
                        ),
                    )))
                }
                Err(_) => return Err(Stop::Closed), // idle: close quietly
            }
        }
    }

    /// Read the body the head announces, within the size limit.
    async fn read_body(
        &mut self,
        head: &RequestHead,
    ) -> Result<Result<Bytes, (u16, String)>, Stop> {
        let s = self.server;
        let framing = match http::request_framing(head) {
            Ok(f) => f,
            Err(e) => return Ok(Err((e.status(), e.to_string()))),
        };
        let needs_body = matches!(head.method.as_str(), "POST" | "PUT");
        let too_big = || {
            (
                413,
                format!("the request body is larger than {} bytes", s.max_body),
            )
        };
        match framing {
            Framing::None | Framing::UntilClose if needs_body => Ok(Err((
                411,
                format!(
                    "{} needs a Content-Length header line (or chunked coding)",
                    head.method
                ),
            ))),
            Framing::None | Framing::UntilClose => Ok(Ok(Bytes::new())),
            Framing::Length(n) if n > s.max_body => Ok(Err(too_big())),
            Framing::Length(n) => {
                let n = n as usize;
                self.continue_if_expected(head, n).await?;
                while self.buf.len() < n {
                    self.read_more().await?;
                }
                let body: Vec<u8> = self.buf.drain(..n).collect();
                Ok(Ok(body.into()))
            }
            Framing::Chunked => {
                self.continue_if_expected(head, 0).await?;
                let mut dec = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let used = match dec.feed(&self.buf, &mut body) {
                        Ok(u) => u,
                        Err(e @ HeadError::Malformed(_)) => return Ok(Err((400, e.to_string()))),
                        Err(e) => return Ok(Err((e.status(), e.to_string()))),
                    };
                    self.buf.drain(..used);
                    if body.len() as u64 > s.max_body {
                        return Ok(Err(too_big()));
                    }
                    if dec.is_done() {
                        return Ok(Ok(body.into()));
                    }
                    self.read_more().await?;
                }
            }
        }
    }

    /// `Expect: 100-continue`: tell the client to send the body it holds back.
    async fn continue_if_expected(&mut self, head: &RequestHead, need: usize) -> Result<(), Stop> {
        let expects = head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        if expects && head.minor == 1 && (need == 0 || self.buf.len() < need) {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.flush().await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<(), Stop> {
        self.buf.reserve(16 * 1024);
        match tokio::time::timeout(self.server.idle(), self.sock.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) | Err(_) => Err(Stop::Closed),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Stop::Io(e)),
        }
    }

    async fn stream_body(&mut self, body: Body) -> std::io::Result<()> {
        match body {
            Body::File(path, len) => {
                let f = tokio::fs::File::open(&path).await?;
                // Never more than the length announced, even if the file grew.
                let mut f = f.take(len);
                let sent = tokio::io::copy(&mut f, &mut self.sock).await?;
                if sent < len {
                    // The file shrank: the framing is broken, so close.
                    return Err(std::io::Error::other("file shrank while being sent"));
                }
            }
            Body::Object { index, len } => {
                let mut obj = super::page::Object::new(index, len);
                let mut chunk = Vec::with_capacity(FLUSH_AT + 70_000);
                while obj.next_into(&mut chunk) {
                    if chunk.len() >= FLUSH_AT {
                        self.sock.write_all(&chunk).await?;
                        chunk.clear();
                    }
                }
                self.sock.write_all(&chunk).await?;
            }
            Body::Empty | Body::Bytes(_) => {}
        }
        Ok(())
    }

    fn log(&self, line: &str, status: u16, bytes: u64, started: Instant) {
        tracing::info!(
            target: "exchange",
            client = self.peer_text.as_str(),
            conn = self.id,
            reused = self.served > 1,
            request = line,
            status,
            bytes,
            micros = started.elapsed().as_micros() as u64,
        );
    }
}
