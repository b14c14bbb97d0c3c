//! SMTP over a reassembled TCP connection: commands, replies, messages.
//!
//! Lines are cut and parsed by `applab_proto::smtp`, the grammar the mail
//! server uses. The client's lines after an accepted DATA (a 354 reply)
//! are the message, up to the line holding one dot; dot-stuffing is
//! undone and the message reported with its size and header lines. After
//! an accepted STARTTLS the rest is encrypted and not decoded.

use crate::event::{EventKind, Header};
use applab_proto::dot::DotReader;
use applab_proto::line::{Line, LineReader};
use applab_proto::smtp::{Command, ReplyReader, MAX_COMMAND_LINE, MAX_DATA_LINE, MAX_REPLY_LINE};

/// Most header lines reported per message.
const MAX_HEADERS: usize = 100;

#[derive(Default)]
pub struct SmtpFlow {
    client: LineReader,
    server: LineReader,
    replies: ReplyReader,
    /// Verbs of the commands whose replies are awaited, in order: with
    /// PIPELINING several are in flight, and each reply answers the oldest.
    awaiting: std::collections::VecDeque<String>,
    data: Option<DotReader>,
    /// DATA (or STARTTLS) was sent and its reply is not yet seen: what the
    /// client sends meanwhile (a hand-typed dialogue piped in at once) is
    /// a message or commands depending on that reply, so it waits.
    held: bool,
    /// The server's greeting was seen.
    greeted: bool,
    dead: bool,
}

fn malformed(reason: String, bytes: &[u8]) -> EventKind {
    crate::event::malformed("smtp", reason, bytes)
}

/// The header section of a message, unfolded.
fn headers(msg: &[u8]) -> Vec<Header> {
    applab_proto::message::fields(msg, MAX_HEADERS)
        .into_iter()
        .map(|f| (String::from_utf8_lossy(f.name).into_owned(), f.value_text()))
        .collect()
}

