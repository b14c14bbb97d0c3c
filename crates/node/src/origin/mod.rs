//! The origin role: the lab's HTTP/1.0 and HTTP/1.1 web server.
//!
//! The connection loop (`conn`) follows RFC 9112: a request line, header
//! lines, a body framed by `Content-Length` or chunked coding, persistent
//! connections by default in 1.1 and on request in 1.0, pipelined requests
//! answered in order. Everything a client sends is bounded (line and head
//! size, header count, body size, time to send a head, connections).
//!
//! What the server answers is decided here (`Server::respond`): static files
//! with validators and conditional GET (`files`), moved objects (301), the
//! lecture's search-engine form (`forms`), the cookie shop (`shop`), the
//! generated base page with N objects (`page`), and PUT/DELETE in the
//! writable `uploads/` area.

mod conn;
mod files;
mod forms;
mod page;
mod response;
mod shop;

use applab_proto::http::{Limits, RequestHead};
use applab_roles::OriginConfig;
use bytes::Bytes;
use files::{Files, Found};
use response::{Body, Response};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub listen: String,
    /// Directory whose files are served.
    #[arg(long, default_value = "/data/content")]
    pub root: PathBuf,
    /// The role's configuration (TOML; see docs/lab-format.md, "origin").
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the shop keeps its carts (none: in memory only).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Most requests on one persistent connection.
    #[arg(long, default_value_t = 100)]
    pub max_requests: u32,
    /// Most simultaneous connections; more get 503.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    #[command(flatten)]
    pub head: crate::http_limits::HeadArgs,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory for small files kept ready to send, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub file_cache: u64,
}

impl Args {
    /// Defaults for serving `root` on `listen`.
    #[cfg(test)]
    pub fn new(listen: &str, root: PathBuf) -> Args {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: Args,
        }
        let mut a = P::parse_from(["origin"]).a;
        a.listen = listen.to_string();
        a.root = root;
        a
    }
}

pub struct Server {
    args: Args,
    limits: Limits,
    max_body: u64,
    config: OriginConfig,
    files: Files,
    page: Option<page::Page>,
    shop: Option<shop::Shop>,
    started: SystemTime,
    conn_ids: AtomicU64,
}

