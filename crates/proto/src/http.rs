//! HTTP/1.x message heads (RFC 9112), parsed with `httparse`.
//!
//! A request message is a request line (`GET /index.html HTTP/1.1`), header
//! lines, an empty line, then an optional body. This module only finds and
//! checks the head; bodies are framed by the caller from `Content-Length`.
//! Every limit is explicit, because students type these by hand and the
//! network is hostile.

use thiserror::Error;

/// Bounds applied while reading a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line (method, target, version) in bytes.
    pub max_request_line: usize,
    /// Largest whole head (request line and all header lines) in bytes.
    pub max_head: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a request head was refused; each maps to the status RFC 9110 names.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("request line longer than {0} bytes")]
    UriTooLong(usize),
    #[error("request head larger than {0} bytes or more than the allowed header fields")]
    HeadersTooLarge(usize),
    #[error("malformed HTTP message: {0}")]
    Malformed(String),
    #[error("HTTP version not supported: {0}")]
    Version(String),
}

impl HeadError {
    /// The status code a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::UriTooLong(_) => 414,
            HeadError::HeadersTooLarge(_) => 431,
            HeadError::Malformed(_) => 400,
            HeadError::Version(_) => 505,
        }
    }
}

/// A parsed request head with owned fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// First value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the connection stays open after this exchange (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        // Every Connection line counts; tokens compared without allocating
        // (this runs once per request).
        let has = |tok: &[u8]| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .any(|(_, v)| {
                    v.split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(tok))
                })
        };
        if self.minor == 0 {
            has(b"keep-alive")
        } else {
            !has(b"close")
        }
    }
}

/// Header slots up to this many live on the stack: a parse per request
/// must not cost an allocation.
const STACK_HEADERS: usize = 128;

fn header_slots<'a, 'b>(
    limits: &Limits,
    stack: &'a mut [httparse::Header<'b>; STACK_HEADERS],
    heap: &'a mut Vec<httparse::Header<'b>>,
) -> &'a mut [httparse::Header<'b>] {
    if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize(limits.max_headers, httparse::EMPTY_HEADER);
        heap
    }
}

/// How many empty lines (CR and LF) open `buf`: a server ignores them
/// before a request line (RFC 9112 §2.2).
pub fn blank_lines_before_request(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Try to parse a head from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed; `Ok(Some((head, n)))` means the
/// head took the first `n` bytes.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // The request line is judged on its own first, so an overlong URI gets
    // 414 rather than the 431 of an overlong head.
    let line_end = buf.iter().position(|&b| b == b'\n');
    match line_end {
        None if buf.len() > limits.max_request_line => {
            return Err(HeadError::UriTooLong(limits.max_request_line))
        }
        Some(n) if n > limits.max_request_line => {
            return Err(HeadError::UriTooLong(limits.max_request_line))
        }
        _ => {}
    }
    if let Some(n) = line_end {
        if let Some(at) = check_version(&buf[..n])? {
            // HTTP/1.2 … 1.9: a 1.x the server does not know is handled as
            // the highest it does (RFC 9110 §2.5); httparse knows 1.0 and
            // 1.1 only, so the head is parsed as 1.1 (a rare path).
            let mut copy = buf.to_vec();
            copy[at] = b'1';
            return parse_request_head(&copy, limits);
        }
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut req = httparse::Request::new(header_slots(limits, &mut stack, &mut heap));
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            if n > limits.max_head {
                return Err(HeadError::HeadersTooLarge(limits.max_head));
            }
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                minor: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
            };
            Ok(Some((head, n)))
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head {
                Err(HeadError::HeadersTooLarge(limits.max_head))
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::HeadersTooLarge(limits.max_head)),
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

/// A parsed response head with owned fields (clients, the proxy, the decoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// First value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Try to parse a response head from the start of `buf`.
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut resp = httparse::Response::new(header_slots(limits, &mut stack, &mut heap));
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            Err(HeadError::HeadersTooLarge(limits.max_head))
        }
        Ok(httparse::Status::Complete(n)) => Ok(Some((
            ResponseHead {
                minor: resp.version.unwrap_or(1),
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or_default().to_string(),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
            },
            n,
        ))),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Err(HeadError::HeadersTooLarge(limits.max_head))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::HeadersTooLarge(limits.max_head)),
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

