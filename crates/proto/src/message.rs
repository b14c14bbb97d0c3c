//! The Internet message format (RFC 5322), the little the servers cut by
//! hand: where the header section ends. Everything else about a message
//! (fields, MIME structure) is read with the mail-parser crate.

/// The offset just past the blank line that ends the header section
/// (CRLF CRLF), if there is one.
pub fn header_end(msg: &[u8]) -> Option<usize> {
    msg.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_ends_after_the_blank_line() {
        assert_eq!(super::header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(super::header_end(b"A: b\r\nno body"), None);
    }
}
