//! The Internet message format (RFC 5322), the little the servers and the
//! decoder cut by hand: where the header section ends, and its fields. A
//! field is `Name: value` on one line; a long value may be *folded* onto
//! the next lines, each starting with a space or tab, and reading it back
//! (*unfolding*, §2.2.3) removes each CRLF before such a space. Everything
//! else about a message (addresses, MIME structure) is read with the
//! mail-parser crate.

/// The offset just past the blank line that ends the header section
/// (CRLF CRLF), if there is one.
pub fn header_end(msg: &[u8]) -> Option<usize> {
    msg.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// One header field: its name as written and its value unfolded, with
/// the spaces around it trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: Vec<u8>,
}

impl Field<'_> {
    pub fn name_is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    pub fn value_text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// The fields of the header section at the start of `msg`, in order (at
/// most `max`). A bare LF ends a line too, as real mail has them; a line
/// without a colon that is not a continuation is skipped.
pub fn fields(msg: &[u8], max: usize) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    for line in msg.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A continuation: the fold's CRLF goes, its space stays.
            if let Some(last) = out.last_mut() {
                if !last.value.is_empty() {
                    last.value.push(b' ');
                }
                last.value.extend_from_slice(line.trim_ascii());
            }
            continue;
        }
        if out.len() >= max {
            break;
        }
        if let Some(p) = line.iter().position(|&b| b == b':') {
            out.push(Field {
                name: line[..p].trim_ascii(),
                value: line[p + 1..].trim_ascii().to_vec(),
            });
        }
    }
    out
}

/// The values of every field called `name` (case-insensitive), unfolded.
pub fn field_values(msg: &[u8], name: &str) -> Vec<Vec<u8>> {
    fields(msg, usize::MAX)
        .into_iter()
        .filter(|f| f.name_is(name))
        .map(|f| f.value)
        .collect()
}

/// A value with each fold and run of spaces made one space, for showing
/// (IMAP's ENVELOPE, a user agent's listing).
pub fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ends_after_the_blank_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\r\nno body"), None);
    }

    #[test]
    fn fields_are_unfolded_and_stop_at_the_body() {
        let m = b"Subject: a long\r\n  subject\r\nreceived: x\r\nReceived: y\r\n\tz\r\nnoise\r\n\r\nReceived: body\r\n";
        let f = fields(m, 100);
        let shown: Vec<(String, String)> = f
            .iter()
            .map(|f| (String::from_utf8_lossy(f.name).into_owned(), f.value_text()))
            .collect();
        assert_eq!(
            shown,
            [
                ("Subject".to_string(), "a long subject".to_string()),
                ("received".to_string(), "x".to_string()),
                ("Received".to_string(), "y z".to_string()),
            ]
        );
        assert_eq!(field_values(m, "RECEIVED").len(), 2);
        assert_eq!(fields(m, 1).len(), 1);
        assert_eq!(collapse_spaces(" a \t b "), "a b");
    }
}
