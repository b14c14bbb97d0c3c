//! Sans-IO codecs for the application-layer protocols the labs teach.
//!
//! Nothing here touches a socket: servers in `applab-node`, the capture
//! decoder and the checker all feed bytes in and get messages out, so the
//! grammar of each protocol lives in exactly one place.

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
pub mod smtp;
