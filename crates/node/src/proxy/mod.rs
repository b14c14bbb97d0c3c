//! The proxy role: a caching HTTP/1.1 proxy, in forward mode (a browser
//! configured for a proxy sends it absolute-form requests, RFC 9112 §3.2.2)
//! or in reverse mode (in front of one origin, as a CDN edge).
//!
//! What the lecture calls a web cache lives here: a request that the cache
//! can answer fresh never leaves the campus (`X-Cache: HIT`); a stale one
//! is revalidated with `If-Modified-Since`/`If-None-Match` and a 304 keeps
//! the stored body (`REVALIDATED`); anything else goes to the origin
//! (`MISS`). The rules (RFC 9111) are http-cache-semantics' (`cache`);
//! what happens to the messages on the way is in `message`, the origin side
//! in `upstream`, the counters the lab reads in `stats`.

mod cache;
mod conn;
mod message;
mod stats;
mod upstream;
mod wire;

use applab_proto::conditional;
use applab_proto::http::{self, Limits, RequestHead, ResponseHead};
use bytes::Bytes;
use cache::{Cache, Lookup, Stored, Turn};
pub use conn::serve;
use conn::{put_field, simple, Reply, ReplyBody};
use message::{Target, TargetError};
use stats::{Outcome, Stats};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use upstream::{Answer, FetchError, Upstream};
use wire::Body;

/// The path, on the proxy itself, of its JSON counters.
pub const STATS_PATH: &str = "/_applab/stats";

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:3128")]
    pub listen: String,
    /// Reverse (accelerator) mode in front of this origin, e.g.
    /// http://127.0.0.1:8080. Without it: a forward proxy.
    #[arg(long)]
    pub reverse: Option<String>,
    /// The role's configuration (TOML; see docs/lab-format.md, "proxy").
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Memory for cached responses (e.g. 64M).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub cache_size: u64,
    /// Largest response kept in the cache; bigger ones are streamed through.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub max_object: u64,
    /// Largest request body accepted (larger: 413).
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    pub max_body: u64,
    /// Seconds to wait for a connection to an origin (then 502 or 504).
    #[arg(long, default_value_t = 5)]
    pub connect_timeout: u64,
    /// Seconds to wait for an origin's answer (then 504).
    #[arg(long, default_value_t = 30)]
    pub response_timeout: u64,
    /// Most requests on one client connection.
    #[arg(long, default_value_t = 1000)]
    pub max_requests: u32,
    /// Most simultaneous client connections; more get 503.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    #[command(flatten)]
    pub head: crate::http_limits::HeadArgs,
    /// The name this proxy gives itself in `Via`.
    #[arg(long, default_value = "applab-proxy")]
    pub name: String,
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<applab_roles::Size>().map(|s| s.bytes())
}

impl Args {
    /// The lab's `[nodes.config]` (applab_roles::ProxyConfig) over
    /// the flags' defaults.
    fn with_file(mut self) -> anyhow::Result<Args> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let f = applab_roles::ProxyConfig::load(path).map_err(anyhow::Error::msg)?;
        if let Some(v) = f.reverse {
            self.reverse = Some(v);
        }
        if let Some(v) = f.cache_size {
            self.cache_size = v.bytes();
        }
        if let Some(v) = f.max_object {
            self.max_object = v.bytes();
        }
        if let Some(v) = f.name {
            self.name = v;
        }
        Ok(self)
    }
}

pub struct Proxy {
    args: Args,
    /// Reverse mode: the origin everything goes to.
    origin: Option<Target>,
    limits: Limits,
    cache: Arc<Cache>,
    upstream: Upstream,
    stats: Stats,
    conn_ids: AtomicU64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let proxy = Arc::new(Proxy::new(args)?);
    tracing::info!(
        addr = %listener.local_addr()?,
        mode = match &proxy.origin { Some(o) => format!("reverse for {}", o.authority), None => "forward".into() },
        cache_bytes = proxy.args.cache_size,
        "proxy listening"
    );
    serve(listener, proxy).await
}

