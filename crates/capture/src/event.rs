//! Protocol events: what the decoders make of a student's traffic.
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
