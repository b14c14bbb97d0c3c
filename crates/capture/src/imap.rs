//! IMAP over a reassembled TCP connection: tagged commands, the server's
//! untagged data and its tagged completions.
//!
//! Both sides may send literals: a line ending in `{n}` (or `{n+}`) is
//! followed by n raw octets, then the line goes on. The decoder skips the
//! literal's octets (counting them) instead of reading them as lines, so a
//! FETCHed message never looks like protocol. `DONE` ends an IDLE.

use crate::event::EventKind;
use applab_proto::imap::{crlf_line, literal_at_end};

/// Longest line we follow; literals are skipped, not buffered.
const MAX_LINE: usize = 64 << 10;
/// Text kept of a line for an event.
const SHOWN: usize = 200;

#[derive(Default)]
struct Side {
    buf: Vec<u8>,
    /// Octets of a literal still to skip.
    literal_left: usize,
    /// The logical line so far (pieces before literals) and literal octets.
    line: Vec<u8>,
    literal_bytes: u64,
}

impl Side {
    /// Feed bytes; complete logical lines (with their literal byte counts) come out.
    fn feed(&mut self, data: &[u8], out: &mut Vec<(Vec<u8>, u64)>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        loop {
            if self.literal_left > 0 {
                let n = self.literal_left.min(self.buf.len());
                self.buf.drain(..n);
                self.literal_left -= n;
                if self.literal_left > 0 {
                    return Ok(());
                }
            }
            let (n, used) = match crlf_line(&self.buf, MAX_LINE) {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            let piece: Vec<u8> = self.buf.drain(..used).take(n).collect();
            if let Some((lit, _)) = literal_at_end(&piece) {
                let cut = piece
                    .iter()
                    .rposition(|&b| b == b'{')
                    .unwrap_or(piece.len());
                if self.line.len() < SHOWN {
                    self.line.extend_from_slice(&piece[..cut]);
                    self.line
                        .extend_from_slice(format!("{{{lit} octets}}").as_bytes());
                }
                self.literal_left = lit;
                self.literal_bytes += lit as u64;
                continue;
            }
            if self.line.len() < SHOWN {
                self.line.extend_from_slice(&piece);
            }
            out.push((
                std::mem::take(&mut self.line),
                std::mem::take(&mut self.literal_bytes),
            ));
        }
    }
}

#[derive(Default)]
pub struct ImapFlow {
    client: Side,
    server: Side,
    dead: bool,
}

fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(SHOWN).collect()
}

fn malformed(reason: String, bytes: &[u8]) -> EventKind {
    crate::event::malformed("imap", reason, bytes)
}

impl ImapFlow {
    pub fn client_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        let mut lines = Vec::new();
        if let Err(e) = self.client.feed(data, &mut lines) {
            out.push(malformed(e, &self.client.buf));
            self.dead = true;
            return;
        }
        for (l, lit) in lines {
            let t = text(&l);
            if t.trim().eq_ignore_ascii_case("DONE") {
                out.push(EventKind::ImapCommand {
                    tag: String::new(),
                    name: "DONE".into(),
                    args: String::new(),
                    literal_bytes: 0,
                });
                continue;
            }
            let mut parts = t.splitn(3, ' ');
            let tag = parts.next().unwrap_or("").to_string();
            let mut name = parts.next().unwrap_or("").to_ascii_uppercase();
            let mut args = parts.next().unwrap_or("").to_string();
            if name == "UID" {
                // `UID FETCH`: one command name, as tshark shows it.
                let mut rest = args.splitn(2, ' ');
                name = format!("UID {}", rest.next().unwrap_or("").to_ascii_uppercase());
                args = rest.next().unwrap_or("").to_string();
            }
            out.push(EventKind::ImapCommand {
                tag,
                name,
                args,
                literal_bytes: lit,
            });
        }
    }

    pub fn server_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        let mut lines = Vec::new();
        if let Err(e) = self.server.feed(data, &mut lines) {
            out.push(malformed(e, &self.server.buf));
            self.dead = true;
            return;
        }
        for (l, lit) in lines {
            let t = text(&l);
            if let Some(rest) = t.strip_prefix("* ") {
                out.push(EventKind::ImapData {
                    text: rest.to_string(),
                    literal_bytes: lit,
                });
            } else if let Some(rest) = t.strip_prefix('+') {
                out.push(EventKind::ImapContinue {
                    text: rest.trim().to_string(),
                });
            } else {
                let mut parts = t.splitn(3, ' ');
                let tag = parts.next().unwrap_or("").to_string();
                let status = parts.next().unwrap_or("").to_ascii_uppercase();
                if !matches!(status.as_str(), "OK" | "NO" | "BAD") {
                    out.push(malformed("not an IMAP response line".into(), &l));
                    self.dead = true;
                    return;
                }
                out.push(EventKind::ImapResponse {
                    tag,
                    status,
                    text: parts.next().unwrap_or("").to_string(),
                });
            }
        }
    }

    pub fn gap(&mut self, n: u64, out: &mut Vec<EventKind>) {
        if !self.dead {
            out.push(crate::event::lost("imap", n));
            self.dead = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_literals_and_responses() {
        let mut f = ImapFlow::default();
        let mut out = Vec::new();
        f.server_data(b"* OK ready\r\n", &mut out);
        f.client_data(b"a LOGIN {3}\r\n", &mut out);
        f.server_data(b"+ go\r\n", &mut out);
        f.client_data(b"bob pw\r\nb UID FETCH 1 (BODY[])\r\n", &mut out);
        f.server_data(
            b"a OK done\r\n* 1 FETCH (UID 1 BODY[] {11}\r\na OK fake\r\n)\r\nb OK fetched\r\n",
            &mut out,
        );
        f.client_data(b"c IDLE\r\nDONE\r\n", &mut out);
        let s: Vec<String> = out
            .iter()
            .map(|e| match e {
                EventKind::ImapCommand {
                    tag,
                    name,
                    literal_bytes,
                    ..
                } => format!("C {tag} {name} {literal_bytes}"),
                EventKind::ImapResponse { tag, status, .. } => format!("S {tag} {status}"),
                EventKind::ImapData {
                    text,
                    literal_bytes,
                } => format!("* {text} {literal_bytes}"),
                EventKind::ImapContinue { .. } => "+".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            s,
            [
                "* OK ready 0",
                "+",
                "C a LOGIN 3",
                "C b UID FETCH 0",
                "S a OK",
                "* 1 FETCH (UID 1 BODY[] {11 octets}) 11",
                "S b OK",
                "C c IDLE 0",
                "C  DONE 0"
            ]
        );
    }
}