/// How a message body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// The framing of a request body. Both `Transfer-Encoding` and
/// `Content-Length`, or conflicting lengths, are refused: that ambiguity is
/// how request smuggling works (RFC 9112 §6.3).
pub fn request_framing(head: &RequestHead) -> Result<Framing, HeadError> {
    framing(&head.headers, false)
}

/// The framing of a response body, given the request method it answers.
pub fn response_framing(method: &str, head: &ResponseHead) -> Result<Framing, HeadError> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::None);
    }
    framing(&head.headers, true)
}

fn framing(headers: &[(String, Vec<u8>)], response: bool) -> Result<Framing, HeadError> {
    let te: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let mut length: Option<u64> = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 18 {
                return Err(HeadError::Malformed("bad Content-Length".into()));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| HeadError::Malformed("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
    }
    if !te.is_empty() {
        if length.is_some() {
            return Err(HeadError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        let last = te
            .last()
            .and_then(|v| v.split(|&b| b == b',').next_back())
            .map(|t| t.trim_ascii().to_ascii_lowercase())
            .unwrap_or_default();
        return match (last.as_slice(), response) {
            (b"chunked", _) => Ok(Framing::Chunked),
            (_, true) => Ok(Framing::UntilClose),
            _ => Err(HeadError::Malformed(
                "Transfer-Encoding must end in chunked".into(),
            )),
        };
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None if response => Framing::UntilClose,
        None => Framing::None,
    })
}

/// Incremental decoder of a chunked body (RFC 9112 §7.1).
///
/// Feed it bytes as they arrive; it appends the decoded data to `out` and
/// says how many input bytes it used. Chunk-size lines, extensions and
/// trailers are bounded, so a hostile peer cannot make it buffer forever.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: Chunk,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

const MAX_CHUNK_LINE: usize = 4096;

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last chunk and the trailer section were read.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decode from `input`, appending data to `out`; returns the bytes used.
    /// Stops at the end of the body (the rest of `input` is the next message).
    /// Bytes not used (an unfinished size line) must be fed again, with
    /// what arrives after them.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HeadError> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            match self.state {
                Chunk::Size | Chunk::Trailer => {
                    let Some(nl) = input[i..].iter().position(|&b| b == b'\n') else {
                        // An unfinished line is left unconsumed: the caller
                        // feeds it again with more bytes after it.
                        if input.len() - i > MAX_CHUNK_LINE {
                            return Err(HeadError::Malformed("chunk line too long".into()));
                        }
                        return Ok(i);
                    };
                    if nl > MAX_CHUNK_LINE {
                        return Err(HeadError::Malformed("chunk line too long".into()));
                    }
                    let line = &input[i..i + nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    i += nl + 1;
                    if self.state == Chunk::Trailer {
                        if line.is_empty() {
                            self.state = Chunk::Done;
                        }
                        continue;
                    }
                    let hex = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or(b"")
                        .trim_ascii();
                    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(HeadError::Malformed("bad chunk size".into()));
                    }
                    let size = u64::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16)
                        .map_err(|_| HeadError::Malformed("bad chunk size".into()))?;
                    self.state = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    let take = (input.len() - i).min(left.min(usize::MAX as u64) as usize);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.state = if take as u64 == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take as u64)
                    };
                }
                Chunk::DataEnd => {
                    // CRLF after the data; a bare LF is tolerated.
                    match input[i] {
                        b'\r' => i += 1,
                        b'\n' => {
                            i += 1;
                            self.state = Chunk::Size;
                        }
                        _ => {
                            return Err(HeadError::Malformed("chunk data overruns its size".into()))
                        }
                    }
                }
                Chunk::Done => {}
            }
        }
        Ok(i)
    }
}

/// httparse rejects `HTTP/2.0` as a syntax error; RFC 9110 wants 505 for a
/// well-formed version the server does not speak. The version of a request line: `Err` for one not served (2.0 and
/// up), `Ok(Some(i))` when the minor digit at `i` is above 1, `Ok(None)`
/// for 1.0 and 1.1 (and for anything httparse will refuse itself).
fn check_version(line: &[u8]) -> Result<Option<usize>, HeadError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line.iter().rposition(|&b| b == b' ').map_or(0, |p| p + 1);
    let v = &line[start..];
    let Some(num) = v.strip_prefix(b"HTTP/") else {
        return Ok(None);
    };
    let ok_shape =
        num.len() == 3 && num[1] == b'.' && num[0].is_ascii_digit() && num[2].is_ascii_digit();
    match (ok_shape, num.first(), num.get(2)) {
        (false, ..) => Ok(None),
        (true, Some(b'1'), Some(b'0' | b'1')) => Ok(None),
        (true, Some(b'1'), Some(_)) => Ok(Some(start + 7)),
        _ => Err(HeadError::Version(String::from_utf8_lossy(v).into_owned())),
    }
}

