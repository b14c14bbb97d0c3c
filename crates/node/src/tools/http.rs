//! `http URL`: an HTTP/1.x client that shows the messages themselves.
//!
//! It prints the request exactly as sent (`> ` lines) and the response's
//! status line and header lines exactly as received (`< ` lines), then the
//! body. `--page` fetches a base page and every object it references, over
//! one persistent connection or, with `--no-keepalive`, one connection per
//! object, and prints each object's time, the total and the number of TCP
//! connections: the lecture's non-persistent versus persistent comparison,
//! measured.

use applab_proto::http::{self, BodyReader, Framing, Limits, ResponseHead};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Largest body kept in memory; larger ones are counted, not kept.
const MAX_KEEP: usize = 16 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// http://HOST[:PORT]/PATH (the scheme may be left out).
    pub url: String,
    /// Request method (default GET, or POST with --data).
    #[arg(short = 'X', long)]
    pub method: Option<String>,
    /// Header line to add, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body (sent with Content-Length).
    #[arg(short = 'd', long)]
    pub data: Option<String>,
    /// Request body read from a file.
    #[arg(long, conflicts_with = "data")]
    pub data_file: Option<std::path::PathBuf>,
    /// Send HEAD (headers only).
    #[arg(short = 'I', long)]
    pub head: bool,
    /// Go through this proxy (absolute-form request targets).
    #[arg(long, value_name = "HOST:PORT")]
    pub proxy: Option<String>,
    /// Speak HTTP/1.0 instead of 1.1.
    #[arg(long = "http1.0")]
    pub http10: bool,
    /// Fetch the page and every object it references, timing each.
    #[arg(long)]
    pub page: bool,
    /// Ask for a new connection per request (Connection: close).
    #[arg(long)]
    pub no_keepalive: bool,
    /// Write the body here instead of the terminal.
    #[arg(short = 'o', long)]
    pub output: Option<std::path::PathBuf>,
    /// Do not print the messages' heads.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// With --page: print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Timeout for connecting and for each read, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Load mode: this many requests per second, each for an object
    /// URL/ID-SIZE.jpg (the origin's load objects).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Load mode: object size (e.g. 12500, 125K).
    #[arg(long, default_value = "12500", requires = "rate")]
    pub size: String,
    /// Load mode: how long to send requests (e.g. 30s).
    #[arg(long, default_value = "30s", requires = "rate")]
    pub duration: String,
    /// Load mode: share of requests for objects already asked for (0 to 1),
    /// which sets a cache's hit rate.
    #[arg(long, default_value_t = 0.0, requires = "rate")]
    pub repeat: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Url {
    host: String,
    port: u16,
    pub(super) path: String,
}

impl Url {
    pub(super) fn parse(s: &str) -> Result<Url, String> {
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(format!("only http:// URLs, not {scheme}://")),
            None => s,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("bad port {p:?} in {s:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("no host in {s:?}"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The Host header value: the port only when it is not 80.
    fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A reference found in a page, resolved against this URL.
    fn join(&self, reference: &str) -> Option<Url> {
        if reference.starts_with("http://") {
            return Url::parse(reference).ok();
        }
        if reference.contains("://") || reference.starts_with("data:") {
            return None;
        }
        if let Some(r) = reference.strip_prefix("//") {
            return Url::parse(r).ok();
        }
        let path = if reference.starts_with('/') {
            reference.to_string()
        } else {
            let dir = self.path.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map(|i| i + 1).unwrap_or(0)];
            format!("{dir}{reference}")
        };
        Some(Url {
            path,
            ..self.clone()
        })
    }
}

/// One response as received.
pub(super) struct Received {
    raw_head: Vec<u8>,
    pub head: ResponseHead,
    body: Vec<u8>,
    pub body_len: u64,
    /// The server will not take another request on this connection.
    closes: bool,
}

pub(super) struct Client {
    args_timeout: Duration,
    proxy: Option<String>,
    http10: bool,
    keepalive: bool,
    extra: Vec<String>,
    quiet: bool,
    conn: Option<(String, TcpStream, Vec<u8>)>,
    connections: u32,
}

impl Client {
    /// Send one request; reuse the open connection to the same server.
    pub(super) fn fetch(
        &mut self,
        method: &str,
        url: &Url,
        body: &[u8],
    ) -> Result<(Received, bool), String> {
        let target_addr = match &self.proxy {
            Some(p) => p.clone(),
            None => format!("{}:{}", url.host, url.port),
        };
        let reused = matches!(&self.conn, Some((a, _, _)) if *a == target_addr);
        if !reused {
            let addr = target_addr
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {target_addr}: {e}"))?
                .next()
                .ok_or_else(|| format!("no address for {target_addr}"))?;
            let s = TcpStream::connect_timeout(&addr, self.args_timeout)
                .map_err(|e| format!("cannot connect to {target_addr}: {e}"))?;
            s.set_read_timeout(Some(self.args_timeout)).ok();
            s.set_nodelay(true).ok();
            self.connections += 1;
            self.conn = Some((target_addr.clone(), s, Vec::new()));
        }
        let req = self.request_head(method, url, body.len());
        if !self.quiet {
            for line in String::from_utf8_lossy(&req).split("\r\n") {
                if !line.is_empty() {
                    println!("> {line}");
                }
            }
            println!(">");
        }
        let (_, sock, buf) = self.conn.as_mut().expect("connected above");
        let mut msg = req;
        msg.extend_from_slice(body);
        sock.write_all(&msg)
            .map_err(|e| format!("sending the request: {e}"))?;
        let got = read_response(sock, buf, method);
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        if got.closes {
            self.conn = None;
        }
        Ok((got, reused))
    }