/// Serve with one single-threaded event loop per worker thread, each with
/// its own listening socket on the same port (SO_REUSEPORT): the kernel
/// spreads connections over them and a connection never changes thread,
/// the model nginx's worker processes follow.
pub async fn run(args: Args) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let addr = args
        .listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--listen {}: no address", args.listen))?;
    let first = reuseport_listener(addr)?;
    // Port 0 picks a port: the other sockets must join that one.
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads.max(1) {
        listeners.push(reuseport_listener(addr)?);
    }
    tracing::info!(%addr, root = %args.root.display(), threads, "origin listening");
    let server = Arc::new(Server::new(args)?);
    let slots = Arc::new(tokio::sync::Semaphore::new(server.args.max_connections));
    let (failed, mut failure) = tokio::sync::mpsc::unbounded_channel::<anyhow::Error>();
    for (i, l) in listeners.into_iter().enumerate() {
        let (server, slots, failed) = (server.clone(), slots.clone(), failed.clone());
        std::thread::Builder::new()
            .name(format!("origin-{i}"))
            .spawn(move || {
                let run = || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(
                        async move { conn::accept(conn::listener(l)?, server, slots).await },
                    )
                };
                if let Err(e) = run() {
                    let _ = failed.send(e);
                }
            })?;
    }
    drop(failed);
    match failure.recv().await {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn reuseport_listener(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Serve on an already bound listener from the current runtime (tests).
#[cfg(test)]
pub async fn serve(listener: tokio::net::TcpListener, args: Args) -> anyhow::Result<()> {
    let server = Arc::new(Server::new(args)?);
    conn::accept_loop(conn::listener(listener.into_std()?)?, server).await
}

impl Server {
    pub fn new(args: Args) -> anyhow::Result<Server> {
        let config = match &args.config {
            Some(p) => OriginConfig::load(p).map_err(anyhow::Error::msg)?,
            None => OriginConfig::default(),
        };
        let page = config
            .page
            .as_ref()
            .map(page::Page::new)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let shop = match &config.shop {
            Some(s) => Some(shop::Shop::open(
                s.path.clone(),
                s.items.clone(),
                args.state.clone(),
            )?),
            None => None,
        };
        Ok(Server {
            limits: args.head.limits(),
            max_body: config.max_body.bytes(),
            files: Files::new(args.root.clone(), args.file_cache),
            page,
            shop,
            started: SystemTime::now(),
            conn_ids: AtomicU64::new(1),
            config,
            args,
        })
    }

    /// A path under the load prefix: `Some(Some((id, size)))` when well
    /// formed, `Some(None)` when not.
    fn load_object(&self, path: &str) -> Option<Option<(u32, u64)>> {
        let rest = path.strip_prefix(self.config.load.as_deref()?)?;
        let parsed = rest.strip_suffix(".jpg").and_then(|r| {
            let (id, size) = r.split_once('-')?;
            let size = applab_roles::parse_size(size)?;
            // Below the smallest JPEG the object would not have its size.
            (300..=applab_roles::MAX_OBJECT_BYTES)
                .contains(&size)
                .then_some((id.parse().ok()?, size))
        });
        Some(parsed)
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.args.head.idle_timeout)
    }

    /// Decide the answer to one complete request.
    async fn respond(&self, head: &RequestHead, body: Bytes) -> Response {
        if let Some(why) = applab_proto::http::host_problem(head) {
            return Response::text(400, why);
        }
        let method = head.method.as_str();
        if !matches!(
            method,
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS"
        ) {
            return Response::text(
                501,
                &format!("this server does not implement the method {method}"),
            );
        }
        if head.target == "*" {
            return if method == "OPTIONS" {
                Response::new(204).header("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
            } else {
                Response::text(400, "the target * is only for OPTIONS")
            };
        }
        let Some((path, query)) = split_target(&head.target) else {
            return Response::text(
                400,
                &format!(
                    "bad request target {:?}: it must start with / or http://",
                    head.target
                ),
            );
        };
        if let Some(to) = self.config.moved.get(&path) {
            return Response::text(301, &format!("moved to {to}")).header("Location", to.clone());
        }
        if let Some(shop) = self.shop.as_ref().filter(|s| s.owns(&path)) {
            let cookie = head
                .header("cookie")
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| shop::cookie_value(c, shop::COOKIE));
            let form: Vec<(String, String)> = if method == "POST" {
                match Box::pin(forms::from_body(head.header("content-type"), body)).await {
                    Ok(f) => f.into_iter().map(|f| (f.name, f.value)).collect(),
                    Err(e) => return Response::text(415, &e),
                }
            } else {
                Vec::new()
            };
            return shop.handle(method, &path, cookie, &form);
        }
        if path == self.config.search {
            return match method {
                "GET" | "HEAD" => {
                    forms::page(&path, "GET", &forms::from_query(query.unwrap_or("")))
                }
                "POST" => match Box::pin(forms::from_body(head.header("content-type"), body)).await
                {
                    Ok(f) => forms::page(&path, "POST", &f),
                    Err(e) => Response::text(415, &e),
                },
                _ => allow(
                    Response::text(405, "the search page takes GET and POST"),
                    "GET, HEAD, POST",
                ),
            };
        }
        if let Some(obj) = self.load_object(&path) {
            if !matches!(method, "GET" | "HEAD") {
                return allow(
                    Response::text(405, "load objects are read-only"),
                    "GET, HEAD",
                );
            }
            let Some((index, len)) = obj else {
                return Response::text(404, "load objects are named ID-SIZE.jpg, SIZE at most 64M");
            };
            let meta = files::Meta {
                len,
                mtime: self.started,
                last_modified: httpdate::fmt_http_date(self.started).into(),
                etag: format!("\"load-{index}-{len:x}\"").into(),
                content_type: "image/jpeg",
            };
            let r = files::answer(
                &meta,
                Body::Object { index, len },
                head.header("if-none-match"),
                head.header("if-modified-since"),
            );
            return self.caching_headers(&path, r);
        }
        if let Some(p) = self.page.as_ref() {
            let object = p.object(&path);
            if path == p.path || object.is_some() {
                if !matches!(method, "GET" | "HEAD") {
                    return allow(Response::text(405, "the page is read-only"), "GET, HEAD");
                }
                let (ctype, etag, body) = match object {
                    Some((index, len)) => (
                        "image/jpeg",
                        format!("\"obj-{index}-{len:x}\""),
                        Body::Object { index, len },
                    ),
                    None => (
                        "text/html; charset=utf-8",
                        format!("\"page-{:x}\"", p.html().len()),
                        Body::Bytes(Bytes::copy_from_slice(p.html().as_bytes())),
                    ),
                };
                let meta = files::Meta {
                    len: body.len(),
                    mtime: self.started,
                    last_modified: httpdate::fmt_http_date(self.started).into(),
                    etag: etag.into(),
                    content_type: ctype,
                };
                let r = files::answer(
                    &meta,
                    body,
                    head.header("if-none-match"),
                    head.header("if-modified-since"),
                );
                return self.caching_headers(&path, r);
            }
        }
        let Some(local) = self.files.local_path(&path) else {
            return Response::text(400, "the path climbs above the server's root");
        };
        let writable = self.in_uploads(&path);
        let allowed = if writable {
            "GET, HEAD, PUT, DELETE, OPTIONS"
        } else {
            "GET, HEAD, OPTIONS"
        };
        match method {
            "OPTIONS" => Response::new(204).header("Allow", allowed),
            "GET" | "HEAD" => self.get_file(head, &path, &local),
            "PUT" if writable && !path.ends_with('/') => match self.files.put(&local, &body) {
                Ok(true) => {
                    Response::text(201, &format!("created {path}")).header("Location", path.clone())
                }
                Ok(false) => Response::new(204),
                Err(e) => Response::text(500, &format!("cannot store {path}: {e}")),
            },
            "DELETE" if writable && !path.ends_with('/') => match self.files.delete(&local) {
                Ok(true) => Response::new(204),
                Ok(false) => Response::text(404, &format!("no such object: {path}")),
                Err(e) => Response::text(500, &format!("cannot delete {path}: {e}")),
            },
            _ => {
                let why = if self.config.uploads.is_empty() {
                    format!("{method} is not allowed here; this server is read-only")
                } else {
                    format!(
                        "{method} is not allowed on {path}; files can be written under /{}/",
                        self.config.uploads
                    )
                };
                allow(Response::text(405, &why), allowed)
            }
        }
    }

    fn in_uploads(&self, path: &str) -> bool {
        let up = self.config.uploads.trim_matches('/');
        !up.is_empty()
            && path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(up))
                .is_some_and(|r| r.starts_with('/'))
    }

    fn get_file(&self, head: &RequestHead, path: &str, local: &std::path::Path) -> Response {
        let found = match self.files.lookup(local) {
            Found::Dir if !path.ends_with('/') => {
                // As every server does: a folder's URL ends in a slash.
                let to = format!("{path}/");
                return Response::text(301, &format!("moved to {to}")).header("Location", to);
            }
            Found::Dir => self.files.lookup(&local.join("index.html")),
            f => f,
        };
        match found {
            Found::File(meta, body) => {
                let r = files::answer(
                    &meta,
                    body,
                    head.header("if-none-match"),
                    head.header("if-modified-since"),
                );
                self.caching_headers(path, r)
            }
            _ => Response::text(404, &format!("no such object: {path}")),
        }
    }

    /// `Cache-Control` and `Expires` from the longest matching prefix.
    fn caching_headers(&self, path: &str, mut r: Response) -> Response {
        let Some(h) = self
            .config
            .headers
            .iter()
            .filter(|h| path.starts_with(&h.prefix))
            .max_by_key(|h| h.prefix.len())
        else {
            return r;
        };
        if let Some(cc) = &h.cache_control {
            r.headers.push(("Cache-Control", cc.clone().into()));
        }
        if let Some(after) = h.expires {
            let at = SystemTime::now() + after.duration();
            r.headers
                .push(("Expires", httpdate::fmt_http_date(at).into()));
        }
        if let Some(v) = &h.vary {
            r.headers.push(("Vary", v.clone().into()));
        }
        r
    }
}

