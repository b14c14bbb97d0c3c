//! POP3 (RFC 1939, with CAPA from RFC 2449), sans IO.
//!
//! The client sends one command per CRLF line (`RETR 1`); the server answers
//! `+OK text` or `-ERR text`. Some answers go on for several lines — the
//! message of RETR, the listing of LIST and UIDL without an argument, TOP,
//! CAPA — and end with a line holding a single dot; a line of the message
//! that starts with a dot gets another one in front (byte-stuffing), which
//! the reader removes. Whether an answer is multi-line depends on the
//! command it answers and on its status, so the reader is told.

/// Longest command line (RFC 2449 §4: 255 octets with CRLF).
pub const MAX_COMMAND_LINE: usize = 255;
/// Longest response line we accept (RFC 2449 §4: 512 for the first line).
pub const MAX_RESPONSE_LINE: usize = 1000;

/// A command line split into its keyword (upper-cased) and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    pub args: Vec<String>,
}

impl Command {
    pub fn parse(line: &[u8]) -> Command {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split(' ').filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        // PASS takes the rest of the line: a password may hold spaces.
        let args = if verb == "PASS" {
            text.split_once(' ')
                .map(|(_, p)| vec![p.to_string()])
                .unwrap_or_default()
        } else {
            words.map(str::to_string).collect()
        };
        Command { verb, args }
    }

    /// Whether a positive answer to this command is multi-line.
    pub fn multiline_answer(&self) -> bool {
        match self.verb.as_str() {
            "RETR" | "TOP" | "CAPA" => true,
            "LIST" | "UIDL" => self.args.is_empty(),
            _ => false,
        }
    }
}

/// The first line of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    pub text: String,
}

/// `+OK ...` or `-ERR ...`; `None` for anything else. (A `+ ` continuation
/// of SASL AUTH is not used here.)
pub fn parse_status(line: &[u8]) -> Option<Status> {
    let text = String::from_utf8_lossy(line);
    if let Some(rest) = text.strip_prefix("+OK") {
        return (rest.is_empty() || rest.starts_with(' ')).then(|| Status {
            ok: true,
            text: rest.trim_start().to_string(),
        });
    }
    if let Some(rest) = text.strip_prefix("-ERR") {
        return (rest.is_empty() || rest.starts_with(' ')).then(|| Status {
            ok: false,
            text: rest.trim_start().to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_which_answers_are_multiline() {
        let c = Command::parse(b"retr 3");
        assert_eq!(
            (c.verb.as_str(), c.args.as_slice()),
            ("RETR", &["3".to_string()][..])
        );
        assert!(c.multiline_answer());
        assert!(Command::parse(b"LIST").multiline_answer());
        assert!(!Command::parse(b"LIST 1").multiline_answer());
        assert!(!Command::parse(b"DELE 1").multiline_answer());
        assert_eq!(Command::parse(b"PASS two words").args, ["two words"]);
        assert_eq!(Command::parse(b"").verb, "");
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"+OK 2 messages"),
            Some(Status {
                ok: true,
                text: "2 messages".into()
            })
        );
        assert_eq!(parse_status(b"-ERR").map(|s| s.ok), Some(false));
        assert_eq!(parse_status(b"+OKAY"), None);
        assert_eq!(parse_status(b"HTTP/1.1 200 OK"), None);
    }
}
