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
/// Longest text line a receiver takes: the RFC's 1000 is what every
/// receiver must accept, and real mail often goes past it.
pub const MAX_DATA_LINE: usize = 64 << 10;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SmtpError {
    #[error("malformed reply: {0}")]
    BadReply(String),
}

/// A reply on the wire: `250 text`, or `250-first` … `250 last` for
/// several lines (RFC 5321 §4.2.1); an empty text is the bare code.
pub fn encode_reply<S: AsRef<str>>(code: u16, lines: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = lines.len().max(1);
    for i in 0..n {
        let text = lines.get(i).map_or("", AsRef::as_ref);
        out.extend_from_slice(code.to_string().as_bytes());
        if i + 1 < n {
            out.push(b'-');
        } else if !text.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `local@domain` with nothing that would break a reply or a header
/// field: the dot-atom subset of RFC 5321 §4.1.2 a lab needs.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 254
        && a.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[],;:\\\"".contains(&b))
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
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
    fn addresses() {
        assert!(valid_address("bob@b.lab"));
        assert!(!valid_address("bob"));
        assert!(!valid_address("bob@"));
        assert!(!valid_address("a b@c.lab"));
        assert!(!valid_address("x@c..lab"));
        assert!(!valid_address("x>@c.lab"));
    }

    #[test]
    fn replies_encode_and_read_back() {
        assert_eq!(encode_reply(250, &["OK"]), b"250 OK\r\n");
        assert_eq!(encode_reply::<&str>(354, &[]), b"354\r\n");
        let wire = encode_reply(250, &["mail.b.lab", "SIZE 10", "PIPELINING"]);
        assert_eq!(wire, b"250-mail.b.lab\r\n250-SIZE 10\r\n250 PIPELINING\r\n");
        let mut r = ReplyReader::default();
        let mut got = None;
        for l in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            got = r.line(l.strip_suffix(b"\r").unwrap()).unwrap();
        }
        assert_eq!(got.unwrap().lines, ["mail.b.lab", "SIZE 10", "PIPELINING"]);
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
}
