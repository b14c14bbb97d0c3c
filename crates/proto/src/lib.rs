//! Sans-IO codecs for the application-layer protocols the labs teach.
//!
//! Nothing here touches a socket: servers in `applab-node`, the capture
//! decoder and the checker all feed bytes in and get messages out, so the
//! grammar of each protocol lives in exactly one place.
//!
//! # Layout
//!
//! - `line`: CRLF lines with a length limit (SMTP, POP3, IMAP), one
//!   "too long" rule.
//! - `dot`: dot-stuffing (SMTP DATA, POP3 multi-line answers).
//! - `smtp`, `pop3`, `imap`: each protocol's commands and replies; `imap`
//!   also the receiver that puts commands together with their literals.
//! - `http`: message heads, body framing (`BodyReader`), keep-alive, head
//!   encoding; `conditional`: conditional GET; `caching`: the fields a
//!   cache reads, normalised.
//! - `dns_tcp`: DNS-over-TCP length framing.
//! - `sasl`: the PLAIN and LOGIN responses of SMTP AUTH and IMAP
//!   AUTHENTICATE.
//! - `message`: the RFC 5322 header section; `event`: the protocol events
//!   decoded from traffic.
//!
//! `docs/concepts.md` maps each lecture concept to its file.

pub mod caching;
pub mod conditional;
pub mod dns_tcp;
pub mod dot;
pub mod event;
pub mod http;
pub mod imap;
pub mod line;
pub mod message;
pub mod pop3;
pub mod sasl;
pub mod smtp;
