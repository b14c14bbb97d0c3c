//! HTTP/1.x over a reassembled TCP connection: requests and responses.
//!
//! The heads are parsed by the same `applab_proto::http` code the origin
//! uses; bodies are framed the same way (Content-Length, chunked, or until
//! the server closes) and counted, not kept. Responses pair with requests
//! in order, which is how HTTP/1.1 pipelining works.

use crate::event::{seen, EventKind, Header};
use applab_proto::http::{self, BodyReader, Framing, Limits};
use std::collections::VecDeque;

/// Largest head the decoder buffers before calling the stream malformed.
const MAX_HEAD: usize = 64 * 1024;

struct Side {
    buf: Vec<u8>,
    /// The body being read; `None` while waiting for (more of) a head.
    body: Option<BodyReader>,
    /// The event waiting for its body to end.
    current: Option<EventKind>,
    dead: bool,
}

impl Side {
    fn new() -> Side {
        Side {
            buf: Vec::new(),
            body: None,
            current: None,
            dead: false,
        }
    }
}

/// One connection's HTTP decoder.
pub struct HttpFlow {
    req: Side,
    resp: Side,
    /// (method, target) of requests not yet answered.
    waiting: VecDeque<(String, String)>,
    requests: u32,
    responses: u32,
    limits: Limits,
}

impl Default for HttpFlow {
    fn default() -> Self {
        HttpFlow {
            req: Side::new(),
            resp: Side::new(),
            waiting: VecDeque::new(),
            requests: 0,
            responses: 0,
            limits: Limits {
                max_request_line: MAX_HEAD,
                max_head: MAX_HEAD,
                max_headers: 256,
            },
        }
    }
}