fn allow(r: Response, methods: &'static str) -> Response {
    r.header("Allow", methods)
}

/// The decoded path and raw query of an origin-form or absolute-form target.
fn split_target(target: &str) -> Option<(String, Option<&str>)> {
    let t = if target.starts_with('/') {
        target
    } else {
        match target.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
                rest.find('/').map(|j| &rest[j..]).unwrap_or("/")
            }
            Some(_) => return None,
            None => target,
        }
    };
    if !t.starts_with('/') {
        return None;
    }
    let t = t.split('#').next().unwrap_or(t);
    let (raw, query) = match t.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (t, None),
    };
    let path = if raw.contains('%') {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned()
    } else {
        raw.to_owned()
    };
    if path.contains('\0') {
        return None;
    }
    Some((path, query))
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_and_decode() {
        assert_eq!(
            split_target("/a%20b/c.html?q=1#frag"),
            Some(("/a b/c.html".to_string(), Some("q=1")))
        );
        assert_eq!(
            split_target("http://www.x.lab/img/1.jpg"),
            Some(("/img/1.jpg".to_string(), None))
        );
        assert_eq!(
            split_target("http://www.x.lab"),
            Some(("/".to_string(), None))
        );
        assert_eq!(split_target("ftp://x/y"), None);
        assert_eq!(split_target("relative"), None);
        assert_eq!(split_target("/%00"), None);
        assert_eq!(split_target("/%ff"), None);
    }

    async fn start(root: &std::path::Path, tweak: impl FnOnce(&mut Args)) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut args = Args::new(&addr.to_string(), root.to_path_buf());
        tweak(&mut args);
        tokio::spawn(serve(l, args));
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect()
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        let addr = start(dir.path(), |_| {}).await;
        let out = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: o\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: o\r\n\r\nPUT /uploads/a.txt HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /uploads/a.txt HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(statuses(&out), ["200", "200", "201", "200", "404"], "{out}");
        assert_eq!(
            out.matches("<p>hi</p>").count(),
            1,
            "HEAD has no body: {out}"
        );
        assert!(out.contains("\r\n\r\nabc"), "{out}");
        assert!(out.ends_with("no such object: /nope\n"), "{out}");
    }

    #[tokio::test]
    async fn request_limit_and_slow_heads() {
        let dir = tempfile::tempdir().unwrap();
        let addr = start(dir.path(), |a| {
            a.max_requests = 2;
            a.head.header_timeout = 1;
        })
        .await;
        let out = exchange(
            addr,
            b"GET /a HTTP/1.1\r\nHost: o\r\n\r\nGET /b HTTP/1.1\r\nHost: o\r\n\r\nGET /c HTTP/1.1\r\nHost: o\r\n\r\n",
        )
        .await;
        assert_eq!(
            statuses(&out),
            ["404", "404"],
            "the second is the last: {out}"
        );
        assert!(out.contains("Keep-Alive: timeout=15, max=1") && out.contains("Connection: close"));
        let slow = exchange(addr, b"GET / HTTP/1.1\r\nHost: o\r\n").await;
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    }

    /// Connections whose requests are queued before the server accepts
    /// anything: each is waiting in full when accepted, so the at-once path
    /// decides (and hands over what it must not answer itself).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_already_waiting_at_accept() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small.html"), "<p>small</p>").unwrap();
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big.bin"), &big).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let requests: [&[u8]; 6] = [
            b"GET /small.html HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
            b"HEAD /small.html HTTP/1.0\r\n\r\n",
            b"GET /big.bin HTTP/1.0\r\n\r\n",
            // Two requests in one read: not for the at-once path.
            b"GET /small.html HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
            // Keep-alive: handed to the connection's task, which stays.
            b"GET /small.html HTTP/1.1\r\nHost: o\r\n\r\n",
            b"POST /small.html HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
        ];
        let mut clients: Vec<std::net::TcpStream> = requests
            .iter()
            .map(|r| {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(r).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut args = Args::new(&addr.to_string(), dir.path().to_path_buf());
        args.threads = Some(1);
        l.set_nonblocking(true).unwrap();
        tokio::spawn(serve(tokio::net::TcpListener::from_std(l).unwrap(), args));
        let mut read_all = |i: usize| {
            let mut out = Vec::new();
            clients[i].read_to_end(&mut out).unwrap();
            out
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let small = text(&read_all(0));
        assert!(small.starts_with("HTTP/1.1 200 OK\r\n"), "{small}");
        assert!(small.contains("Connection: close\r\n") && small.ends_with("\r\n\r\n<p>small</p>"));
        let head = text(&read_all(1));
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 12\r\n"));
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        let streamed = read_all(2);
        let at = streamed.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(text(&streamed[..at]).contains("Content-Length: 600000\r\n"));
        assert!(
            streamed[at..] == big[..],
            "the whole large body, then the close"
        );
        let two = text(&read_all(3));
        assert_eq!(statuses(&two), ["200", "404"], "{two}");
        let posted = text(&read_all(5));
        assert!(posted.starts_with("HTTP/1.1 411"), "{posted}");
        // The kept connection answers its first request and a second one.
        let mut kept = clients.remove(4);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !text(&got).contains("<p>small</p>") {
            let n = kept.read(&mut chunk).unwrap();
            assert!(n > 0, "closed early: {}", text(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(
            text(&got).contains("Keep-Alive: timeout="),
            "{}",
            text(&got)
        );
        kept.write_all(b"GET /nope HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        kept.read_to_end(&mut rest).unwrap();
        assert!(text(&rest).starts_with("HTTP/1.1 404"), "{}", text(&rest));
    }
}