impl SmtpFlow {
    pub fn client_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.client.feed(data);
        self.drain_client(out);
    }

    fn drain_client(&mut self, out: &mut Vec<EventKind>) {
        while !self.held && !self.dead {
            // The server's limits, so a line is cut where the server cuts it.
            let max = if self.data.is_some() {
                MAX_DATA_LINE
            } else {
                MAX_COMMAND_LINE
            };
            let Some(line) = self.client.next_line(max) else {
                return;
            };
            let line = match line {
                Line::Complete(l) => l,
                // A text line too long: the server drops the message at its
                // end; a command too long it answers with 500.
                Line::TooLong if self.data.is_some() => continue,
                Line::TooLong => {
                    out.push(malformed(
                        format!("command line longer than {max} octets"),
                        b"",
                    ));
                    if self.awaiting.len() < 1000 {
                        self.awaiting.push_back(String::new());
                    }
                    continue;
                }
            };
            if let Some(d) = self.data.as_mut() {
                if d.line(&line) {
                    let msg = std::mem::take(&mut d.data);
                    self.data = None;
                    out.push(EventKind::SmtpMessage {
                        bytes: msg.len() as u64,
                        headers: headers(&msg),
                    });
                }
                continue;
            }
            let cmd = Command::parse(&line);
            if self.awaiting.len() < 1000 {
                self.awaiting.push_back(cmd.verb.clone());
            }
            if (cmd.verb == "DATA" || cmd.verb == "STARTTLS") && cmd.arg.trim().is_empty() {
                self.held = true;
            }
            out.push(EventKind::SmtpCommand {
                verb: cmd.verb,
                arg: cmd.arg,
            });
        }
    }

    pub fn server_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.server.feed(data);
        while let Some(line) = self.server.next_line(MAX_REPLY_LINE) {
            let Line::Complete(line) = line else {
                out.push(malformed("reply line too long".into(), b""));
                self.dead = true;
                return;
            };
            match self.replies.line(&line) {
                Ok(None) => {}
                Ok(Some(r)) => {
                    // The greeting answers no command.
                    let answers = if self.greeted {
                        self.awaiting.pop_front()
                    } else {
                        self.greeted = true;
                        None
                    };
                    if answers.as_deref() == Some("DATA") && r.code == 354 {
                        self.data = Some(DotReader::default());
                    }
                    let tls = answers.as_deref() == Some("STARTTLS") && r.code == 220;
                    out.push(EventKind::SmtpReply {
                        code: r.code,
                        lines: r.lines,
                    });
                    if tls {
                        // Encrypted from here on: nothing more to read.
                        self.dead = true;
                        return;
                    }
                    if matches!(answers.as_deref(), Some("DATA" | "STARTTLS")) && self.held {
                        // Its reply decides what the held client bytes are.
                        self.held = false;
                        self.drain_client(out);
                    }
                }
                Err(e) => {
                    out.push(malformed(e.to_string(), &line));
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// Bytes lost from the capture: the line structure is lost with them.
    pub fn gap(&mut self, n: u64, out: &mut Vec<EventKind>) {
        if !self.dead {
            out.push(crate::event::lost("smtp", n));
            self.dead = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_dialogue_with_pipelining_and_a_stuffed_message() {
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"220 mail.b.lab ESMTP\r\n", &mut out);
        f.client_data(b"EHLO ws.a.lab\r\n", &mut out);
        f.server_data(b"250-mail.b.lab\r\n250 PIPELINING\r\n", &mut out);
        f.client_data(
            b"MAIL FROM:<alice@a.lab>\r\nRCPT TO:<bob@b.lab>\r\nDATA\r\n",
            &mut out,
        );
        f.server_data(b"250 OK\r\n250 OK\r\n354 go ahead\r\n", &mut out);
        f.client_data(
            b"Subject: hi\r\nFrom: alice@a.lab\r\n\r\n..dot\r\nbare\nLF\r\n.\r\nQUIT\r\n",
            &mut out,
        );
        f.server_data(b"250 queued\r\n221 bye\r\n", &mut out);
        let kinds: Vec<String> = out
            .iter()
            .map(|e| match e {
                EventKind::SmtpCommand { verb, .. } => verb.clone(),
                EventKind::SmtpReply { code, .. } => code.to_string(),
                EventKind::SmtpMessage { bytes, headers } => {
                    format!("message {bytes} {}", headers[0].1)
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "220",
                "EHLO",
                "250",
                "MAIL FROM",
                "RCPT TO",
                "DATA",
                "250",
                "250",
                "354",
                // ".dot" unstuffed; the bare LF stays inside its line.
                "message 49 hi",
                "QUIT",
                "250",
                "221"
            ]
        );
    }

    #[test]
    fn a_dialogue_piped_in_at_once_waits_for_the_354() {
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"220 mail.a.lab\r\n", &mut out);
        // Everything before any reply, as `printf ... | tcp` sends it.
        f.client_data(
            b"HELO ws\r\nMAIL FROM:<a@a.lab>\r\nRCPT TO:<b@b.lab>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
            &mut out,
        );
        f.server_data(
            b"250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
            &mut out,
        );
        let verbs: Vec<String> = out
            .iter()
            .filter_map(|e| match e {
                EventKind::SmtpCommand { verb, .. } => Some(verb.clone()),
                EventKind::SmtpMessage { .. } => Some("message".into()),
                _ => None,
            })
            .collect();
        assert_eq!(
            verbs,
            ["HELO", "MAIL FROM", "RCPT TO", "DATA", "message", "QUIT"]
        );
        // A refused DATA: what follows is commands again.
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"220 x\r\n", &mut out);
        f.client_data(b"DATA\r\nNOOP\r\n", &mut out);
        f.server_data(b"503 no\r\n250 ok\r\n", &mut out);
        assert!(out
            .iter()
            .any(|e| matches!(e, EventKind::SmtpCommand { verb, .. } if verb == "NOOP")));
    }

    #[test]
    fn refused_data_and_starttls() {
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"220 mail.b.lab\r\n", &mut out);
        f.client_data(b"DATA\r\n", &mut out);
        f.server_data(b"503 need RCPT first\r\n", &mut out);
        f.client_data(b"QUIT\r\n", &mut out);
        assert!(matches!(&out[3], EventKind::SmtpCommand { verb, .. } if verb == "QUIT"));
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"220 mail.b.lab\r\n", &mut out);
        f.client_data(b"STARTTLS\r\n", &mut out);
        f.server_data(b"220 go\r\n\x16\x03\x01garbage", &mut out);
        f.client_data(b"\x16\x03\x01binary", &mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        let mut f = SmtpFlow::default();
        let mut out = Vec::new();
        f.server_data(b"HTTP/1.1 200 OK\r\n", &mut out);
        assert!(matches!(out[0], EventKind::Malformed { .. }));
    }
}
