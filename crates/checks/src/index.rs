//! Which event answers which, worked out once per evaluation: an HTTP
//! response pairs with its request by its place on the connection, an IMAP
//! completion with its command by tag, a DNS answer with its query by id,
//! SMTP and POP3 replies with their commands in order (the first reply on
//! a connection is the greeting, and answers nothing).

use applab_proto::event::{EventKind, NodeEvent};
use std::collections::{HashMap, VecDeque};

pub struct Index {
    /// For each event, the index of the event that answers it.
    reply: Vec<Option<u32>>,
}

#[derive(Default)]
struct Flow {
    http: HashMap<u32, u32>,
    imap: HashMap<String, u32>,
    dns: HashMap<u16, u32>,
    /// SMTP commands and messages, POP3 commands, waiting for their reply.
    fifo: VecDeque<u32>,
    /// The server's first reply (its greeting) was seen. A client that
    /// types ahead has its commands decoded before the greeting, so the
    /// greeting is told apart by being first, not by an empty queue.
    greeted: bool,
}

impl Index {
    pub fn new(events: &[NodeEvent]) -> Index {
        let mut reply = vec![None; events.len()];
        let mut flows: HashMap<(&str, u64), Flow> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let i = i as u32;
            let f = flows.entry((e.network.as_str(), e.event.flow)).or_default();
            match &e.event.kind {
                EventKind::HttpRequest {
                    nth_on_connection, ..
                } => {
                    f.http.insert(*nth_on_connection, i);
                }
                EventKind::HttpResponse {
                    nth_on_connection, ..
                } => {
                    if let Some(q) = f.http.remove(nth_on_connection) {
                        reply[q as usize] = Some(i);
                    }
                }
                EventKind::ImapCommand { tag, .. } => {
                    f.imap.insert(tag.clone(), i);
                }
                EventKind::ImapResponse { tag, .. } => {
                    if let Some(q) = f.imap.remove(tag) {
                        reply[q as usize] = Some(i);
                    }
                }
                EventKind::DnsQuery { id, .. } => {
                    f.dns.insert(*id, i);
                }
                EventKind::DnsResponse { id, .. } => {
                    if let Some(q) = f.dns.remove(id) {
                        reply[q as usize] = Some(i);
                    }
                }
                EventKind::SmtpCommand { .. }
                | EventKind::SmtpMessage { .. }
                | EventKind::Pop3Command { .. } => f.fifo.push_back(i),
                EventKind::SmtpReply { .. } | EventKind::Pop3Response { .. } => {
                    if !f.greeted {
                        f.greeted = true;
                    } else if let Some(q) = f.fifo.pop_front() {
                        reply[q as usize] = Some(i);
                    }
                }
                _ => {}
            }
        }
        Index { reply }
    }

    /// The event that answers event `i`, if one was seen.
    pub fn reply(&self, i: usize) -> Option<usize> {
        self.reply.get(i).copied().flatten().map(|r| r as usize)
    }
}
