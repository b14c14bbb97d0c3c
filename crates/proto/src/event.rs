//! Protocol events: what the capture decoders make of a student's traffic,
//! and what the checks read.
//!
//! Each event names its flow (a TCP connection or a UDP exchange), the two
//! endpoints, and the frame that completed it, so the panel can show the
//! packets behind a message and a check can say what it saw.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the Unix epoch, with microseconds.
    pub time: f64,
    /// The flow (per decoder, numbered from 1 in order of appearance).
    pub flow: u64,
    /// The frame (numbered from 1) whose bytes completed this event.
    pub frame: u64,
    /// The endpoint that opened the connection or sent the query.
    pub client: SocketAddr,
    pub server: SocketAddr,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A header line as seen (names keep their case; values are text, with
/// bytes that are not UTF-8 replaced).
pub type Header = (String, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A TCP connection's handshake was seen (the SYN from the client).
    TcpOpen,
    /// A TCP connection ended: both FINs, or a RST.
    TcpClose { reset: bool },
    HttpRequest {
        method: String,
        target: String,
        version: String,
        host: Option<String>,
        headers: Vec<Header>,
        body_bytes: u64,
        /// 1 for the first request on its connection; more means reused.
        nth_on_connection: u32,
    },
    HttpResponse {
        status: u16,
        reason: String,
        version: String,
        headers: Vec<Header>,
        body_bytes: u64,
        /// The request this answers (responses pair with requests in order).
        request_method: Option<String>,
        request_target: Option<String>,
        nth_on_connection: u32,
    },
    DnsQuery {
        id: u16,
        name: String,
        qtype: String,
        transport: Transport,
    },
    DnsResponse {
        id: u16,
        name: String,
        qtype: String,
        rcode: String,
        authoritative: bool,
        truncated: bool,
        answers: Vec<String>,
        transport: Transport,
    },
    /// A command line from an SMTP client (`MAIL FROM`, `RCPT TO`, ...).
    SmtpCommand { verb: String, arg: String },
    /// An SMTP reply, with the text of each of its lines.
    SmtpReply { code: u16, lines: Vec<String> },
    /// A message sent after DATA: its size (dot-stuffing undone) and header lines.
    SmtpMessage { bytes: u64, headers: Vec<Header> },
    /// A POP3 command (`USER`, `RETR 1`, ...).
    Pop3Command { verb: String, args: Vec<String> },
    /// A POP3 answer; a multi-line one (RETR, LIST, ...) with its line count
    /// and size once whole.
    Pop3Response {
        ok: bool,
        text: String,
        lines: Option<u64>,
        bytes: u64,
    },
    /// An IMAP command: its tag, name (`UID FETCH` is one name) and the
    /// rest of the line, literals shown by their size.
    ImapCommand {
        tag: String,
        name: String,
        args: String,
        literal_bytes: u64,
    },
    /// A tagged completion: OK, NO or BAD.
    ImapResponse {
        tag: String,
        status: String,
        text: String,
    },
    /// Untagged data (`* 3 EXISTS`, `* 1 FETCH (...)`), literals by size.
    ImapData { text: String, literal_bytes: u64 },
    /// A continuation request (`+ Ready for literal data`, `+ idling`).
    ImapContinue { text: String },
    /// Traffic of a known protocol that does not parse: what was seen.
    Malformed {
        protocol: String,
        reason: String,
        /// The first bytes of the offending data, lossily as text.
        seen: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl EventKind {
    /// Short name of the event's protocol, for filters.
    pub fn protocol(&self) -> &'static str {
        match self {
            EventKind::TcpOpen | EventKind::TcpClose { .. } => "tcp",
            EventKind::HttpRequest { .. } | EventKind::HttpResponse { .. } => "http",
            EventKind::DnsQuery { .. } | EventKind::DnsResponse { .. } => "dns",
            EventKind::SmtpCommand { .. }
            | EventKind::SmtpReply { .. }
            | EventKind::SmtpMessage { .. } => "smtp",
            EventKind::Pop3Command { .. } | EventKind::Pop3Response { .. } => "pop3",
            EventKind::ImapCommand { .. }
            | EventKind::ImapResponse { .. }
            | EventKind::ImapData { .. }
            | EventKind::ImapContinue { .. } => "imap",
            EventKind::Malformed { .. } => "malformed",
        }
    }

    /// A server saying no, as the lecture names it: HTTP 4xx/5xx, an SMTP
    /// 5xx (permanent; a 4xx asks to retry later), IMAP NO/BAD, POP3 -ERR,
    /// a DNS answer other than NOERROR, and traffic that does not parse.
    /// The short label is what the instructor's heat map counts by.
    pub fn error(&self) -> Option<String> {
        match self {
            EventKind::HttpResponse { status, .. } if *status >= 400 => {
                Some(format!("HTTP {status}"))
            }
            EventKind::SmtpReply { code, .. } if *code >= 500 => Some(format!("SMTP {code}")),
            EventKind::ImapResponse { status, .. }
                if status.eq_ignore_ascii_case("NO") || status.eq_ignore_ascii_case("BAD") =>
            {
                Some(format!("IMAP {}", status.to_ascii_uppercase()))
            }
            EventKind::Pop3Response { ok: false, .. } => Some("POP3 -ERR".into()),
            EventKind::DnsResponse { rcode, .. } if !rcode.eq_ignore_ascii_case("NOERROR") => {
                Some(format!("DNS {rcode}"))
            }
            EventKind::Malformed { protocol, .. } => Some(format!("malformed {protocol}")),
            _ => None,
        }
    }
}

/// A few bytes as text for a malformed event.
/// A malformed event of `protocol`: why, and the first bytes seen.
pub fn malformed(protocol: &str, reason: impl Into<String>, bytes: &[u8]) -> EventKind {
    EventKind::Malformed {
        protocol: protocol.into(),
        reason: reason.into(),
        seen: seen(bytes),
    }
}

/// Bytes lost from the capture: the protocol's line structure is lost too.
pub fn lost(protocol: &str, n: u64) -> EventKind {
    malformed(protocol, format!("{n} bytes missing from the capture"), b"")
}

pub fn seen(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned()
}

/// An event of one student's capture: numbered in the student's log, with
/// its network and the lab nodes at each end (by name, where known). This
/// is what the checks read and what their evidence points back to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// The event's number in the student's log (from 1, in order of
    /// decoding). Not `id`: a DNS message's own `id` sits beside it in JSON.
    pub seq: u64,
    pub network: String,
    pub client_node: Option<String>,
    pub server_node: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// The value of one field of an event, as the checks compare it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(std::borrow::Cow<'a, str>),
    Num(f64),
    Bool(bool),
    List(Vec<std::borrow::Cow<'a, str>>),
}

/// The fields every event has, whatever its type: its type name, its
/// protocol, the network it was seen on and the lab nodes at each end
/// (`client` opened the connection or sent the query).
pub const COMMON_FIELDS: &[&str] = &["type", "protocol", "network", "client", "server"];

/// The fields of each event type beyond [`COMMON_FIELDS`], by type name.
/// `header.NAME` (any name, case-insensitive) is a field of the types that
/// carry headers; it lists every value of that header.
pub const FIELDS: &[(&str, &[&str])] = &[
    ("tcp_open", &[]),
    ("tcp_close", &["reset"]),
    (
        "http_request",
        &[
            "method",
            "target",
            "version",
            "host",
            "body_bytes",
            "nth_on_connection",
            "header.",
        ],
    ),
    (
        "http_response",
        &[
            "status",
            "reason",
            "version",
            "body_bytes",
            "request_method",
            "request_target",
            "nth_on_connection",
            "header.",
        ],
    ),
    ("dns_query", &["id", "name", "qtype", "transport"]),
    (
        "dns_response",
        &[
            "id",
            "name",
            "qtype",
            "rcode",
            "authoritative",
            "truncated",
            "answers",
            "transport",
        ],
    ),
    ("smtp_command", &["verb", "arg"]),
    ("smtp_reply", &["code", "text"]),
    ("smtp_message", &["bytes", "header."]),
    ("pop3_command", &["verb", "args"]),
    ("pop3_response", &["ok", "text", "lines", "bytes"]),
    ("imap_command", &["tag", "name", "args", "literal_bytes"]),
    ("imap_response", &["tag", "status", "text"]),
    ("imap_data", &["text", "literal_bytes"]),
    ("imap_continue", &["text"]),
    ("malformed", &["reason", "seen"]),
];

/// Whether `field` names a field of events of type `ty` (any type: `None`).
pub fn is_field(ty: Option<&str>, field: &str) -> bool {
    if COMMON_FIELDS.contains(&field) {
        return true;
    }
    let has = |fields: &[&str]| {
        fields.iter().any(|f| {
            *f == field || (f.ends_with('.') && field.len() > f.len() && field.starts_with(f))
        })
    };
    FIELDS
        .iter()
        .filter(|(t, _)| ty.is_none_or(|ty| ty == *t))
        .any(|(_, f)| has(f))
}

/// Whether `ty` is an event type's name.
pub fn is_type(ty: &str) -> bool {
    FIELDS.iter().any(|(t, _)| *t == ty)
}

/// The event types that answer an earlier event (the `reply.` of a
/// request, a command or a query).
pub const ANSWER_TYPES: &[&str] = &[
    "http_response",
    "dns_response",
    "smtp_reply",
    "pop3_response",
    "imap_response",
];

/// Whether events of type `ty` answer an earlier event.
pub fn is_answer_type(ty: &str) -> bool {
    ANSWER_TYPES.contains(&ty)
}

impl EventKind {
    /// The event type's name, as in the JSON (`http_request`).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::TcpOpen => "tcp_open",
            EventKind::TcpClose { .. } => "tcp_close",
            EventKind::HttpRequest { .. } => "http_request",
            EventKind::HttpResponse { .. } => "http_response",
            EventKind::DnsQuery { .. } => "dns_query",
            EventKind::DnsResponse { .. } => "dns_response",
            EventKind::SmtpCommand { .. } => "smtp_command",
            EventKind::SmtpReply { .. } => "smtp_reply",
            EventKind::SmtpMessage { .. } => "smtp_message",
            EventKind::Pop3Command { .. } => "pop3_command",
            EventKind::Pop3Response { .. } => "pop3_response",
            EventKind::ImapCommand { .. } => "imap_command",
            EventKind::ImapResponse { .. } => "imap_response",
            EventKind::ImapData { .. } => "imap_data",
            EventKind::ImapContinue { .. } => "imap_continue",
            EventKind::Malformed { .. } => "malformed",
        }
    }

    /// Whether this event asks for an answer that a later event of the
    /// same flow gives (see [`NodeEvent::answers`]).
    pub fn asks(&self) -> bool {
        matches!(
            self,
            EventKind::HttpRequest { .. }
                | EventKind::DnsQuery { .. }
                | EventKind::SmtpCommand { .. }
                | EventKind::SmtpMessage { .. }
                | EventKind::Pop3Command { .. }
                | EventKind::ImapCommand { .. }
        )
    }
}

