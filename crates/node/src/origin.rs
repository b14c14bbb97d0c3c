//! The origin role: an HTTP/1.x server for the lab's content.
//!
//! This is the foundation's static-file server: GET and HEAD of files under
//! `--root`, persistent connections as RFC 9112 §9.3 says, and the limits
//! every lab server keeps against hostile input. The full origin (methods,
//! conditional GET, forms, the shop) grows here.

use applab_proto::http::{self, HeadError, Limits, RequestHead};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub listen: String,
    /// Directory whose files are served.
    #[arg(long, default_value = "/data/content")]
    pub root: PathBuf,
    /// Close a connection idle this many seconds.
    #[arg(long, default_value_t = 15)]
    pub idle_timeout: u64,
    /// Most requests on one persistent connection.
    #[arg(long, default_value_t = 100)]
    pub max_requests: u32,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
}

struct Server {
    args: Args,
    limits: Limits,
    conn_ids: AtomicU64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen).await?;
    tracing::info!(addr = %args.listen, root = %args.root.display(), "origin listening");
    serve(listener, args).await
}

pub async fn serve(listener: TcpListener, args: Args) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(args.max_connections));
    let server = Arc::new(Server {
        args,
        limits: Limits::default(),
        conn_ids: AtomicU64::new(1),
    });
    loop {
        let (sock, peer) = listener.accept().await?;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many connections");
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let id = server.conn_ids.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = server.connection(sock, id).await {
                tracing::debug!(%peer, conn = id, "connection ended: {e}");
            }
        });
    }
}

/// A finished response, ready to be written.
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, msg: &str) -> Response {
        let body = format!("{status} {}\n{msg}\n", http::reason(status)).into_bytes();
        Response {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body,
        }
    }
}

impl Server {
    async fn connection(&self, mut sock: TcpStream, id: u64) -> std::io::Result<()> {
        let peer = sock.peer_addr()?;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let idle = Duration::from_secs(self.args.idle_timeout);
        let mut served = 0u32;
        loop {
            // The whole head must arrive within the idle timeout (slow-loris).
            let deadline = tokio::time::Instant::now() + idle;
            let parsed = loop {
                match http::parse_request_head(&buf, &self.limits) {
                    Ok(Some(p)) => break Ok(p),
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                let mut chunk = [0u8; 4096];
                let n = match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
                    Ok(r) => r?,
                    Err(_) => return Ok(()), // idle or too slow: close quietly
                };
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let started = Instant::now();
            let (head, used) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    let resp = Response::text(e.status(), &e.to_string());
                    log_exchange(
                        peer,
                        id,
                        served > 0,
                        "-",
                        e.status(),
                        resp.body.len(),
                        started,
                    );
                    write_response(&mut sock, resp, false, false, 0).await?;
                    return Ok(());
                }
            };
            buf.drain(..used);
            served += 1;
            // Bodies are not used by GET/HEAD; skip a declared one so the next
            // pipelined request starts at the right byte.
            if let Some(len) = content_length(&head) {
                match len {
                    Ok(n) if n <= 1 << 20 => {
                        while buf.len() < n {
                            let mut chunk = [0u8; 4096];
                            let r = tokio::time::timeout(idle, sock.read(&mut chunk)).await;
                            match r {
                                Ok(Ok(m)) if m > 0 => buf.extend_from_slice(&chunk[..m]),
                                _ => return Ok(()),
                            }
                        }
                        buf.drain(..n);
                    }
                    Ok(_) => {
                        let resp = Response::text(413, "request body too large");
                        write_response(&mut sock, resp, false, false, 0).await?;
                        return Ok(());
                    }
                    Err(e) => {
                        let resp = Response::text(e.status(), &e.to_string());
                        write_response(&mut sock, resp, false, false, 0).await?;
                        return Ok(());
                    }
                }
            }
            let keep = head.keep_alive() && served < self.args.max_requests;
            let is_head = head.method == "HEAD";
            let resp = self.respond(&head).await;
            let line = format!("{} {} HTTP/1.{}", head.method, head.target, head.minor);
            log_exchange(
                peer,
                id,
                served > 1,
                &line,
                resp.status,
                resp.body.len(),
                started,
            );
            let left = self.args.max_requests.saturating_sub(served);
            write_response(&mut sock, resp, keep, is_head, left).await?;
            if !keep {
                return Ok(());
            }
        }
    }

    async fn respond(&self, head: &RequestHead) -> Response {
        if head.minor == 1 && head.header("host").is_none() {
            return Response::text(400, "HTTP/1.1 requests need a Host header");
        }
        match head.method.as_str() {
            "GET" | "HEAD" => {}
            "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" => {
                let mut r = Response::text(405, "this server only serves files (GET, HEAD)");
                r.headers.push(("Allow", "GET, HEAD".into()));
                return r;
            }
            _ => return Response::text(501, "method not implemented"),
        }
        let Some(path) = resolve(&self.args.root, &head.target) else {
            return Response::text(400, "bad request target");
        };
        let path = if path.is_dir() {
            path.join("index.html")
        } else {
            path
        };
        match tokio::fs::read(&path).await {
            Ok(body) => {
                let mut headers = vec![("Content-Type", content_type(&path).to_string())];
                if let Ok(m) = tokio::fs::metadata(&path).await.and_then(|m| m.modified()) {
                    headers.push(("Last-Modified", httpdate::fmt_http_date(m)));
                }
                Response {
                    status: 200,
                    headers,
                    body,
                }
            }
            Err(_) => Response::text(404, &format!("no such object: {}", head.target)),
        }
    }
}

