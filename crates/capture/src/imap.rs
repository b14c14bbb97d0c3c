//! IMAP over a reassembled TCP connection: tagged commands, the server's
//! untagged data and its tagged completions.
//!
//! Both sides may send literals: a line ending in `{n}` (or `{n+}`) is
//! followed by n raw octets, then the line goes on. The decoder skips the
//! literal's octets (counting them) instead of reading them as lines, so a
//! FETCHed message never looks like protocol. `DONE` ends an IDLE.

use crate::event::EventKind;
use applab_proto::imap::{literal_at_end, Piece, Received, Receiver, ReceiverLimits};
use applab_proto::line::LineReader;

/// Text kept of a line for an event.
const SHOWN: usize = 200;

/// One direction: lines in, logical lines out (literals skipped, counted).
struct Side {
    lines: LineReader,
    rx: Receiver,
}

impl Default for Side {
    fn default() -> Side {
        Side {
            lines: LineReader::new(),
            rx: Receiver::new(ReceiverLimits::DECODER),
        }
    }
}

impl Side {
    /// Feed bytes; complete logical lines (with their literal byte counts)
    /// come out, `None` for a line too long to follow.
    fn feed(&mut self, data: &[u8]) -> Vec<Option<(Vec<u8>, u64)>> {
        self.lines.feed(data);
        let mut out = Vec::new();
        while let Some(r) = self.rx.next(&mut self.lines) {
            match r {
                Received::Whole(a) => out.push(Some((shown(&a.pieces), a.literal_octets))),
                Received::Continue => {}
                Received::TooLong | Received::Desync => out.push(None),
            }
        }
        out
    }
}

/// A logical line as shown: its line pieces, each literal as `{n octets}`.
fn shown(pieces: &[Piece]) -> Vec<u8> {
    let mut line = Vec::new();
    for p in pieces {
        let Piece::Line(l) = p else { continue };
        if line.len() >= SHOWN {
            break;
        }
        match literal_at_end(l) {
            Some((n, _)) => {
                let cut = l.iter().rposition(|&b| b == b'{').unwrap_or(l.len());
                line.extend_from_slice(&l[..cut]);
                line.extend_from_slice(format!("{{{n} octets}}").as_bytes());
            }
            None => line.extend_from_slice(l),
        }
    }
    line
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
        for line in self.client.feed(data) {
            let Some((l, lit)) = line else {
                // The server answers `* BAD` and reads on: so does the decoder.
                out.push(malformed("line too long".into(), b""));
                continue;
            };
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
        for line in self.server.feed(data) {
            let Some((l, lit)) = line else {
                out.push(malformed("line too long".into(), b""));
                self.dead = true;
                return;
            };
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
    fn a_response_literal_split_anywhere_is_skipped_whole() {
        let wire = b"* 1 FETCH (UID 7 BODY[] {12}\r\nab\r\n\r\n* BAD x)\r\nb OK done\r\n";
        for cut in 0..=wire.len() {
            let mut f = ImapFlow::default();
            let mut out = Vec::new();
            f.server_data(b"* OK hi\r\n", &mut out);
            f.server_data(&wire[..cut], &mut out);
            f.server_data(&wire[cut..], &mut out);
            let kinds: Vec<String> = out
                .iter()
                .map(|e| match e {
                    EventKind::ImapData { literal_bytes, .. } => format!("* {literal_bytes}"),
                    EventKind::ImapResponse { tag, .. } => format!("S {tag}"),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(kinds, ["* 0", "* 12", "S b"], "cut {cut}");
        }
    }

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
