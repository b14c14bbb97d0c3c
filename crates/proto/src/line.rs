//! CRLF lines with a length limit: the framing SMTP, POP3 and IMAP share.
//!
//! Commands and replies of the three mail protocols are lines ended by
//! CRLF. Only CRLF ends a line: a bare LF is data (taking it as an end is
//! the "SMTP smuggling" hole). A line longer than the protocol's limit is
//! one error, reported once when its CRLF arrives; everything up to that
//! CRLF is dropped as it comes, so the buffer stays bounded and the rest of
//! an over-long line is never read as a new command (RFC 5321 §4.5.3.1,
//! RFC 1939 §3 / RFC 2449 §4, RFC 3501 §4.3 literals aside).

/// One item out of the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its CRLF.
    Complete(Vec<u8>),
    /// A line longer than the limit ended here; its bytes are gone.
    TooLong,
}

/// Bytes in, lines out; no IO.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes up to its CRLF.
    discarding: bool,
}

/// Where the first CRLF of `buf` starts.
fn crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    /// Append bytes read from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Inside an over-long line the bytes go at once, so a peer that
        // never sends CRLF cannot grow the buffer; its end stays for
        // `next_line` to report.
        if self.discarding && crlf(&self.buf).is_none() {
            self.drop_to_line_end();
        }
    }

    /// The next line of at most `max` bytes counting its CRLF, or `None`
    /// when more input is needed.
    pub fn next_line(&mut self, max: usize) -> Option<Line> {
        if self.discarding && !self.drop_to_line_end() {
            return None;
        }
        if self.discarding {
            self.discarding = false;
            return Some(Line::TooLong);
        }
        match crlf(&self.buf) {
            Some(n) if n + 2 > max => {
                self.buf.drain(..n + 2);
                Some(Line::TooLong)
            }
            Some(n) => {
                let line = self.buf[..n].to_vec();
                self.buf.drain(..n + 2);
                Some(Line::Complete(line))
            }
            None if self.buf.len() >= max => {
                self.discarding = true;
                self.next_line(max)
            }
            None => None,
        }
    }

    /// Exactly `n` raw bytes (an IMAP literal), or `None` until they are here.
    pub fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        (self.buf.len() >= n).then(|| self.buf.drain(..n).collect())
    }

    /// Drop up to `n` raw bytes (a literal too big to keep); how many went.
    pub fn skip(&mut self, n: usize) -> usize {
        let k = n.min(self.buf.len());
        self.buf.drain(..k);
        k
    }

    /// Bytes held and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drop what is buffered of an over-long line; true once its CRLF has
    /// gone too. A final CR is kept: its LF may be in the next segment.
    fn drop_to_line_end(&mut self) -> bool {
        if let Some(p) = crlf(&self.buf) {
            self.buf.drain(..p + 2);
            return true;
        }
        let keep = usize::from(self.buf.last() == Some(&b'\r'));
        let cut = self.buf.len() - keep;
        self.buf.drain(..cut);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut LineReader, max: usize) -> Vec<Line> {
        std::iter::from_fn(|| r.next_line(max)).collect()
    }

    #[test]
    fn lines_and_bare_lf() {
        let mut r = LineReader::new();
        r.feed(b"HELO x\r\nA\nB\r\npart");
        assert_eq!(
            all(&mut r, 512),
            [
                Line::Complete(b"HELO x".to_vec()),
                Line::Complete(b"A\nB".to_vec())
            ]
        );
        r.feed(b"ial\r\n");
        assert_eq!(all(&mut r, 512), [Line::Complete(b"partial".to_vec())]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_one_more_is_too_long() {
        let mut r = LineReader::new();
        let mut ok = vec![b'a'; 10];
        ok.extend_from_slice(b"\r\n");
        r.feed(&ok);
        assert_eq!(all(&mut r, 12), [Line::Complete(vec![b'a'; 10])]);
        let mut long = vec![b'a'; 11];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        r.feed(&long);
        assert_eq!(
            all(&mut r, 12),
            [Line::TooLong, Line::Complete(b"NOOP".to_vec())]
        );
    }

    /// The POP3 defect this reader replaced: `<300 bytes>DELE 1\r\n` split
    /// anywhere must be one too-long line, never a `DELE 1`.
    #[test]
    fn an_over_long_line_split_at_every_byte_is_one_error() {
        let mut wire = vec![b'x'; 300];
        wire.extend_from_slice(b"DELE 1\r\nNOOP\r\n");
        for cut in 0..=wire.len() {
            let mut r = LineReader::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                r.feed(part);
                got.extend(all(&mut r, 255));
                assert!(r.buffered() <= 255, "cut {cut}: buffer grew");
            }
            assert_eq!(
                got,
                [Line::TooLong, Line::Complete(b"NOOP".to_vec())],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_is_the_same_as_all_at_once() {
        let mut wire = b"USER a\r\n".to_vec();
        wire.extend(vec![b'y'; 700]);
        wire.extend_from_slice(b"\r\r\nQUIT\r\n");
        let mut whole = LineReader::new();
        whole.feed(&wire);
        let expect = all(&mut whole, 255);
        let mut r = LineReader::new();
        let mut got = Vec::new();
        for b in &wire {
            r.feed(std::slice::from_ref(b));
            got.extend(all(&mut r, 255));
        }
        assert_eq!(got, expect);
        assert_eq!(expect.len(), 3);
    }

    #[test]
    fn literals_are_taken_raw() {
        let mut r = LineReader::new();
        r.feed(b"a APPEND x {5}\r\nab\r\n");
        assert_eq!(
            r.next_line(100),
            Some(Line::Complete(b"a APPEND x {5}".to_vec()))
        );
        assert_eq!(r.take(5), None);
        r.feed(b"c\r\n");
        assert_eq!(r.take(5), Some(b"ab\r\nc".to_vec()));
        assert_eq!(r.next_line(100), Some(Line::Complete(Vec::new())));
    }
}
