//! One TCP connection: requests in, responses out, in order (RFC 9112 §9).
//!
//! Pipelined requests already in the buffer are answered before anything is
//! written, so their responses leave in one write, in request order. Every
//! wait is bounded: the idle timeout before a request starts, the header
//! timeout for a whole head (a slow client gets 408), the idle timeout per
//! body read.
//!
//! A connection whose whole request is already waiting when it is accepted,
//! and which closes after the answer (`Connection: close`, HTTP/1.0), is
//! answered on the spot: one read, one write, close, without registering
//! the socket with the event loop or spawning a task for it. That is most
//! of the cost of a short connection left in user space; everything else
//! goes to a task of its own.

use super::response::{self, Body, Persistence, Response};
use super::Server;
use applab_proto::http::{self, BodyReader, Framing, RequestHead};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Write out once this much is waiting, even mid-pipeline.
const FLUSH_AT: usize = 64 * 1024;

/// A listening socket as the accept loops use it: accepted sockets are
/// not registered with the event loop until they need to be.
pub type Listener = Arc<AsyncFd<std::net::TcpListener>>;

pub fn listener(l: std::net::TcpListener) -> std::io::Result<Listener> {
    l.set_nonblocking(true)?;
    // SAFETY: the AsyncFd owns the listener and closes it only when it is
    // dropped itself, after deregistering.
    let fd = unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) };
    Ok(Arc::new(fd.map_err(|e| e.into_parts().1)?))
}

#[cfg(test)]
pub async fn accept_loop(listener: Listener, server: Arc<Server>) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(server.args.max_connections));
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
    listener: Listener,
    server: Arc<Server>,
    slots: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    loop {
        let mut ready = listener.readable().await?;
        let accepted = ready.try_io(|l| {
            socket2::SockRef::from(l.get_ref()).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        });
        let (sock, peer) = match accepted {
            Ok(Ok((sock, addr))) => match addr.as_socket() {
                Some(peer) => (std::net::TcpStream::from(sock), peer),
                None => continue,
            },
            Ok(Err(e)) => {
                // Out of descriptors and the like: wait, do not spin or die.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            // Nothing more waiting: the readiness is cleared, wait for more.
            Err(_would_block) => continue,
        };
        let id = server.conn_ids.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer, conn = id, "too many connections: 503");
            if let Ok(sock) = TcpStream::from_std(sock) {
                tokio::spawn(refuse(sock));
            }
            continue;
        };
        let mut early = Early {
            server: &server,
            peer_text: addr_text(peer),
            id,
            buf: Vec::new(),
            out: Vec::new(),
            finish: None,
        };
        if early.answer_at_once(&sock).await {
            continue; // answered and closed
        }
        let Ok(sock) = TcpStream::from_std(sock) else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut c = Conn {
                server: &server,
                sock,
                peer_text: early.peer_text,
                id,
                buf: early.buf,
                out: early.out,
                served: 0,
                linger: false,
            };
            let r = match early.finish {
                Some(body) => c.finish(body).await,
                None => c.run().await,
            };
            if let Err(e) = r {
                tracing::debug!(client = %peer, conn = id, "connection ended: {e}");
            }
        });
    }
}

/// A connection just accepted, before it has a task of its own.
struct Early<'a> {
    server: &'a Server,
    peer_text: String,
    id: u64,
    /// What was read; the task starts from it.
    buf: Vec<u8>,
    /// A response not (completely) written; the task writes it, then
    /// `finish`'s body, and closes.
    out: Vec<u8>,
    finish: Option<Body>,
}

