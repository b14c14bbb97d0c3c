//! SMTP over a reassembled TCP connection: commands, replies, messages.
//!
//! Lines are cut and parsed by `applab_proto::smtp`, the grammar the mail
//! server uses. The client's lines after an accepted DATA (a 354 reply)
//! are the message, up to the line holding one dot; dot-stuffing is
//! undone and the message reported with its size and header lines. After
//! an accepted STARTTLS the rest is encrypted and not decoded.

use crate::event::{seen, EventKind, Header};
use applab_proto::smtp::{
    crlf_line, Command, DataReader, ReplyReader, MAX_COMMAND_LINE, MAX_REPLY_LINE, MAX_TEXT_LINE,
};

/// Most header lines reported per message.
const MAX_HEADERS: usize = 100;

#[derive(Default)]
pub struct SmtpFlow {
    client: Vec<u8>,
    server: Vec<u8>,
    replies: ReplyReader,
    /// Verbs of the commands whose replies are awaited, in order: with
    /// PIPELINING several are in flight, and each reply answers the oldest.
    awaiting: std::collections::VecDeque<String>,
    data: Option<DataReader>,
    /// The server's greeting was seen.
    greeted: bool,
    dead: bool,
}

fn malformed(reason: String, bytes: &[u8]) -> EventKind {
    EventKind::Malformed {
        protocol: "smtp".into(),
        reason,
        seen: seen(bytes),
    }
}

/// The header section of a message, unfolded.
fn headers(msg: &[u8]) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::new();
    for line in msg.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        if out.len() >= MAX_HEADERS {
            break;
        }
        if let Some((k, v)) = text.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

impl SmtpFlow {
    pub fn client_data(&mut self, data: &[u8], out: &mut Vec<EventKind>) {
        if self.dead {
            return;
        }
        self.client.extend_from_slice(data);
        loop {
            let max = if self.data.is_some() {
                MAX_TEXT_LINE
            } else {
                MAX_COMMAND_LINE
            };
            let (n, used) = match crlf_line(&self.client, max) {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => {
                    out.push(malformed(e.to_string(), &self.client));
                    self.dead = true;
                    return;
                }
            };
            let line = self.client[..n].to_vec();
            self.client.drain(..used);
            if let Some(d) = self.data.as_mut() {
                if d.line(&line) {
                    let msg = std::mem::take(&mut d.message);
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
        self.server.extend_from_slice(data);
        loop {
            let (n, used) = match crlf_line(&self.server, MAX_REPLY_LINE) {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => {
                    out.push(malformed(e.to_string(), &self.server));
                    self.dead = true;
                    return;
                }
            };
            let line = self.server[..n].to_vec();
            self.server.drain(..used);
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
                        self.data = Some(DataReader::default());
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
            out.push(malformed(
                format!("{n} bytes missing from the capture"),
                b"",
            ));
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
