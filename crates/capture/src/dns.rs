//! DNS messages (RFC 1035) over UDP and TCP, decoded with hickory-proto.
//!
//! Over UDP a datagram is one message; over TCP each message is preceded by
//! its length in two bytes (RFC 1035 §4.2.2), so a stream is cut into
//! messages first.

use crate::event::{seen, EventKind, Transport};
use hickory_proto::op::{Message, MessageType};

/// One DNS message as an event.
pub fn message(bytes: &[u8], transport: Transport) -> EventKind {
    let m = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => {
            return EventKind::Malformed {
                protocol: "dns".into(),
                reason: e.to_string(),
                seen: seen(bytes),
            }
        }
    };
    let (name, qtype) = m
        .queries
        .first()
        .map(|q| (q.name().to_string(), q.query_type().to_string()))
        .unwrap_or_default();
    let md = &m.metadata;
    match md.message_type {
        MessageType::Query => EventKind::DnsQuery {
            id: md.id,
            name,
            qtype,
            transport,
        },
        MessageType::Response => EventKind::DnsResponse {
            id: md.id,
            name,
            qtype,
            rcode: md.response_code.to_string(),
            authoritative: md.authoritative,
            truncated: md.truncation,
            answers: m.answers.iter().map(|r| r.to_string()).collect(),
            transport,
        },
    }
}

/// A DNS-over-TCP byte stream, one direction.
#[derive(Default)]
pub struct DnsStream {
    frames: applab_proto::dns_tcp::Deframer,
    dead: bool,
}

impl DnsStream {
    pub fn data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.frames.feed(data);
        while let Some(msg) = self.frames.next_message() {
            out.push(message(&msg, Transport::Tcp));
        }
    }

    /// Bytes lost: the message boundaries are lost with them.
    pub fn gap(&mut self, n: u64, out: &mut Vec<EventKind>) {
        if !self.dead {
            out.push(EventKind::Malformed {
                protocol: "dns".into(),
                reason: format!("{n} bytes missing from the capture"),
                seen: seen(self.frames.pending()),
            });
            self.dead = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    fn query_bytes(id: u16) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.add_query(Query::query(
            Name::from_ascii("mail.a.lab.").unwrap(),
            RecordType::MX,
        ));
        m.to_vec().unwrap()
    }

    #[test]
    fn udp_and_tcp_messages_decode() {
        let q = query_bytes(7);
        match message(&q, Transport::Udp) {
            EventKind::DnsQuery {
                id, name, qtype, ..
            } => {
                assert_eq!(
                    (id, name.as_str(), qtype.as_str()),
                    (7, "mail.a.lab.", "MX")
                )
            }
            other => panic!("{other:?}"),
        }
        let mut s = DnsStream::default();
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        framed.extend_from_slice(&framed.clone());
        let mut out = Vec::new();
        for b in framed.chunks(5) {
            s.data(b, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert!(matches!(
            message(b"\x00\x01zz", Transport::Udp),
            EventKind::Malformed { .. }
        ));
    }
}