/// What is wrong with a request's `Host` (RFC 9112 §3.2): missing from an
/// HTTP/1.1 request, sent twice, or not `uri-host [":" port]`. A server
/// MUST answer such a request 400.
pub fn host_problem(head: &RequestHead) -> Option<&'static str> {
    let mut hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
    let Some((_, host)) = hosts.next() else {
        return (head.minor >= 1).then_some("an HTTP/1.1 request needs a Host header field");
    };
    if hosts.next().is_some() {
        return Some("a request has one Host header field, not several");
    }
    (!valid_host(host)).then_some("the Host header field is not a host name with an optional :port")
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2): a reg-name or IPv4 address, or
/// an IP literal in brackets; empty is allowed (a target with no authority).
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let lit = &rest[..end];
        if lit.is_empty()
            || !lit
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b))
        {
            return false;
        }
        match &rest[end + 1..] {
            [] => (&b""[..], None),
            [b':', port @ ..] => (&b""[..], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(p) => (&v[..p], Some(&v[p + 1..])),
            None => (v, None),
        }
    };
    // unreserved / pct-encoded / sub-delims
    let reg = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
    let bad_port = matches!(port, Some(p) if p.len() > 5 || !p.iter().all(u8::is_ascii_digit));
    host.iter().all(reg) && !bad_port
}

