//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): the same messages as over
//! UDP, each preceded by its length in two octets, network byte order, so
//! a stream carries several and a message may pass 512 octets. (The
//! messages themselves are read and written with hickory-proto.)

/// Largest message the two-octet length can announce.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// A message with its length in front; `None` if it cannot be framed.
pub fn frame(msg: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Some(out)
}

/// Bytes of a stream in, whole messages out. The buffer never holds more
/// than one message and its length beyond what the reader fed at once.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, or `None` until its bytes are all here.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let len = u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]) as usize;
        if self.buf.len() < 2 + len {
            return None;
        }
        let msg = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(msg)
    }

    /// Bytes held that are not yet a whole message.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_any_split() {
        let a = vec![7u8; 300];
        let b = b"\x12\x34short".to_vec();
        let mut wire = frame(&a).unwrap();
        wire.extend(frame(&b).unwrap());
        wire.extend(frame(b"").unwrap());
        for cut in 0..=wire.len() {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                d.feed(part);
                got.extend(std::iter::from_fn(|| d.next_message()));
            }
            assert_eq!(got, [a.clone(), b.clone(), Vec::new()], "cut {cut}");
            assert!(d.pending().is_empty());
        }
        assert_eq!(frame(&vec![0; MAX_MESSAGE + 1]), None);
    }
}