impl Early<'_> {
    /// Answer a request that is already here and ends the connection with
    /// one read and one write. False when the connection needs its task:
    /// nothing arrived yet, more than one request or a body, keep-alive,
    /// a large body to stream, or a write that did not take everything.
    async fn answer_at_once(&mut self, sock: &std::net::TcpStream) -> bool {
        let s = self.server;
        self.buf.reserve(2048);
        let n = match socket2::SockRef::from(sock).recv(self.buf.spare_capacity_mut()) {
            Ok(0) => return true, // closed without a word
            Ok(n) => n,
            Err(_) => return false,
        };
        // SAFETY: recv(2) wrote the first n bytes of the spare capacity.
        unsafe { self.buf.set_len(n) };
        let got = &self.buf[..];
        let whole = match http::parse_request_head(got, &s.limits) {
            Ok(Some((head, used))) if used == n && got[0].is_ascii_alphabetic() => Some(head),
            _ => None,
        };
        let Some(head) = whole.filter(|h| {
            matches!(h.method.as_str(), "GET" | "HEAD")
                && matches!(http::request_framing(h), Ok(Framing::None))
                && (!h.keep_alive() || s.args.max_requests <= 1)
        }) else {
            return false;
        };
        self.buf.clear();
        let started = Instant::now();
        let line = request_line(&head);
        let resp = s.respond(&head, Bytes::new()).await;
        log_exchange(
            &self.peer_text,
            self.id,
            false,
            &line,
            resp.status,
            resp.body.len(),
            started,
        );
        self.out
            .reserve(512 + resp.body.len().min(FLUSH_AT as u64) as usize);
        let head_only = head.method == "HEAD";
        if let Some(body) = response::encode(&mut self.out, resp, &Persistence::CLOSE, head_only) {
            self.finish = Some(body);
            return false;
        }
        // MSG_MORE holds the segment back until the close that follows, so
        // the answer and the FIN leave in one packet (as nginx's cork).
        let sent = socket2::SockRef::from(sock)
            .send_with_flags(&self.out, libc::MSG_MORE | libc::MSG_NOSIGNAL);
        match sent {
            Ok(w) if w == self.out.len() => true,
            Ok(w) => {
                self.out.drain(..w);
                self.finish = Some(Body::Empty);
                false
            }
            Err(_) => {
                self.finish = Some(Body::Empty);
                false
            }
        }
    }
}

/// "GET /x HTTP/1.1" as logged: the request line with the version we read.
fn request_line(head: &RequestHead) -> String {
    let mut line = String::with_capacity(head.method.len() + head.target.len() + 10);
    line.push_str(&head.method);
    line.push(' ');
    line.push_str(&head.target);
    line.push_str(if head.minor == 0 {
        " HTTP/1.0"
    } else {
        " HTTP/1.1"
    });
    line
}

/// The one structured line per exchange.
fn log_exchange(
    client: &str,
    conn: u64,
    reused: bool,
    request: &str,
    status: u16,
    bytes: u64,
    started: Instant,
) {
    tracing::info!(
        target: "exchange",
        client,
        conn,
        reused,
        request,
        status,
        bytes,
        micros = started.elapsed().as_micros() as u64,
    );
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
    response::encode(&mut out, r, &Persistence::CLOSE, false);
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

    /// Write the response the accept loop began (`out`), then `body`, and
    /// close as that response said.
    async fn finish(&mut self, body: Body) -> std::io::Result<()> {
        self.flush().await?;
        self.stream_body(body).await?;
        self.sock.shutdown().await
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
            let line = request_line(&head);
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
            let head_only = head.method == "HEAD";
            if let Some(body) = response::encode(&mut self.out, resp, &conn, head_only) {
                self.flush().await?;
                self.stream_body(body).await?;
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
        response::encode(&mut self.out, r, &Persistence::CLOSE, false);
    }

    /// Read until a whole head is buffered. The outer error ends the
    /// connection quietly; the inner one is answered with its status.
    async fn read_head(&mut self) -> Result<Result<(RequestHead, usize), (u16, String)>, Stop> {
        let s = self.server;
        let mut deadline = None;
        loop {
            let skip = http::blank_lines_before_request(&self.buf);
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
            Framing::Length(_) | Framing::Chunked => {
                let expect = match framing {
                    Framing::Length(n) => n as usize,
                    _ => 0,
                };
                self.continue_if_expected(head, expect).await?;
                let mut reader = BodyReader::new(framing);
                let mut body = Vec::with_capacity(expect);
                loop {
                    let used = match reader.feed(&self.buf, &mut body) {
                        Ok(u) => u,
                        Err(e) => return Ok(Err((e.status(), e.to_string()))),
                    };
                    self.buf.drain(..used);
                    if body.len() as u64 > s.max_body {
                        return Ok(Err(too_big()));
                    }
                    if reader.is_done() {
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
        log_exchange(
            &self.peer_text,
            self.id,
            self.served > 1,
            line,
            status,
            bytes,
            started,
        );
    }
}
