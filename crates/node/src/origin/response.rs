//! Responses and how they go on the wire (RFC 9112 §4, §6).

use super::page;
use applab_proto::http;
use bytes::Bytes;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What follows the head.
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// A file too large to keep in memory, streamed from disk.
    File(PathBuf, u64),
    /// One of the generated page's objects, made while it is sent.
    Object {
        index: u32,
        len: u64,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) | Body::Object { len: n, .. } => *n,
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, Value)>,
    pub body: Body,
}

/// A header field value. Most are fixed text or belong to a cached file,
/// so answering costs no copy of them.
#[derive(Clone, Debug)]
pub enum Value {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Value {
    pub fn as_str(&self) -> &str {
        match self {
            Value::Static(s) => s,
            Value::Shared(s) => s,
            Value::Owned(s) => s,
        }
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Value {
        Value::Static(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Owned(s)
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Value {
        Value::Shared(s)
    }
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            // Type, validators, caching and one more without growing.
            headers: Vec::with_capacity(6),
            body: Body::Empty,
        }
    }

    /// A short plain-text explanation, readable in a raw TCP console.
    pub fn text(status: u16, msg: &str) -> Response {
        let body = format!("{status} {}\n{msg}\n", http::reason(status));
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Body::Bytes(body.into()))
    }

    pub fn html(status: u16, page: String) -> Response {
        Response::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(Body::Bytes(page.into()))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<Value>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// 304, 204 and 1xx carry no body and no Content-Length (RFC 9110 §8.6).
    pub fn has_body(&self) -> bool {
        !(self.status == 204 || self.status == 304 || (100..200).contains(&self.status))
    }
}

/// How the connection continues after a response.
pub struct Persistence {
    pub keep: bool,
    /// The client spoke HTTP/1.0 and asked for keep-alive explicitly.
    pub http10: bool,
    pub timeout_secs: u64,
    pub left: u32,
}

impl Persistence {
    /// The last response on a connection.
    pub const CLOSE: Persistence = Persistence {
        keep: false,
        http10: false,
        timeout_secs: 0,
        left: 0,
    };
}

/// Append a whole response to `out`: head, and the body when it is held in
/// memory (none for HEAD, 204, 304). The body to stream after `out` is
/// returned when it is too large for that.
pub fn encode(
    out: &mut Vec<u8>,
    resp: Response,
    conn: &Persistence,
    head_only: bool,
) -> Option<Body> {
    write_head(out, &resp, conn);
    if head_only || !resp.has_body() || append_small_body(out, &resp.body) {
        None
    } else {
        Some(resp.body)
    }
}

/// Append the status line and header section to `out`. Called for every
/// response, so numbers go through itoa rather than the formatter.
fn write_head(out: &mut Vec<u8>, resp: &Response, conn: &Persistence) {
    let mut num = itoa::Buffer::new();
    http::put_status_line(out, resp.status, http::reason(resp.status));
    out.extend_from_slice(b"Date: ");
    push_date(out);
    out.extend_from_slice(b"\r\nServer: applab-origin\r\n");
    for (k, v) in &resp.headers {
        http::put_field(out, k, v.as_str().as_bytes());
    }
    if resp.has_body() {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(num.format(resp.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if conn.keep {
        if conn.http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"Keep-Alive: timeout=");
        out.extend_from_slice(num.format(conn.timeout_secs).as_bytes());
        out.extend_from_slice(b", max=");
        out.extend_from_slice(num.format(conn.left).as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Append an in-memory body; false if the body must be streamed instead.
fn append_small_body(out: &mut Vec<u8>, body: &Body) -> bool {
    match body {
        Body::Empty => true,
        Body::Bytes(b) => {
            out.extend_from_slice(b);
            true
        }
        Body::Object { index, len } if *len <= 256 * 1024 => {
            page::object_bytes(*index, *len, out);
            true
        }
        _ => false,
    }
}

thread_local! {
    // Formatting the date once a second per worker, not once a response.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}