impl Proxy {
    pub fn new(args: Args) -> anyhow::Result<Proxy> {
        let args = args.with_file()?;
        let origin = match &args.reverse {
            None => None,
            Some(u) => Some(
                message::absolute_target(u)
                    .map_err(|e| anyhow::anyhow!("--reverse {u}: not an http:// origin ({e:?})"))?,
            ),
        };
        let limits = args.head.limits();
        Ok(Proxy {
            origin,
            limits,
            cache: Arc::new(Cache::new(
                args.cache_size as usize,
                args.max_object as usize,
            )),
            upstream: Upstream::new(
                Duration::from_secs(args.connect_timeout),
                Duration::from_secs(args.response_timeout),
                // Origins may send bigger heads than clients may.
                Limits {
                    max_request_line: 64 * 1024,
                    max_head: 256 * 1024,
                    max_headers: 500,
                },
            ),
            stats: Stats::default(),
            conn_ids: AtomicU64::new(1),
            args,
        })
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(self.args.head.idle_timeout)
    }

    /// Decide the answer to one request.
    async fn handle(&self, head: &RequestHead, body: Bytes) -> Reply {
        if head.method == "CONNECT" {
            return simple(
                403,
                "This proxy does not open tunnels (CONNECT): it relays and caches plain http:// requests only.\n",
            );
        }
        if message::has_looped(&head.headers, &self.args.name) {
            return simple(
                508,
                "This request has already passed through this proxy: a forwarding loop.\n",
            );
        }
        if let Some(why) = http::host_problem(head) {
            return simple(400, &format!("{why}.\n"));
        }
        let target = match self.target(head) {
            Ok(Some(t)) => t,
            Ok(None) => return self.stats_reply(),
            Err((status, text)) => return simple(status, &text),
        };
        let mut headers = message::end_to_end(&head.headers);
        message::remove_header(&mut headers, "expect");
        // Forward mode: the absolute URI names the origin, and Host must
        // agree with it (RFC 9112 §3.2.2). Reverse mode keeps the client's.
        let host = match (&self.origin, head.header("host")) {
            (Some(_), Some(h)) => String::from_utf8_lossy(h).to_ascii_lowercase(),
            _ => target.authority.clone(),
        };
        message::set_header(&mut headers, "Host", host.clone().into_bytes());
        message::add_via(&mut headers, head.minor, &self.args.name);
        let key = format!("http://{host}{}", target.path);
        let fwd = Forward {
            method: head.method.as_str(),
            target: &target,
            key: &key,
            headers,
            body,
        };
        match head.method.as_str() {
            "GET" | "HEAD" => self.cached(fwd, head).await,
            _ => self.pass(fwd).await,
        }
    }

    /// Where a request goes; `Ok(None)` for the proxy's own stats page;
    /// otherwise the status and text to refuse it with.
    fn target(&self, head: &RequestHead) -> Result<Option<Target>, (u16, String)> {
        let t = head.target.as_str();
        if t == STATS_PATH {
            return Ok(None);
        }
        let origin_form = t.starts_with('/') || (t == "*" && head.method == "OPTIONS");
        match (&self.origin, message::absolute_target(t)) {
            (None, Ok(abs)) => Ok(Some(abs)),
            (Some(o), Ok(abs)) => Ok(Some(Target {
                path: abs.path,
                ..o.clone()
            })),
            (Some(o), Err(TargetError::NotAbsolute)) if origin_form => Ok(Some(Target {
                path: t.to_string(),
                ..o.clone()
            })),
            (None, Err(TargetError::NotAbsolute)) => Err((
                400,
                format!(
                    "This is a proxy: ask it for an absolute URI (GET http://host/path HTTP/1.1), \
                     as a browser configured to use a proxy does. Its counters are at {STATS_PATH}.\n"
                ),
            )),
            (_, Err(TargetError::Scheme(s))) => Err((
                501,
                format!("This proxy speaks http:// only, not {s}://.\n"),
            )),
            (_, Err(TargetError::Malformed(why))) => {
                Err((400, format!("Bad request target: {why}.\n")))
            }
            (Some(_), Err(TargetError::NotAbsolute)) => {
                Err((400, "Bad request target.\n".to_string()))
            }
        }
    }

