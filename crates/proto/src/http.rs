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
    #[error("malformed request: {0}")]
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
        let conn = self
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        let has = |tok: &str| conn.split(',').any(|t| t.trim() == tok);
        if self.minor == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
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
        check_version(&buf[..n])?;
    }
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
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

/// httparse rejects `HTTP/2.0` as a syntax error; RFC 9110 wants 505 for a
/// well-formed version the server does not speak.
fn check_version(line: &[u8]) -> Result<(), HeadError> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    if let Some(v) = line.rsplit(' ').next() {
        if let Some(num) = v.strip_prefix("HTTP/") {
            let ok_shape = num.len() == 3
                && num.as_bytes()[1] == b'.'
                && num.as_bytes()[0].is_ascii_digit()
                && num.as_bytes()[2].is_ascii_digit();
            if ok_shape && num != "1.0" && num != "1.1" {
                return Err(HeadError::Version(v.to_string()));
            }
        }
    }
    Ok(())
}

/// The reason phrase for the status codes the lab servers send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
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
        let v2 = b"GET / HTTP/2.0\r\n\r\n";
        assert_eq!(parse_request_head(v2, &l).unwrap_err().status(), 505);
        let bad = b"GET\x01/ HTTP/1.1\r\n\r\n";
        assert_eq!(parse_request_head(bad, &l).unwrap_err().status(), 400);
    }
}
