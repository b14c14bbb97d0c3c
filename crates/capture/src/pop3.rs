//! POP3 over a reassembled TCP connection: commands and responses.
//!
//! Lines are cut and parsed by `applab_proto::pop3`, the grammar the mail
//! server uses. Each `+OK`/`-ERR` line answers the oldest command still
//! waiting (clients may pipeline, RFC 2449); a positive answer to RETR, TOP,
//! CAPA, or LIST and UIDL without an argument goes on until a lone dot, and
//! is reported once whole, with its line count and size (byte-stuffing
//! undone). The greeting answers no command.

use crate::event::EventKind;
use applab_proto::dot::DotReader;
use applab_proto::line::{Line, LineReader};
use applab_proto::pop3::{parse_status, Command, MAX_COMMAND_LINE, MAX_RESPONSE_LINE};
use std::collections::VecDeque;

#[derive(Default)]
pub struct Pop3Flow {
    client: LineReader,
    server: LineReader,
    awaiting: VecDeque<Command>,
    greeted: bool,
    /// A multi-line answer being read: its status text and lines so far.
    multi: Option<(String, DotReader)>,
    dead: bool,
}

fn malformed(reason: String, bytes: &[u8]) -> EventKind {
    crate::event::malformed("pop3", reason, bytes)
}

impl Pop3Flow {
    pub fn client_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.client.feed(data);
        while let Some(line) = self.client.next_line(MAX_COMMAND_LINE) {
            let cmd = match line {
                Line::Complete(l) => Command::parse(&l),
                Line::TooLong => {
                    // The server refuses it with -ERR, as one command.
                    out.push(malformed(
                        format!("command line longer than {MAX_COMMAND_LINE} octets"),
                        b"",
                    ));
                    Command::parse(b"")
                }
            };
            if !cmd.verb.is_empty() {
                out.push(EventKind::Pop3Command {
                    verb: cmd.verb.clone(),
                    args: cmd.args.clone(),
                });
            }
            if self.awaiting.len() < 1000 {
                self.awaiting.push_back(cmd);
            }
        }
    }

    pub fn server_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.server.feed(data);
        while let Some(line) = self.server.next_line(MAX_RESPONSE_LINE) {
            let line = match line {
                Line::Complete(l) => l,
                // A text line longer than a status line may be (a message
                // line of RETR): counted, its bytes not followed.
                Line::TooLong if self.multi.is_some() => b"x".to_vec(),
                Line::TooLong => {
                    out.push(malformed("response line too long".into(), b""));
                    self.dead = true;
                    return;
                }
            };
            if let Some((_, m)) = self.multi.as_mut() {
                if m.line(&line) {
                    let (text, m) = self.multi.take().expect("reading a multi-line answer");
                    out.push(EventKind::Pop3Response {
                        ok: true,
                        text,
                        lines: Some(m.lines as u64),
                        bytes: m.data.len() as u64,
                    });
                }
                continue;
            }
            let Some(status) = parse_status(&line) else {
                out.push(malformed("not a +OK or -ERR line".into(), &line));
                self.dead = true;
                return;
            };
            let answers = if self.greeted {
                self.awaiting.pop_front()
            } else {
                self.greeted = true;
                None
            };
            if status.ok && answers.as_ref().is_some_and(Command::multiline_answer) {
                self.multi = Some((status.text, DotReader::default()));
                continue;
            }
            out.push(EventKind::Pop3Response {
                ok: status.ok,
                text: status.text,
                lines: None,
                bytes: 0,
            });
        }
    }

    pub fn gap(&mut self, n: u64, out: &mut Vec<EventKind>) {
        if !self.dead {
            out.push(crate::event::lost("pop3", n));
            self.dead = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_with_pipelined_and_multiline_answers() {
        let mut f = Pop3Flow::default();
        let mut out = Vec::new();
        f.server_data(b"+OK ready\r\n", &mut out);
        f.client_data(b"USER bob\r\nPASS pw\r\n", &mut out);
        f.server_data(b"+OK\r\n+OK 2 messages\r\n", &mut out);
        f.client_data(b"LIST\r\nRETR 1\r\nLIST 9\r\nDELE 1\r\nQUIT\r\n", &mut out);
        f.server_data(b"+OK 2 messages\r\n1 20\r\n2 30\r\n.\r\n+OK 20 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n", &mut out);
        f.server_data(
            b"-ERR no such message\r\n+OK deleted\r\n+OK bye\r\n",
            &mut out,
        );
        let seen: Vec<String> = out
            .iter()
            .map(|e| match e {
                EventKind::Pop3Command { verb, .. } => verb.clone(),
                EventKind::Pop3Response {
                    ok, lines, bytes, ..
                } => {
                    format!("{} {lines:?} {bytes}", if *ok { "+OK" } else { "-ERR" })
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                "+OK None 0",
                "USER",
                "PASS",
                "+OK None 0",
                "+OK None 0",
                "LIST",
                "RETR",
                "LIST",
                "DELE",
                "QUIT",
                "+OK Some(2) 12",
                "+OK Some(3) 20",
                "-ERR None 0",
                "+OK None 0",
                "+OK None 0"
            ]
        );
    }

    #[test]
    fn not_pop3_is_malformed() {
        let mut f = Pop3Flow::default();
        let mut out = Vec::new();
        f.server_data(b"220 smtp here\r\n", &mut out);
        assert!(matches!(out[0], EventKind::Malformed { .. }));
    }
}