    fn stats_reply(&self) -> Reply {
        let report = self.stats.report(self.cache.usage());
        let mut r = simple(200, "");
        r.headers = vec![
            ("Content-Type".into(), b"application/json".to_vec()),
            ("Cache-Control".into(), b"no-store".to_vec()),
        ];
        r.body = ReplyBody::Full(Bytes::from(
            serde_json::to_vec_pretty(&report).unwrap_or_default(),
        ));
        r.outcome = Outcome::Own;
        r
    }

    /// GET and HEAD: from the cache when it can, else from the origin.
    async fn cached(&self, mut fwd: Forward<'_>, client: &RequestHead) -> Reply {
        let now = SystemTime::now();
        let req = message::request_parts(fwd.method, fwd.key, &fwd.headers);
        let only_if_cached = message::directive(&client.headers, "only-if-cached");
        match self.cache.lookup(fwd.key, &req, now) {
            Lookup::Fresh(s) => return self.hit(&s, client, Outcome::Hit),
            Lookup::Stale(s, headers) if !only_if_cached => {
                return self.revalidate(fwd, s, headers, client).await
            }
            _ if only_if_cached => {
                return simple(
                    504,
                    "only-if-cached: this proxy holds no fresh copy of that object.\n",
                )
            }
            _ => {}
        }
        // A miss. The first request for an object fetches it; the others
        // arriving meanwhile wait and are answered from what it stored.
        let collapsible = fwd.method == "GET" && !conditional(&client.headers);
        let _turn = if collapsible {
            match self.cache.turn(fwd.key) {
                Turn::Fetch(f) => Some(f),
                Turn::Wait(mut rx) => {
                    let _ =
                        tokio::time::timeout(self.upstream.response_timeout, rx.changed()).await;
                    if let Lookup::Fresh(s) = self.cache.lookup(fwd.key, &req, SystemTime::now()) {
                        return self.hit(&s, client, Outcome::Hit);
                    }
                    None
                }
            }
        } else {
            None
        };
        // The client's own validators are answered here, from the full
        // response, so that the response can be stored.
        if fwd.method == "GET" {
            for f in ["if-none-match", "if-modified-since"] {
                message::remove_header(&mut fwd.headers, f);
            }
        }
        let sent = message::request_parts(fwd.method, fwd.key, &fwd.headers);
        let mut reply = self.fetch(&fwd, Some(&sent)).await;
        if let (ReplyBody::Full(_), 200) = (&reply.body, reply.status) {
            if let Some(r) = not_modified_for(client, &reply.headers) {
                reply.status = 304;
                reply.reason = http::reason(304).into();
                reply.headers = r;
                reply.head_only = true;
            }
        }
        if client.method == "HEAD" {
            reply.head_only = true;
        }
        reply
    }

    /// Answer from a stored response (a 304 when the client's validators
    /// match it).
    fn hit(&self, s: &Stored, client: &RequestHead, outcome: Outcome) -> Reply {
        let mut headers = s.headers_now(SystemTime::now());
        message::add_via(&mut headers, s.head.minor, &self.args.name);
        let mut r = Reply {
            status: s.head.status,
            reason: s.head.reason.clone(),
            headers,
            body: ReplyBody::Full(s.body.clone()),
            outcome,
            from_origin: 0,
            head_only: client.method == "HEAD" || matches!(s.head.status, 204 | 304),
        };
        if s.head.status == 200 {
            if let Some(h) = not_modified_for(client, &r.headers) {
                r.status = 304;
                r.reason = http::reason(304).into();
                r.headers = h;
                r.head_only = true;
            }
        }
        if r.head_only
            && !r
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            && r.status == 200
        {
            r.headers.push((
                "Content-Length".into(),
                s.body.len().to_string().into_bytes(),
            ));
        }
        r
    }