fn headers(h: &[(String, Vec<u8>)]) -> Vec<Header> {
    h.iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn malformed(side: &mut Side, reason: String, out: &mut Vec<EventKind>) {
    out.push(EventKind::Malformed {
        protocol: "http".into(),
        reason,
        seen: seen(&side.buf),
    });
    side.dead = true;
    side.buf.clear();
    side.current = None;
}

impl HttpFlow {
    /// Bytes from the client.
    pub fn client_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.req.dead {
            return;
        }
        self.req.buf.extend_from_slice(data);
        loop {
            if !self.body_progress(true, out) {
                return;
            }
            if self.req.body.is_some() {
                continue;
            }
            let skip = http::blank_lines_before_request(&self.req.buf);
            self.req.buf.drain(..skip);
            if self.req.buf.is_empty() {
                return;
            }
            match http::parse_request_head(&self.req.buf, &self.limits) {
                Ok(None) => return,
                Err(e) => return malformed(&mut self.req, e.to_string(), out),
                Ok(Some((head, n))) => {
                    self.req.buf.drain(..n);
                    let framing = match http::request_framing(&head) {
                        Ok(f) => f,
                        Err(e) => return malformed(&mut self.req, e.to_string(), out),
                    };
                    self.requests += 1;
                    self.waiting
                        .push_back((head.method.clone(), head.target.clone()));
                    self.req.current = Some(EventKind::HttpRequest {
                        host: head
                            .header("host")
                            .map(|h| String::from_utf8_lossy(h).into_owned()),
                        headers: headers(&head.headers),
                        method: head.method,
                        target: head.target,
                        version: format!("HTTP/1.{}", head.minor),
                        body_bytes: 0,
                        nth_on_connection: self.requests,
                    });
                    // A request is never read to the close (RFC 9112 §6.3).
                    self.req.body = Some(BodyReader::new(match framing {
                        Framing::UntilClose => Framing::None,
                        f => f,
                    }));
                }
            }
        }
    }

    /// Bytes from the server.
    pub fn server_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.resp.dead {
            return;
        }
        self.resp.buf.extend_from_slice(data);
        loop {
            if !self.body_progress(false, out) {
                return;
            }
            if self.resp.body.is_some() {
                continue;
            }
            if self.resp.buf.is_empty() {
                return;
            }
            match http::parse_response_head(&self.resp.buf, &self.limits) {
                Ok(None) => {
                    if self.resp.buf.len() >= 5 && !self.resp.buf.starts_with(b"HTTP/") {
                        return malformed(&mut self.resp, "not an HTTP response".into(), out);
                    }
                    return;
                }
                Err(e) => return malformed(&mut self.resp, e.to_string(), out),
                Ok(Some((head, n))) => {
                    self.resp.buf.drain(..n);
                    let interim = (100..200).contains(&head.status);
                    let (method, target) = match self.waiting.front() {
                        Some((m, t)) => (Some(m.clone()), Some(t.clone())),
                        None => (None, None),
                    };
                    if !interim {
                        self.waiting.pop_front();
                        self.responses += 1;
                    }
                    let framing = if interim {
                        Ok(Framing::None)
                    } else {
                        http::response_framing(method.as_deref().unwrap_or("GET"), &head)
                    };
                    let framing = match framing {
                        Ok(f) => f,
                        Err(e) => return malformed(&mut self.resp, e.to_string(), out),
                    };
                    self.resp.current = Some(EventKind::HttpResponse {
                        status: head.status,
                        reason: head.reason.clone(),
                        version: format!("HTTP/1.{}", head.minor),
                        headers: headers(&head.headers),
                        body_bytes: 0,
                        request_method: method,
                        request_target: target,
                        nth_on_connection: self.responses.max(1),
                    });
                    self.resp.body = Some(BodyReader::new(framing));
                }
            }
        }
    }

    /// Consume body bytes of the message in progress; emit it when it ends.
    /// False when more input is needed (or the side is dead).
    fn body_progress(&mut self, client: bool, out: &mut Vec<EventKind>) -> bool {
        let side = if client {
            &mut self.req
        } else {
            &mut self.resp
        };
        if side.dead {
            return false;
        }
        let Some(body) = side.body.as_mut() else {
            return true;
        };
        match body.skip(&side.buf) {
            Ok(used) => {
                side.buf.drain(..used);
            }
            Err(e) => {
                malformed(side, format!("body: {e}"), out);
                return false;
            }
        }
        if !body.is_done() {
            return false;
        }
        Self::finish(side, out);
        true
    }

    fn finish(side: &mut Side, out: &mut Vec<EventKind>) {
        let bytes = side.body.take().map_or(0, |b| b.bytes);
        if let Some(mut ev) = side.current.take() {
            match &mut ev {
                EventKind::HttpRequest { body_bytes, .. }
                | EventKind::HttpResponse { body_bytes, .. } => *body_bytes = bytes,
                _ => {}
            }
            out.push(ev);
        }
    }

    /// Bytes that were never captured, in one direction.
    pub fn gap(&mut self, client: bool, n: u64, out: &mut Vec<EventKind>) {
        let side = if client {
            &mut self.req
        } else {
            &mut self.resp
        };
        if side.dead {
            return;
        }
        let survives = side.buf.is_empty() && side.body.as_mut().is_some_and(|b| b.lost(n));
        if !survives {
            malformed(side, format!("{n} bytes missing from the capture"), out);
        }
    }

    /// The sender closed its direction.
    pub fn fin(&mut self, client: bool, out: &mut Vec<EventKind>) {
        let side = if client {
            &mut self.req
        } else {
            &mut self.resp
        };
        if side.dead {
            return;
        }
        match side.body.as_mut().map(BodyReader::at_close) {
            Some(Ok(())) => Self::finish(side, out),
            None if side.buf.is_empty() => {}
            _ => {
                let what = if client { "request" } else { "response" };
                malformed(side, format!("connection closed inside a {what}"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(out: &[EventKind]) -> Vec<String> {
        out.iter()
            .map(|e| match e {
                EventKind::HttpRequest {
                    method,
                    target,
                    body_bytes,
                    nth_on_connection,
                    ..
                } => format!("{method} {target} {body_bytes} #{nth_on_connection}"),
                EventKind::HttpResponse {
                    status,
                    body_bytes,
                    request_method,
                    ..
                } => format!(
                    "{status} {body_bytes} for {}",
                    request_method.clone().unwrap_or_default()
                ),
                EventKind::Malformed { reason, .. } => format!("malformed: {reason}"),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn pipelined_exchanges_pair_in_order_whatever_the_split() {
        let client = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a\r\n\r\nPOST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let server = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        for step in [1usize, 3, 1000] {
            let mut f = HttpFlow::default();
            let mut out = Vec::new();
            for c in client.chunks(step) {
                f.client_data(c, &mut out);
            }
            for c in server.chunks(step) {
                f.server_data(c, &mut out);
            }
            assert_eq!(
                kinds(&out),
                [
                    "GET / 0 #1",
                    "HEAD /x 0 #2",
                    "POST /f 3 #3",
                    "200 5 for GET",
                    "200 0 for HEAD",
                    "100 0 for POST",
                    "201 2 for POST"
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn close_delimited_and_malformed() {
        let mut f = HttpFlow::default();
        let mut out = Vec::new();
        f.client_data(b"GET / HTTP/1.0\r\n\r\n", &mut out);
        f.server_data(b"HTTP/1.0 200 OK\r\n\r\nbody until close", &mut out);
        f.fin(false, &mut out);
        assert_eq!(kinds(&out), ["GET / 0 #1", "200 16 for GET"]);
        let mut f = HttpFlow::default();
        let mut out = Vec::new();
        f.client_data(b"GET / HTTP/9.9\r\n\r\n", &mut out);
        f.client_data(b"GET / HTTP/1.1\r\n\r\n", &mut out);
        assert_eq!(
            kinds(&out),
            ["malformed: HTTP version not supported: HTTP/9.9"]
        );
        let mut out = Vec::new();
        let mut f = HttpFlow::default();
        f.server_data(b"SSH-2.0-OpenSSH\r\n", &mut out);
        assert_eq!(
            kinds(&out),
            ["malformed: malformed HTTP message: invalid HTTP version"]
        );
    }
}
