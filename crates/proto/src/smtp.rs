//! SMTP (RFC 5321) command lines and replies, sans IO.
//!
//! A client sends one command per line (`MAIL FROM:<alice@a.lab>`), ended
//! by CRLF; the server answers with a three-digit reply code, on one line
//! (`250 OK`) or several (`250-first` … `250 last`). After `DATA` and a 354
//! reply the client sends the message, ended by a line holding a single
//! dot; a line that begins with a dot has one more dot put in front of it
//! (dot-stuffing), which the receiver removes. Only CRLF ends a line here:
//! a bare LF inside a line is kept as data, never taken as an end — taking
//! it as one is the "SMTP smuggling" hole.

use thiserror::Error;

/// Longest command line (RFC 5321 §4.5.3.1.4: 512 octets with CRLF).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest reply line (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;
/// Longest text line of a message (RFC 5321 §4.5.3.1.6: 1000 with CRLF).
pub const MAX_TEXT_LINE: usize = 1000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SmtpError {
    #[error("line longer than {0} octets")]
    LineTooLong(usize),
    #[error("malformed reply: {0}")]
    BadReply(String),
}

/// Find the end of a CRLF-terminated line in `buf`: the line's length
/// (without CRLF) and the bytes it takes with CRLF.
pub fn crlf_line(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, SmtpError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n + 2 > max => Err(SmtpError::LineTooLong(max)),
        Some(n) => Ok(Some((n, n + 2))),
        None if buf.len() >= max => Err(SmtpError::LineTooLong(max)),
        None => Ok(None),
    }
}

/// A command line split into its verb (upper-cased) and argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    pub arg: String,
}

impl Command {
    /// Parse one command line (without CRLF). Verbs are case-insensitive.
    pub fn parse(line: &[u8]) -> Command {
        let text = String::from_utf8_lossy(line);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v, a),
            None => (text.as_ref(), ""),
        };
        let mut verb = verb.to_ascii_uppercase();
        let mut arg = arg.to_string();
        // "MAIL FROM:" and "RCPT TO:" are one verb with a keyword.
        for (v, kw) in [("MAIL", "FROM:"), ("RCPT", "TO:")] {
            // `get`: the argument is arbitrary text, the cut may fall inside a character.
            if verb == v
                && arg
                    .get(..kw.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(kw))
            {
                verb = format!("{v} {kw}");
                verb.pop();
                arg = arg[kw.len()..].to_string();
            }
        }
        Command { verb, arg }
    }

    /// The address inside `<...>` of a MAIL FROM or RCPT TO argument, and
    /// whatever parameters follow it (`SIZE=1000`).
    pub fn path(&self) -> Option<(&str, &str)> {
        let a = self.arg.trim_start();
        let rest = a.strip_prefix('<')?;
        let end = rest.find('>')?;
        Some((&rest[..end], rest[end + 1..].trim()))
    }
}

/// A complete reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

/// Collects reply lines until the last one (`NNN text`, not `NNN-text`).
#[derive(Debug, Default)]
pub struct ReplyReader {
    code: Option<u16>,
    lines: Vec<String>,
}

/// Most lines of one multi-line reply (EHLO lists a dozen at most).
const MAX_REPLY_LINES: usize = 100;

impl ReplyReader {
    /// Take one reply line (without CRLF); a whole reply once it ends.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, SmtpError> {
        let bad = || SmtpError::BadReply(String::from_utf8_lossy(line).into_owned());
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let code: u16 = std::str::from_utf8(&line[..3])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if !(200..600).contains(&code) {
            return Err(bad());
        }
        let (more, text) = match line.get(3) {
            None => (false, &b""[..]),
            Some(b' ') => (false, &line[4..]),
            Some(b'-') => (true, &line[4..]),
            Some(_) => return Err(bad()),
        };
        if self.code.is_some_and(|c| c != code) {
            return Err(SmtpError::BadReply(format!(
                "lines of one reply carry different codes: {line:?}",
                line = String::from_utf8_lossy(line)
            )));
        }
        self.code = Some(code);
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        if self.lines.len() > MAX_REPLY_LINES {
            return Err(SmtpError::BadReply("too many lines in one reply".into()));
        }
        if more {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(Reply { code, lines }))
    }
}

/// Undoes dot-stuffing of a message sent after DATA and finds its end.
#[derive(Debug, Default)]
pub struct DataReader {
    /// Message bytes so far, dot-stuffing removed, CRLF kept.
    pub message: Vec<u8>,
}

impl DataReader {
    /// Take one line of the message (without CRLF). True at the end (`.`).
    pub fn line(&mut self, line: &[u8]) -> bool {
        if line == b"." {
            return true;
        }
        let line = line.strip_prefix(b".").unwrap_or(line);
        self.message.extend_from_slice(line);
        self.message.extend_from_slice(b"\r\n");
        false
    }
}

/// Dot-stuff a message for sending: every line beginning with a dot gets
/// another; the message ends with CRLF; then comes the final `.` line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_into_verb_and_path() {
        let c = Command::parse(b"mail from:<alice@a.lab> SIZE=100");
        assert_eq!(c.verb, "MAIL FROM");
        assert_eq!(c.path(), Some(("alice@a.lab", "SIZE=100")));
        let c = Command::parse(b"RCPT TO: <bob@b.lab>");
        assert_eq!(
            (c.verb.as_str(), c.path()),
            ("RCPT TO", Some(("bob@b.lab", "")))
        );
        assert_eq!(Command::parse(b"QUIT").verb, "QUIT");
        assert_eq!(Command::parse(b"EHLO ws.a.lab").arg, "ws.a.lab");
        assert_eq!(Command::parse(b"MAIL alice").path(), None);
        // Found by fuzzing: a multi-byte character where FROM: would be.
        assert_eq!(Command::parse("MAIL b\u{fffd}x".as_bytes()).verb, "MAIL");
    }

    #[test]
    fn only_crlf_ends_a_line() {
        assert_eq!(crlf_line(b"HELO x\r\nrest", 512), Ok(Some((6, 8))));
        assert_eq!(crlf_line(b"HELO x\nQUIT\r\n", 512), Ok(Some((11, 13))));
        assert_eq!(crlf_line(b"partial", 512), Ok(None));
        assert!(crlf_line(&[b'a'; 600], 512).is_err());
    }

    #[test]
    fn multiline_replies_and_errors() {
        let mut r = ReplyReader::default();
        assert_eq!(r.line(b"250-mail.b.lab"), Ok(None));
        assert_eq!(r.line(b"250-SIZE 10240000"), Ok(None));
        let rep = r.line(b"250 PIPELINING").unwrap().unwrap();
        assert_eq!(rep.code, 250);
        assert_eq!(rep.lines, ["mail.b.lab", "SIZE 10240000", "PIPELINING"]);
        assert_eq!(r.line(b"354").unwrap().unwrap().code, 354);
        assert!(r.line(b"2x0 no").is_err());
        assert!(r.line(b"250-a").is_ok() && r.line(b"251 b").is_err());
    }

    #[test]
    fn dot_stuffing_round_trips() {
        let msg = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend";
        let wire = dot_stuff(msg);
        assert!(wire.ends_with(b"end\r\n.\r\n"));
        let mut d = DataReader::default();
        let mut rest = &wire[..];
        let mut ended = false;
        while let Ok(Some((n, used))) = crlf_line(rest, MAX_TEXT_LINE) {
            ended = d.line(&rest[..n]);
            rest = &rest[used..];
            if ended {
                break;
            }
        }
        assert!(ended);
        assert_eq!(d.message, b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend\r\n");
    }
}