    /// A stored response that must be checked with the origin first.
    async fn revalidate(
        &self,
        fwd: Forward<'_>,
        s: Arc<Stored>,
        headers: Vec<(String, Vec<u8>)>,
        client: &RequestHead,
    ) -> Reply {
        let now = SystemTime::now();
        let ask = Forward {
            headers,
            method: "GET",
            ..fwd
        };
        let sent = message::request_parts("GET", ask.key, &ask.headers);
        let answer = match self
            .upstream
            .send(ask.target, "GET", &request_bytes(&ask))
            .await
        {
            Ok(a) => a,
            Err(e) => return fetch_failed(e),
        };
        if answer.head.status != 304 {
            return self
                .finish(&ask, Some(&sent), answer, client.method == "HEAD")
                .await;
        }
        let from_origin =
            answer.head_bytes + answer.wire.bytes_in.saturating_sub(answer.head_bytes);
        let reusable = answer.reusable();
        let res = message::response_parts(&answer.head);
        let matched = matches!(
            s.policy.after_response(&sent, &res, now),
            http_cache_semantics::AfterResponse::NotModified(..)
        );
        if reusable {
            self.upstream.put_back(answer.origin.clone(), answer.wire);
        }
        let client_asked = conditional(&client.headers);
        // A 304 naming no validator (allowed, and common) is about the one
        // response we asked with, unless the client added its own
        // (RFC 9111 §4.3.4).
        let bare =
            answer.head.header("etag").is_none() && answer.head.header("last-modified").is_none();
        let matched = matched || (bare && !client_asked);
        if !matched && client_asked {
            // A 304 for the client's own validators, not for the stored
            // response: it asked for exactly this.
            let mut r = self.relay_head(answer.head, from_origin);
            r.head_only = true;
            return r;
        }
        if !matched {
            // A 304 for something else than what we hold, and a client that
            // needs the body: ask again without validators.
            let mut again = ask;
            for f in ["if-none-match", "if-modified-since"] {
                message::remove_header(&mut again.headers, f);
            }
            let sent = message::request_parts("GET", again.key, &again.headers);
            let mut r = self.fetch(&again, Some(&sent)).await;
            r.head_only |= client.method == "HEAD";
            return r;
        }
        let head = cache::merge_304(&s.head, &answer.head);
        let policy = self
            .cache
            .policy(&s.request, &head, self.origin.is_some(), now);
        let updated = Stored {
            policy,
            request: s.request.clone(),
            head,
            body: s.body.clone(),
        };
        let mut r = self.hit(&updated, client, Outcome::Revalidated);
        r.from_origin = from_origin;
        self.cache.store(ask.key, updated);
        r
    }

    /// Send to the origin and answer with what comes back, storing it when
    /// the rules allow. `sent` is the request as the cache policy sees it
    /// (none: never stored).
    async fn fetch(&self, fwd: &Forward<'_>, sent: Option<&::http::request::Parts>) -> Reply {
        match self
            .upstream
            .send(fwd.target, fwd.method, &request_bytes(fwd))
            .await
        {
            Ok(a) => self.finish(fwd, sent, a, fwd.method == "HEAD").await,
            Err(e) => fetch_failed(e),
        }
    }

    async fn finish(
        &self,
        fwd: &Forward<'_>,
        sent: Option<&::http::request::Parts>,
        mut answer: Answer,
        head_only: bool,
    ) -> Reply {
        let idle = self.upstream.response_timeout;
        let mut body = Body::new(answer.framing);
        let mut data = Vec::new();
        let whole = match answer
            .body(&mut body, &mut data, self.cache.max_object, idle)
            .await
        {
            Ok(w) => w,
            Err(e) => return fetch_failed(e),
        };
        let from_origin = answer.wire.bytes_in;
        if !whole {
            let mut r = self.relay_head(answer.head.clone(), 0);
            r.head_only = head_only;
            r.body = ReplyBody::Stream {
                answer: Box::new(answer),
                body,
                first: data,
            };
            return r;
        }
        let head = answer.head.clone();
        if answer.reusable() {
            let origin = answer.origin.clone();
            self.upstream.put_back(origin, answer.wire);
        }
        let data = Bytes::from(data);
        if let (Some(req), "GET") = (sent, fwd.method) {
            let stored_head = ResponseHead {
                headers: message::end_to_end(&head.headers),
                ..head.clone()
            };
            let now = SystemTime::now();
            let policy = self
                .cache
                .policy(req, &stored_head, self.origin.is_some(), now);
            self.cache.store(
                fwd.key,
                Stored {
                    policy,
                    request: req.clone(),
                    head: stored_head,
                    body: data.clone(),
                },
            );
        }
        let mut r = self.relay_head(head, from_origin);
        r.body = ReplyBody::Full(data);
        r.head_only = head_only || matches!(r.status, 204 | 304);
        r
    }