fn content_length(head: &RequestHead) -> Option<Result<usize, HeadError>> {
    let v = head.header("content-length")?;
    Some(
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .ok_or_else(|| HeadError::Malformed("bad Content-Length".into())),
    )
}

/// Map a request target to a file under `root`, refusing any escape.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    // Absolute-form targets (`http://host/x`) name the path after the authority.
    let path = match path.find("://") {
        Some(i) => {
            let rest = &path[i + 3..];
            rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
        }
        None => path,
    };
    if !path.starts_with('/') {
        return None;
    }
    let mut out = root.to_path_buf();
    for comp in Path::new(path).components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => out.push(c),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

async fn write_response(
    sock: &mut TcpStream,
    resp: Response,
    keep: bool,
    is_head: bool,
    left: u32,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, http::reason(resp.status));
    out.push_str(&format!(
        "Date: {}\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    ));
    out.push_str("Server: applab-origin\r\n");
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    if keep {
        out.push_str(&format!("Keep-Alive: timeout=15, max={left}\r\n"));
    } else {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !is_head {
        bytes.extend_from_slice(&resp.body);
    }
    sock.write_all(&bytes).await?;
    if !keep {
        sock.shutdown().await?;
    }
    Ok(())
}

fn log_exchange(
    peer: std::net::SocketAddr,
    conn: u64,
    reused: bool,
    line: &str,
    status: u16,
    bytes: usize,
    started: Instant,
) {
    tracing::info!(
        client = %peer, conn, reused, request = line, status, bytes,
        micros = started.elapsed().as_micros() as u64, "exchange"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/a/b.html?x=1"),
            Some(PathBuf::from("/srv/a/b.html"))
        );
        assert_eq!(
            resolve(root, "http://origin/img/1.jpg"),
            Some(PathBuf::from("/srv/img/1.jpg"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "relative"), None);
    }

    async fn start(root: &Path) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let args = Args {
            listen: addr.to_string(),
            root: root.to_path_buf(),
            idle_timeout: 1,
            max_requests: 100,
            max_connections: 16,
        };
        tokio::spawn(serve(l, args));
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_files_pipelined_then_closes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        let addr = start(dir.path()).await;
        let out = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: o\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
        )
        .await;
        // Responses follow each other byte for byte: find every status line.
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "200", "404"], "{out}");
        assert_eq!(
            out.matches("<p>hi</p>").count(),
            1,
            "HEAD must carry no body: {out}"
        );
        assert!(out.contains("Connection: close"));
    }

    #[tokio::test]
    async fn hostile_heads_get_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let addr = start(dir.path()).await;
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000));
        assert!(exchange(addr, long.as_bytes())
            .await
            .starts_with("HTTP/1.1 414"));
        assert!(exchange(addr, b"GET / HTTP/3.0\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 505"));
        assert!(exchange(addr, b"BREW / HTTP/1.1\r\nHost: o\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 501"));
        assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400"));
        let r = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 2\r\n\r\nab",
        )
        .await;
        assert!(
            r.starts_with("HTTP/1.1 405") && r.contains("Allow: GET, HEAD"),
            "{r}"
        );
    }
}