/// A body read by its framing (RFC 9112 §6–7), sans IO: a fixed length,
/// chunks, or everything up to the close. Every reader of HTTP bodies
/// (origin, proxy, the `http` tool, the capture decoder) goes through it,
/// so each cuts a message where the others do.
#[derive(Debug)]
pub struct BodyReader {
    state: BodyState,
    /// Body octets (decoded) taken so far.
    pub bytes: u64,
    scratch: Vec<u8>,
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl BodyReader {
    pub fn new(framing: Framing) -> BodyReader {
        let state = match framing {
            Framing::None | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        BodyReader {
            state,
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// Take body bytes from the front of `input`, appending the decoded
    /// data to `out`; returns how many bytes of `input` were used.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HeadError> {
        let before = out.len();
        let used = match &mut self.state {
            BodyState::Done => 0,
            BodyState::Length(left) => {
                let take = (input.len() as u64).min(*left) as usize;
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
                if *left == 0 {
                    self.state = BodyState::Done;
                }
                take
            }
            BodyState::Chunked(dec) => {
                let used = dec.feed(input, out)?;
                if dec.is_done() {
                    self.state = BodyState::Done;
                }
                used
            }
            BodyState::UntilClose => {
                out.extend_from_slice(input);
                input.len()
            }
        };
        self.bytes += (out.len() - before) as u64;
        Ok(used)
    }

    /// As `feed`, counting the data without keeping it.
    pub fn skip(&mut self, input: &[u8]) -> Result<usize, HeadError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let used = match self.state {
            // No copy where nothing is decoded.
            BodyState::Length(left) => {
                let take = (input.len() as u64).min(left);
                self.state = match left - take {
                    0 => BodyState::Done,
                    rest => BodyState::Length(rest),
                };
                self.bytes += take;
                take as usize
            }
            BodyState::UntilClose => {
                self.bytes += input.len() as u64;
                input.len()
            }
            _ => self.feed(input, &mut scratch)?,
        };
        self.scratch = scratch;
        Ok(used)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    /// `n` octets of the body were lost (a capture's gap): true when the
    /// framing survives it (a length not passed, a body read to the close).
    pub fn lost(&mut self, n: u64) -> bool {
        match &mut self.state {
            BodyState::Length(left) if *left >= n => {
                *left -= n;
                self.bytes += n;
                if *left == 0 {
                    self.state = BodyState::Done;
                }
                true
            }
            BodyState::UntilClose => {
                self.bytes += n;
                true
            }
            _ => false,
        }
    }

    /// Octets of a fixed-length body still to come.
    pub fn left(&self) -> Option<u64> {
        match self.state {
            BodyState::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The peer closed the connection: the end of a body read to the
    /// close, or an error for one cut short.
    pub fn at_close(&mut self) -> Result<(), HeadError> {
        match self.state {
            BodyState::Done => Ok(()),
            BodyState::UntilClose => {
                self.state = BodyState::Done;
                Ok(())
            }
            BodyState::Length(n) => Err(HeadError::Malformed(format!(
                "the connection closed {n} bytes before the body's end"
            ))),
            BodyState::Chunked(_) => Err(HeadError::Malformed(
                "the connection closed inside a chunked body".into(),
            )),
        }
    }
}

impl ResponseHead {
    /// Whether the connection stays open after this response (RFC 9112
    /// §9.3): not after `Connection: close`, and after an HTTP/1.0 one only
    /// with `Connection: keep-alive`. (A body read to the close closes it
    /// too: see [`Framing::UntilClose`].)
    pub fn keep_alive(&self) -> bool {
        let has = |tok: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .any(|(_, v)| has_token(v, tok))
        };
        if has("close") {
            return false;
        }
        self.minor >= 1 || has("keep-alive")
    }
}

/// A response's status line, `HTTP/1.1 200 OK` and its CRLF: a server
/// always answers with its own highest version (RFC 9110 §2.5).
pub fn put_status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let digits = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One header field line, `Name: value` and its CRLF.
pub fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for the status codes the lab servers send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head() {
        let raw = b"GET /index.html HTTP/1.1\r\nHost: origin\r\n\r\nrest";
        let (head, n) = parse_request_head(raw, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/index.html");
        assert_eq!(head.minor, 1);
        assert_eq!(head.header("HOST"), Some(&b"origin"[..]));
        assert_eq!(&raw[n..], b"rest");
        assert!(head.keep_alive());
    }

    #[test]
    fn partial_head_asks_for_more() {
        let raw = b"GET / HTTP/1.1\r\nHost: a";
        assert_eq!(parse_request_head(raw, &Limits::default()).unwrap(), None);
    }

    #[test]
    fn host_fields_once_and_well_formed() {
        let head = |hosts: &[&str], minor| RequestHead {
            method: "GET".into(),
            target: "/".into(),
            minor,
            headers: hosts
                .iter()
                .map(|h| ("Host".to_string(), h.as_bytes().to_vec()))
                .collect(),
        };
        for ok in [
            "a.lab",
            "a.lab:8080",
            "10.0.0.1:80",
            "[::1]:8080",
            "[fe80::1]",
            "",
        ] {
            assert_eq!(host_problem(&head(&[ok], 1)), None, "{ok}");
        }
        for bad in ["a b", "a.lab:80x", "a/b", "[::1", "a.lab:123456", "\"x\""] {
            assert!(host_problem(&head(&[bad], 1)).is_some(), "{bad}");
        }
        assert!(host_problem(&head(&["a", "b"], 1)).is_some());
        assert!(host_problem(&head(&[], 1)).is_some());
        assert_eq!(host_problem(&head(&[], 0)), None);
    }

    #[test]
    fn connection_semantics_follow_the_version() {
        let p = |raw: &[u8]| {
            parse_request_head(raw, &Limits::default())
                .unwrap()
                .unwrap()
                .0
        };
        assert!(!p(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(p(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!p(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        // Tokens in any Connection line, in any case, with spaces around.
        assert!(
            !p(b"GET / HTTP/1.1\r\nConnection: te\r\nConnection: x ,  CLOSE\r\n\r\n").keep_alive()
        );
        assert!(p(b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").keep_alive());
    }

    #[test]
    fn limits_map_to_their_statuses() {
        let l = Limits {
            max_request_line: 16,
            max_head: 64,
            max_headers: 2,
        };
        let long = b"GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
        assert_eq!(parse_request_head(long, &l).unwrap_err().status(), 414);
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(parse_request_head(many, &l).unwrap_err().status(), 431);
        // 1.2 … 1.9 are served as 1.1.
        let (h, n) = parse_request_head(b"GET / HTTP/1.7\r\nHost: a\r\n\r\n", &l)
            .unwrap()
            .unwrap();
        assert_eq!((h.minor, n), (1, 27));
        let v2 = b"GET / HTTP/2.0\r\n\r\n";
        assert_eq!(parse_request_head(v2, &l).unwrap_err().status(), 505);
        let bad = b"GET\x01/ HTTP/1.1\r\n\r\n";
        assert_eq!(parse_request_head(bad, &l).unwrap_err().status(), 400);
    }

    #[test]
    fn bodies_by_framing_in_any_split() {
        let chunked = b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nT: 1\r\n\r\nNEXT";
        for (framing, wire, body, rest) in [
            (
                Framing::Length(5),
                &b"abcdeNEXT"[..],
                &b"abcde"[..],
                &b"NEXT"[..],
            ),
            (Framing::Chunked, &chunked[..], &b"abcde"[..], &b"NEXT"[..]),
            (Framing::None, &b"NEXT"[..], &b""[..], &b"NEXT"[..]),
        ] {
            for cut in 0..=wire.len() {
                let (mut a, mut b) = (BodyReader::new(framing), BodyReader::new(framing));
                let (mut out, mut used_a, mut used_b) = (Vec::new(), 0, 0);
                let mut pending = Vec::new();
                for part in [&wire[..cut], &wire[cut..]] {
                    pending.extend_from_slice(part);
                    let u = a.feed(&pending[used_a..], &mut out).unwrap();
                    used_a += u;
                    used_b += b.skip(&wire[used_b..pending.len()]).unwrap();
                }
                assert!(a.is_done() && b.is_done(), "{framing:?} cut {cut}");
                assert_eq!(
                    (&out[..], &wire[used_a..]),
                    (body, rest),
                    "{framing:?} cut {cut}"
                );
                assert_eq!((used_b, b.bytes), (used_a, body.len() as u64));
            }
        }
        let mut r = BodyReader::new(Framing::Length(4));
        r.feed(b"ab", &mut Vec::new()).unwrap();
        assert_eq!(r.left(), Some(2));
        assert!(r.at_close().is_err());
        let mut r = BodyReader::new(Framing::UntilClose);
        r.feed(b"all", &mut Vec::new()).unwrap();
        assert!(r.at_close().is_ok() && r.is_done());
    }

    #[test]
    fn response_keep_alive_by_version_and_connection() {
        let head = |minor, conn: &[&str]| ResponseHead {
            minor,
            status: 200,
            reason: "OK".into(),
            headers: conn
                .iter()
                .map(|c| ("Connection".to_string(), c.as_bytes().to_vec()))
                .collect(),
        };
        assert!(head(1, &[]).keep_alive());
        assert!(!head(1, &["Close"]).keep_alive());
        assert!(!head(0, &[]).keep_alive());
        assert!(head(0, &["Keep-Alive"]).keep_alive());
        assert!(!head(0, &["keep-alive", "close"]).keep_alive());
        let mut out = Vec::new();
        put_status_line(&mut out, 404, "Not Found");
        put_field(&mut out, "A", b"b");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nA: b\r\n");
    }

    fn chunked_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HeadError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut used_total = 0;
        for piece in input.chunks(step) {
            pending.extend_from_slice(piece);
            let used = d.feed(&pending, &mut out)?;
            used_total += used;
            pending.drain(..used);
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "body not finished");
        Ok((out, used_total))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (out, used) = chunked_all(body, step).unwrap();
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.");
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
        assert!(chunked_all(b"zz\r\n", 10).is_err());
        assert!(chunked_all(b"2\r\nabc\r\n0\r\n\r\n", 10).is_err());
        let long = [b"1".repeat(5000), b"\r\n".to_vec()].concat();
        assert!(ChunkedDecoder::new().feed(&long, &mut Vec::new()).is_err());
    }

    #[test]
    fn framing_refuses_smuggling_shapes() {
        let req = |raw: &[u8]| {
            let (h, _) = parse_request_head(raw, &Limits::default())
                .unwrap()
                .unwrap();
            request_framing(&h)
        };
        assert_eq!(req(b"GET / HTTP/1.1\r\n\r\n"), Ok(Framing::None));
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            req(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert_eq!(req(bad).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn response_heads_and_their_bodies() {
        let raw = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n";
        let (h, n) = parse_response_head(raw, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.reason.as_str(), n),
            (304, "Not Modified", raw.len())
        );
        assert_eq!(response_framing("GET", &h), Ok(Framing::None));
        let raw = b"HTTP/1.0 200 OK\r\n\r\n";
        let (h, _) = parse_response_head(raw, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(response_framing("GET", &h), Ok(Framing::UntilClose));
        assert_eq!(response_framing("HEAD", &h), Ok(Framing::None));
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
    }
}