    /// The origin's status and end-to-end fields, with our `Via`.
    fn relay_head(&self, head: ResponseHead, from_origin: u64) -> Reply {
        let mut headers = message::end_to_end(&head.headers);
        message::add_via(&mut headers, head.minor, &self.args.name);
        Reply {
            status: head.status,
            reason: head.reason,
            headers,
            body: ReplyBody::Full(Bytes::new()),
            outcome: Outcome::Miss,
            from_origin,
            head_only: false,
        }
    }

    /// Methods the cache does not answer: passed through; when they
    /// succeed, what they changed is forgotten (RFC 9111 §4.4).
    async fn pass(&self, fwd: Forward<'_>) -> Reply {
        let r = self.fetch(&fwd, None).await;
        let unsafe_method = !matches!(fwd.method, "OPTIONS" | "TRACE");
        if unsafe_method && (200..400).contains(&r.status) {
            self.cache.invalidate(fwd.key);
            for f in ["location", "content-location"] {
                if let Some((_, v)) = r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(f)) {
                    let v = String::from_utf8_lossy(v);
                    let host = fwd
                        .key
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or("");
                    // Only URIs of the same origin (RFC 9111 §4.4).
                    let k = match message::absolute_target(&v) {
                        Ok(t) if t.authority == host => Some(t.uri()),
                        Err(TargetError::NotAbsolute) if v.starts_with('/') => {
                            Some(format!("http://{host}{v}"))
                        }
                        _ => None,
                    };
                    if let Some(k) = k {
                        self.cache.invalidate(&k);
                    }
                }
            }
        }
        r
    }
}

/// A request on its way to the origin.
struct Forward<'a> {
    method: &'a str,
    target: &'a Target,
    /// The cache key: the effective request URI.
    key: &'a str,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
}

fn request_bytes(f: &Forward<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + f.body.len());
    out.extend_from_slice(f.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in &f.headers {
        if n.eq_ignore_ascii_case("content-length") {
            continue;
        }
        put_field(&mut out, n, v);
    }
    if !f.body.is_empty() || matches!(f.method, "POST" | "PUT" | "PATCH") {
        put_field(
            &mut out,
            "Content-Length",
            f.body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&f.body);
    out
}

fn fetch_failed(e: FetchError) -> Reply {
    tracing::warn!("{e}");
    simple(e.status(), &format!("{e}\n"))
}

fn conditional(headers: &[(String, Vec<u8>)]) -> bool {
    headers.iter().any(|(n, _)| {
        [
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
            "if-range",
            "range",
        ]
        .iter()
        .any(|c| n.eq_ignore_ascii_case(c))
    })
}

/// The client's If-None-Match / If-Modified-Since against a 200 the proxy
/// holds: `Some(fields of the 304)` when they match.
fn not_modified_for(
    client: &RequestHead,
    headers: &[(String, Vec<u8>)],
) -> Option<Vec<(String, Vec<u8>)>> {
    let field = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    let matched = conditional::not_modified(
        client.header("if-none-match"),
        client.header("if-modified-since"),
        field("etag"),
        field("last-modified").and_then(conditional::http_date),
    );
    matched.then(|| conditional::fields_of_304(headers))
}
