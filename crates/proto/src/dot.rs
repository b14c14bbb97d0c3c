//! Dot-stuffing (RFC 5321 §4.5.2, RFC 1939 §3): how SMTP's DATA and POP3's
//! multi-line answers carry text that may itself hold a line with a single
//! dot. The sender puts one more dot in front of every line that begins
//! with a dot and ends the text with a line holding only `.`; the receiver
//! takes the first dot off again and stops at that line.

/// One received line (without CRLF): its text with stuffing undone, or
/// `None` at the terminating `.`.
pub fn unstuff(line: &[u8]) -> Option<&[u8]> {
    if line == b"." {
        return None;
    }
    Some(line.strip_prefix(b".").unwrap_or(line))
}

/// Collects the lines of a dot-terminated text, stuffing removed.
#[derive(Debug, Default)]
pub struct DotReader {
    /// The text so far, lines ended by CRLF.
    pub data: Vec<u8>,
    pub lines: usize,
}

impl DotReader {
    /// Take one line (without CRLF); true at the terminating `.`.
    pub fn line(&mut self, line: &[u8]) -> bool {
        let Some(text) = unstuff(line) else {
            return true;
        };
        self.data.extend_from_slice(text);
        self.data.extend_from_slice(b"\r\n");
        self.lines += 1;
        false
    }
}

/// Dot-stuff a text for sending: every line beginning with a dot gets
/// another; the text ends with CRLF; then comes the final `.` line.
pub fn stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at_line_start = true;
    for &b in text {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    // An empty text is the `.` line alone: no empty line before it (a
    // LIST of an empty mailbox would otherwise list one blank entry).
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Line, LineReader};

    fn read_back(wire: &[u8]) -> (DotReader, bool) {
        let mut r = LineReader::new();
        r.feed(wire);
        let mut d = DotReader::default();
        while let Some(Line::Complete(l)) = r.next_line(1000) {
            if d.line(&l) {
                return (d, true);
            }
        }
        (d, false)
    }

    #[test]
    fn stuffing_round_trips() {
        let msg = b"Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend";
        let wire = stuff(msg);
        assert!(wire.ends_with(b"end\r\n.\r\n"));
        let (d, ended) = read_back(&wire);
        assert!(ended);
        assert_eq!(
            d.data,
            b"Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n"
        );
        assert_eq!(d.lines, 6);
    }

    #[test]
    fn an_empty_text_is_the_dot_line_alone() {
        assert_eq!(stuff(b""), b".\r\n");
        let (d, ended) = read_back(&stuff(b""));
        assert!(ended && d.lines == 0);
    }

    #[test]
    fn only_a_line_of_one_dot_ends() {
        assert_eq!(unstuff(b"."), None);
        assert_eq!(unstuff(b".."), Some(&b"."[..]));
        assert_eq!(unstuff(b". "), Some(&b" "[..]));
        // A dot after a bare LF is inside a line, not a line of its own.
        let (d, ended) = read_back(b"a\n.\r\nb\r\n.\r\n");
        assert!(ended);
        assert_eq!(d.data, b"a\n.\r\nb\r\n");
    }
}