    /// A client with the same settings and no connection yet.
    pub(super) fn fresh(&self) -> Client {
        Client {
            args_timeout: self.args_timeout,
            proxy: self.proxy.clone(),
            http10: self.http10,
            keepalive: self.keepalive,
            extra: self.extra.clone(),
            quiet: true,
            conn: None,
            connections: 0,
        }
    }

    fn request_head(&self, method: &str, url: &Url, body_len: usize) -> Vec<u8> {
        let target = if self.proxy.is_some() {
            format!("http://{}{}", url.authority(), url.path)
        } else {
            url.path.clone()
        };
        let version = if self.http10 { "1.0" } else { "1.1" };
        let mut h = format!("{method} {target} HTTP/{version}\r\n");
        let has = |name: &str| {
            self.extra.iter().any(|l| {
                l.split(':')
                    .next()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
            })
        };
        if !has("host") {
            h.push_str(&format!("Host: {}\r\n", url.authority()));
        }
        if !has("user-agent") {
            h.push_str("User-Agent: applab-http\r\n");
        }
        for l in &self.extra {
            h.push_str(l.trim());
            h.push_str("\r\n");
        }
        if !has("connection") {
            match (self.keepalive, self.http10) {
                (false, false) => h.push_str("Connection: close\r\n"),
                (true, true) => h.push_str("Connection: keep-alive\r\n"),
                _ => {}
            }
        }
        if body_len > 0 || matches!(method, "POST" | "PUT") {
            h.push_str(&format!("Content-Length: {body_len}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

fn read_response(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    method: &str,
) -> Result<Received, String> {
    let limits = Limits::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut fill = |sock: &mut TcpStream, buf: &mut Vec<u8>| -> Result<bool, String> {
        let n = sock
            .read(&mut chunk)
            .map_err(|e| format!("reading the response: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    let (head, used) = loop {
        // Skip interim 1xx responses (100 Continue) after showing them.
        match http::parse_response_head(buf, &limits).map_err(|e| format!("bad response: {e}"))? {
            Some((h, n)) if (100..200).contains(&h.status) => {
                buf.drain(..n);
                continue;
            }
            Some(x) => break x,
            None => {
                if !fill(sock, buf)? {
                    return Err("the server closed the connection without a response".into());
                }
            }
        }
    };
    let raw_head = buf[..used].to_vec();
    buf.drain(..used);
    let framing =
        http::response_framing(method, &head).map_err(|e| format!("bad response: {e}"))?;
    let mut reader = BodyReader::new(framing);
    let mut body = Vec::new();
    let mut piece = Vec::new();
    let mut closed = false;
    while !reader.is_done() {
        piece.clear();
        let used = reader
            .feed(buf, &mut piece)
            .map_err(|e| format!("bad body: {e}"))?;
        buf.drain(..used);
        // Only the first MAX_KEEP bytes are kept to show; all are counted.
        let room = MAX_KEEP.saturating_sub(body.len()).min(piece.len());
        body.extend_from_slice(&piece[..room]);
        if reader.is_done() {
            break;
        }
        if !fill(sock, buf)? {
            reader.at_close().map_err(|e| e.to_string())?;
            closed = true;
        }
    }
    let body_len = reader.bytes;
    let closes = closed || framing == Framing::UntilClose || !head.keep_alive();
    Ok(Received {
        raw_head,
        head,
        body,
        body_len,
        closes,
    })
}

fn print_head(r: &Received) {
    for line in String::from_utf8_lossy(&r.raw_head).split("\r\n") {
        if !line.is_empty() {
            println!("< {line}");
        }
    }
    println!("<");
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("http: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: Args) -> Result<ExitCode, String> {
    let url = Url::parse(&args.url)?;
    for h in &args.headers {
        if !h.contains(':') {
            return Err(format!("header {h:?} must be \"Name: value\""));
        }
    }
    let body = match (&args.data, &args.data_file) {
        (Some(d), _) => d.clone().into_bytes(),
        (_, Some(f)) => std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?,
        _ => Vec::new(),
    };
    let method = match (
        &args.method,
        args.head,
        args.data.is_some() || args.data_file.is_some(),
    ) {
        (Some(m), _, _) => m.to_ascii_uppercase(),
        (None, true, _) => "HEAD".into(),
        (None, false, true) => "POST".into(),
        _ => "GET".into(),
    };
    let mut client = Client {
        args_timeout: Duration::from_millis(args.timeout_ms),
        proxy: args.proxy.clone(),
        http10: args.http10,
        keepalive: !args.no_keepalive,
        extra: args.headers.clone(),
        quiet: args.quiet || args.json || args.page,
        conn: None,
        connections: 0,
    };
    if args.page {
        return page(&mut client, &url, &args);
    }
    if let Some(rate) = args.rate {
        return load(&client, &url, &args, rate);
    }
    let (got, _) = client.fetch(&method, &url, &body)?;
    if !args.quiet {
        print_head(&got);
    }
    match &args.output {
        Some(p) => std::fs::write(p, &got.body).map_err(|e| format!("{}: {e}", p.display()))?,
        None => show_body(&got),
    }
    Ok(if got.head.status < 400 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load(client: &Client, url: &Url, args: &Args, rate: f64) -> Result<ExitCode, String> {
    if !(rate > 0.0 && rate <= 10_000.0) {
        return Err(format!(
            "--rate {rate}: between 0 and 10000 requests per second"
        ));
    }
    if !(0.0..=1.0).contains(&args.repeat) {
        return Err(format!("--repeat {}: a share between 0 and 1", args.repeat));
    }
    let size = applab_roles::parse_size(&args.size)
        .ok_or_else(|| format!("--size {:?}: e.g. 12500 or 125K", args.size))?;
    let us = applab_roles::parse_duration_us(&args.duration)
        .ok_or_else(|| format!("--duration {:?}: e.g. 30s", args.duration))?;
    let spec = super::load::Load {
        rate,
        size,
        duration: Duration::from_micros(us),
        repeat: args.repeat,
    };
    let s = super::load::run(url, client, &spec, !args.json && !args.quiet);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        println!(
            "{} requests in {:.1} s ({} answered, {} failed, {} not sent)\n\
             hit rate {:.3} ({} hits, {} misses, {} revalidated)\n\
             response time: mean {:.0} ms, median {:.0} ms, 95th percentile {:.0} ms\n\
             received {:.2} Mbit/s of objects",
            s.requests,
            s.duration_s,
            s.completed,
            s.failed,
            s.skipped,
            s.hit_rate,
            s.hits,
            s.misses,
            s.revalidated,
            s.mean_ms,
            s.p50_ms,
            s.p95_ms,
            s.throughput_bps / 1e6
        );
        for e in &s.errors {
            println!("error: {e}");
        }
    }
    Ok(if s.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show_body(r: &Received) {
    if r.body_len == 0 {
        return;
    }
    let ctype = String::from_utf8_lossy(r.head.header("content-type").unwrap_or(b"")).to_string();
    let textual = ctype.starts_with("text/")
        || ctype.contains("json")
        || ctype.contains("xml")
        || (ctype.is_empty() && std::str::from_utf8(&r.body).is_ok());
    if textual && r.body.len() as u64 == r.body_len {
        let mut out = std::io::stdout();
        let _ = out.write_all(&r.body);
        let _ = out.flush();
    } else {
        println!(
            "[{} bytes of {}; use -o FILE to keep them]",
            r.body_len,
            if ctype.is_empty() { "data" } else { &ctype }
        );
    }
}

/// The references of a page: `src` and `href` of stylesheets, in order.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    for tag_start in lower.match_indices('<').map(|(i, _)| i) {
        let end = lower[tag_start..]
            .find('>')
            .map(|e| tag_start + e)
            .unwrap_or(lower.len());
        let tag = &lower[tag_start..end];
        let attr = if tag.starts_with("<img") || tag.starts_with("<script") {
            "src="
        } else if tag.starts_with("<link") && tag.contains("stylesheet") {
            "href="
        } else {
            continue;
        };
        let Some(a) = tag.find(attr) else { continue };
        let v = tag_start + a + attr.len();
        let raw = &html[v..end];
        let value = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => raw[1..].split(q).next().unwrap_or(""),
            _ => raw.split([' ', '>']).next().unwrap_or(""),
        };
        if !value.is_empty() && !out.iter().any(|o| o == value) {
            out.push(value.to_string());
        }
    }
    out
}

fn page(client: &mut Client, url: &Url, args: &Args) -> Result<ExitCode, String> {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut fetch_one = |client: &mut Client, u: &Url| -> Result<Received, String> {
        let t = Instant::now();
        let before = client.connections;
        let (got, _) = client.fetch("GET", u, &[])?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let new = client.connections > before;
        rows.push(serde_json::json!({
            "path": u.path, "host": u.host, "status": got.head.status, "bytes": got.body_len,
            "ms": (ms * 10.0).round() / 10.0, "connection": client.connections, "new_connection": new,
        }));
        if !args.json {
            println!(
                "{:>3} {:>9} B {:>9.1} ms  conn #{} ({})  {}",
                got.head.status,
                got.body_len,
                ms,
                client.connections,
                if new { "new" } else { "reused" },
                u.path
            );
        }
        Ok(got)
    };
    let base = fetch_one(client, url)?;
    let html = String::from_utf8_lossy(&base.body).into_owned();
    let refs = references(&html);
    let mut failed = base.head.status >= 400;
    for r in &refs {
        let Some(u) = url.join(r) else { continue };
        match fetch_one(client, &u) {
            Ok(got) => failed |= got.head.status >= 400,
            Err(e) => {
                eprintln!("http: {}: {e}", u.path);
                failed = true;
            }
        }
    }
    let total = started.elapsed().as_secs_f64() * 1e3;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "url": args.url, "objects": refs.len(), "total_ms": (total * 10.0).round() / 10.0,
                "connections": client.connections, "persistent": !args.no_keepalive, "fetches": rows,
            })
        );
    } else {
        println!(
            "base page + {} objects: {:.1} ms over {} TCP connection{} ({})",
            refs.len(),
            total,
            client.connections,
            if client.connections == 1 { "" } else { "s" },
            if args.no_keepalive {
                "non-persistent"
            } else {
                "persistent"
            }
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_references() {
        let u = Url::parse("http://www.x.lab:8080/a/b.html").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("www.x.lab", 8080, "/a/b.html")
        );
        assert_eq!(Url::parse("origin").unwrap().path, "/");
        assert!(Url::parse("https://x/").is_err());
        assert_eq!(u.join("img/1.jpg").unwrap().path, "/a/img/1.jpg");
        assert_eq!(u.join("/x.css").unwrap().authority(), "www.x.lab:8080");
        assert_eq!(u.join("http://other/y").unwrap().host, "other");
        let refs = references(
            "<IMG SRC=\"/i/1.jpg\"><img alt=x src='2.jpg'><link rel=stylesheet href=s.css><a href=no><img src=\"/i/1.jpg\">",
        );
        assert_eq!(refs, ["/i/1.jpg", "2.jpg", "s.css"]);
    }
}