fn header_values<'a>(headers: &'a [Header], name: &str) -> Value<'a> {
    Value::List(
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| std::borrow::Cow::Borrowed(v.as_str()))
            .collect(),
    )
}

impl NodeEvent {
    /// One field by name (see [`FIELDS`]); `None` when the event has no
    /// such field or it is unset (a request without Host, a node not named).
    pub fn field(&self, name: &str) -> Option<Value<'_>> {
        use std::borrow::Cow::{Borrowed, Owned};
        fn s(v: &str) -> Option<Value<'_>> {
            Some(Value::Str(std::borrow::Cow::Borrowed(v)))
        }
        let n = |v: f64| Some(Value::Num(v));
        match name {
            "type" => return s(self.event.kind.type_name()),
            "protocol" => return s(self.event.kind.protocol()),
            "network" => return s(&self.network),
            "client" => return self.client_node.as_deref().and_then(s),
            "server" => return self.server_node.as_deref().and_then(s),
            _ => {}
        }
        let header = name.strip_prefix("header.");
        match &self.event.kind {
            EventKind::TcpOpen => None,
            EventKind::TcpClose { reset } => (name == "reset").then_some(Value::Bool(*reset)),
            EventKind::HttpRequest {
                method,
                target,
                version,
                host,
                headers,
                body_bytes,
                nth_on_connection,
            } => match name {
                "method" => s(method),
                "target" => s(target),
                "version" => s(version),
                "host" => host.as_deref().and_then(s),
                "body_bytes" => n(*body_bytes as f64),
                "nth_on_connection" => n(*nth_on_connection as f64),
                _ => header.map(|h| header_values(headers, h)),
            },
            EventKind::HttpResponse {
                status,
                reason,
                version,
                headers,
                body_bytes,
                request_method,
                request_target,
                nth_on_connection,
            } => match name {
                "status" => n(*status as f64),
                "reason" => s(reason),
                "version" => s(version),
                "body_bytes" => n(*body_bytes as f64),
                "request_method" => request_method.as_deref().and_then(s),
                "request_target" => request_target.as_deref().and_then(s),
                "nth_on_connection" => n(*nth_on_connection as f64),
                _ => header.map(|h| header_values(headers, h)),
            },
            EventKind::DnsQuery {
                id,
                name: qname,
                qtype,
                transport,
            } => match name {
                "id" => n(*id as f64),
                "name" => s(qname),
                "qtype" => s(qtype),
                "transport" => s(transport.name()),
                _ => None,
            },
            EventKind::DnsResponse {
                id,
                name: qname,
                qtype,
                rcode,
                authoritative,
                truncated,
                answers,
                transport,
            } => match name {
                "id" => n(*id as f64),
                "name" => s(qname),
                "qtype" => s(qtype),
                "rcode" => s(rcode),
                "authoritative" => Some(Value::Bool(*authoritative)),
                "truncated" => Some(Value::Bool(*truncated)),
                "answers" => Some(Value::List(
                    answers.iter().map(|a| Borrowed(a.as_str())).collect(),
                )),
                "transport" => s(transport.name()),
                _ => None,
            },
            EventKind::SmtpCommand { verb, arg } => match name {
                "verb" => s(verb),
                "arg" => s(arg),
                _ => None,
            },
            EventKind::SmtpReply { code, lines } => match name {
                "code" => n(*code as f64),
                "text" => Some(Value::Str(Owned(lines.join("\n")))),
                _ => None,
            },
            EventKind::SmtpMessage { bytes, headers } => match name {
                "bytes" => n(*bytes as f64),
                _ => header.map(|h| header_values(headers, h)),
            },
            EventKind::Pop3Command { verb, args } => match name {
                "verb" => s(verb),
                "args" => Some(Value::Str(Owned(args.join(" ")))),
                _ => None,
            },
            EventKind::Pop3Response {
                ok,
                text,
                lines,
                bytes,
            } => match name {
                "ok" => Some(Value::Bool(*ok)),
                "text" => s(text),
                "lines" => lines.map(|l| Value::Num(l as f64)),
                "bytes" => n(*bytes as f64),
                _ => None,
            },
            EventKind::ImapCommand {
                tag,
                name: cmd,
                args,
                literal_bytes,
            } => match name {
                "tag" => s(tag),
                "name" => s(cmd),
                "args" => s(args),
                "literal_bytes" => n(*literal_bytes as f64),
                _ => None,
            },
            EventKind::ImapResponse { tag, status, text } => match name {
                "tag" => s(tag),
                "status" => s(status),
                "text" => s(text),
                _ => None,
            },
            EventKind::ImapData {
                text,
                literal_bytes,
            } => match name {
                "text" => s(text),
                "literal_bytes" => n(*literal_bytes as f64),
                _ => None,
            },
            EventKind::ImapContinue { text } => {
                (name == "text").then(|| Value::Str(Borrowed(text)))
            }
            EventKind::Malformed { reason, seen, .. } => match name {
                "reason" => s(reason),
                "seen" => s(seen),
                _ => None,
            },
        }
    }

    /// The event as one short line, for a result's evidence and a ladder
    /// (`ws → origin GET /index.html HTTP/1.1`).
    pub fn line(&self) -> String {
        let who =
            |n: &Option<String>, a: &SocketAddr| n.clone().unwrap_or_else(|| a.ip().to_string());
        let (c, s) = (
            who(&self.client_node, &self.event.client),
            who(&self.server_node, &self.event.server),
        );
        let (from, to) = if self.event.kind.asks() || matches!(self.event.kind, EventKind::TcpOpen)
        {
            (c, s)
        } else {
            (s, c)
        };
        let what = self.message();
        let mut out = format!("{from} → {to} {what}");
        if out.len() > 200 {
            let mut cut = 197;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out
    }

    /// The message alone, without who sent it to whom (a ladder's arrow
    /// label); passwords masked as in [`NodeEvent::line`].
    pub fn message(&self) -> String {
        match &self.event.kind {
            EventKind::TcpOpen => "TCP connection opened (SYN)".to_string(),
            EventKind::TcpClose { reset } => {
                if *reset {
                    "TCP connection reset".into()
                } else {
                    "TCP connection closed".into()
                }
            }
            EventKind::HttpRequest {
                method,
                target,
                version,
                ..
            } => format!("{method} {target} {version}"),
            EventKind::HttpResponse {
                status,
                reason,
                body_bytes,
                ..
            } => {
                format!("{status} {reason} ({body_bytes} bytes of body)")
            }
            EventKind::DnsQuery {
                name,
                qtype,
                transport,
                ..
            } => {
                format!("DNS query {name} {qtype} over {}", transport.name())
            }
            EventKind::DnsResponse {
                name,
                qtype,
                rcode,
                answers,
                ..
            } => {
                format!(
                    "DNS answer {name} {qtype}: {rcode}, {} record(s)",
                    answers.len()
                )
            }
            EventKind::SmtpCommand { verb, arg } => {
                if arg.is_empty() {
                    verb.clone()
                } else {
                    format!(
                        "{verb}{}{arg}",
                        if verb.ends_with("FROM") || verb.ends_with(" TO") {
                            ":"
                        } else {
                            " "
                        }
                    )
                }
            }
            EventKind::SmtpReply { code, lines } => {
                format!("{code} {}", lines.first().map(String::as_str).unwrap_or(""))
            }
            EventKind::SmtpMessage { bytes, headers } => {
                let subject = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("subject"))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                format!("message of {bytes} bytes, Subject: {subject}")
            }
            EventKind::Pop3Command { verb, args } => {
                // A password is not repeated on a page.
                if verb.eq_ignore_ascii_case("PASS") {
                    "PASS ****".into()
                } else {
                    format!("{verb} {}", args.join(" ")).trim_end().to_string()
                }
            }
            EventKind::Pop3Response { ok, text, .. } => {
                format!("{} {text}", if *ok { "+OK" } else { "-ERR" })
            }
            // A password is not repeated on a page.
            EventKind::ImapCommand {
                tag, name, args, ..
            } if name.eq_ignore_ascii_case("LOGIN") => {
                let user = args.split_whitespace().next().unwrap_or("");
                format!("{tag} {name} {user} ****")
            }
            EventKind::ImapCommand {
                tag, name, args, ..
            } => format!("{tag} {name} {args}").trim_end().to_string(),
            EventKind::ImapResponse { tag, status, text } => format!("{tag} {status} {text}"),
            EventKind::ImapData { text, .. } => format!("* {text}"),
            EventKind::ImapContinue { text } => format!("+ {text}"),
            EventKind::Malformed {
                protocol, reason, ..
            } => format!("malformed {protocol}: {reason}"),
        }
    }
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_as_the_lecture_names_them() {
        let http = |status| EventKind::HttpResponse {
            status,
            reason: String::new(),
            version: "HTTP/1.1".into(),
            headers: Vec::new(),
            body_bytes: 0,
            request_method: None,
            request_target: None,
            nth_on_connection: 1,
        };
        assert_eq!(http(404).error().as_deref(), Some("HTTP 404"));
        assert_eq!(http(304).error(), None);
        let smtp = |code| EventKind::SmtpReply {
            code,
            lines: Vec::new(),
        };
        assert_eq!(smtp(550).error().as_deref(), Some("SMTP 550"));
        assert_eq!(smtp(451).error(), None, "a 4xx asks to retry: not an error");
        let imap = |s: &str| EventKind::ImapResponse {
            tag: "a1".into(),
            status: s.into(),
            text: String::new(),
        };
        assert_eq!(imap("no").error().as_deref(), Some("IMAP NO"));
        assert_eq!(imap("BAD").error().as_deref(), Some("IMAP BAD"));
        assert_eq!(imap("OK").error(), None);
        let pop = EventKind::Pop3Response {
            ok: false,
            text: String::new(),
            lines: None,
            bytes: 0,
        };
        assert_eq!(pop.error().as_deref(), Some("POP3 -ERR"));
    }

    /// Every kind, inside a logged event, goes to JSON and back whole: a
    /// kind's field must not share a name with the fields around it
    /// (`seq`, `time`, `flow`, `client`, ...), or the API's readers refuse
    /// the page ("duplicate field").
    #[test]
    fn every_kind_round_trips_as_a_logged_event() {
        let kinds = vec![
            EventKind::TcpOpen,
            EventKind::TcpClose { reset: true },
            EventKind::HttpRequest {
                method: "GET".into(),
                target: "/".into(),
                version: "HTTP/1.1".into(),
                host: Some("www.news.lab".into()),
                headers: vec![("Host".into(), "www.news.lab".into())],
                body_bytes: 0,
                nth_on_connection: 1,
            },
            EventKind::HttpResponse {
                status: 200,
                reason: "OK".into(),
                version: "HTTP/1.1".into(),
                headers: Vec::new(),
                body_bytes: 5,
                request_method: Some("GET".into()),
                request_target: Some("/".into()),
                nth_on_connection: 1,
            },
            EventKind::DnsQuery {
                id: 7,
                name: "mx.b.lab".into(),
                qtype: "MX".into(),
                transport: Transport::Udp,
            },
            EventKind::DnsResponse {
                id: 7,
                name: "mx.b.lab".into(),
                qtype: "MX".into(),
                rcode: "NOERROR".into(),
                authoritative: true,
                truncated: false,
                answers: vec!["10 mail.b.lab".into()],
                transport: Transport::Tcp,
            },
            EventKind::SmtpCommand {
                verb: "MAIL".into(),
                arg: "FROM:<a@a.lab>".into(),
            },
            EventKind::SmtpReply {
                code: 250,
                lines: vec!["OK".into()],
            },
            EventKind::SmtpMessage {
                bytes: 10,
                headers: Vec::new(),
            },
            EventKind::Pop3Command {
                verb: "RETR".into(),
                args: vec!["1".into()],
            },
            EventKind::Pop3Response {
                ok: true,
                text: "".into(),
                lines: Some(3),
                bytes: 20,
            },
            EventKind::ImapCommand {
                tag: "a1".into(),
                name: "UID FETCH".into(),
                args: "1:* FLAGS".into(),
                literal_bytes: 0,
            },
            EventKind::ImapResponse {
                tag: "a1".into(),
                status: "OK".into(),
                text: "done".into(),
            },
            EventKind::ImapData {
                text: "3 EXISTS".into(),
                literal_bytes: 0,
            },
            EventKind::ImapContinue {
                text: "idling".into(),
            },
            EventKind::Malformed {
                protocol: "http".into(),
                reason: "bad request line".into(),
                seen: "\u{0}GET".into(),
            },
        ];
        // Every type the checks know is here (a new kind joins this list).
        let mut named: Vec<&str> = kinds.iter().map(|k| k.type_name()).collect();
        let mut known: Vec<&str> = FIELDS.iter().map(|(t, _)| *t).collect();
        named.sort_unstable();
        known.sort_unstable();
        assert_eq!(named, known);
        for (n, kind) in kinds.into_iter().enumerate() {
            let e = NodeEvent {
                seq: n as u64 + 1,
                network: "net".into(),
                client_node: Some("ws".into()),
                server_node: None,
                event: Event {
                    time: 1_700_000_000.25,
                    flow: 3,
                    frame: 9,
                    client: "10.0.0.5:40000".parse().unwrap(),
                    server: "10.0.0.2:53".parse().unwrap(),
                    kind,
                },
            };
            let json = serde_json::to_string(&e).unwrap();
            let back: NodeEvent = serde_json::from_str(&json)
                .unwrap_or_else(|err| panic!("{}: {err}: {json}", e.event.kind.type_name()));
            assert_eq!(back, e, "{json}");
        }
    }
}
