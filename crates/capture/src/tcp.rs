//! TCP reassembly: captured segments in, each direction's bytes in order out.
//!
//! A capture sees what the wire carried, not what the receiver's socket
//! read: retransmissions, segments out of order, segments that overlap,
//! data after a FIN, and a RST that ends everything. Each direction of a
//! connection is a [`HalfStream`] that turns sequence numbers into offsets
//! from the start of that direction's data, delivers bytes exactly once and
//! in order, holds early segments up to a bound, and reports a gap (bytes
//! that never arrived) rather than waiting forever or growing without end.

use std::collections::BTreeMap;

/// What one direction of a connection yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The next bytes of the stream.
    Data(Vec<u8>),
    /// This many bytes were never captured; the stream resumes after them.
    Gap(u64),
    /// The sender finished (FIN), every byte before it delivered.
    Fin,
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct HalfStream {
    /// Sequence number of offset 0 (the byte after the SYN, or the first
    /// byte seen when the capture began mid-connection).
    base: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Segments that arrived early, by offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    fin_at: Option<u64>,
    finished: bool,
    /// Segments that carried only bytes already delivered.
    pub retransmissions: u64,
}

impl HalfStream {
    /// The 64-bit offset of `seq`, taken as the one nearest to `next` (so
    /// sequence numbers may wrap around 2^32).
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let rel = seq.wrapping_sub(base) as i64;
        let next = self.next as i64;
        let span = 1i64 << 32;
        let mut cand = (next & !(span - 1)) | rel;
        if cand - next > span / 2 {
            cand -= span;
        } else if next - cand > span / 2 {
            cand += span;
        }
        cand
    }

    /// Take one segment; `limit` bounds the bytes held out of order.
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        limit: usize,
        out: &mut Vec<Delivery>,
    ) {
        if self.finished {
            return;
        }
        let start = if syn { seq.wrapping_add(1) } else { seq };
        let base = *self.base.get_or_insert(start);
        let off = self.offset(base, start);
        let end = off + payload.len() as i64;
        if fin && end >= self.next as i64 {
            self.fin_at = Some(end as u64);
        }
        if !payload.is_empty() {
            if end <= self.next as i64 {
                self.retransmissions += 1;
            } else if off <= self.next as i64 {
                let skip = (self.next as i64 - off) as usize;
                out.push(Delivery::Data(payload[skip..].to_vec()));
                self.next = end as u64;
                self.drain(out);
            } else {
                let off = off as u64;
                let keep = match self.pending.get(&off) {
                    Some(old) => old.len() < payload.len(),
                    None => true,
                };
                if keep {
                    if let Some(old) = self.pending.insert(off, payload.to_vec()) {
                        self.pending_bytes -= old.len();
                    }
                    self.pending_bytes += payload.len();
                }
                while self.pending_bytes > limit {
                    // Give up on the missing bytes before the earliest held segment.
                    let Some((&first, _)) = self.pending.iter().next() else {
                        break;
                    };
                    out.push(Delivery::Gap(first - self.next));
                    self.next = first;
                    self.drain(out);
                }
            }
        }
        self.check_fin(out);
    }

    /// Deliver held segments that now continue the stream.
    fn drain(&mut self, out: &mut Vec<Delivery>) {
        while let Some((&off, _)) = self.pending.iter().next() {
            if off > self.next {
                break;
            }
            let data = self.pending.remove(&off).unwrap_or_default();
            self.pending_bytes -= data.len();
            let end = off + data.len() as u64;
            if end > self.next {
                out.push(Delivery::Data(data[(self.next - off) as usize..].to_vec()));
                self.next = end;
            }
        }
    }

    fn check_fin(&mut self, out: &mut Vec<Delivery>) {
        if let Some(f) = self.fin_at {
            if !self.finished && f <= self.next {
                self.finished = true;
                out.push(Delivery::Fin);
            }
        }
    }

    /// The stream ends now (RST, or the flow was dropped): report what is
    /// missing and deliver what was held.
    pub fn close(&mut self, out: &mut Vec<Delivery>) {
        if self.finished {
            return;
        }
        while let Some((&first, _)) = self.pending.iter().next() {
            out.push(Delivery::Gap(first - self.next));
            self.next = first;
            self.drain(out);
        }
        self.finished = true;
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes held out of order.
    pub fn held(&self) -> usize {
        self.pending_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(out: &[Delivery]) -> Vec<u8> {
        out.iter()
            .flat_map(|d| match d {
                Delivery::Data(v) => v.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn in_order_retransmitted_reordered_overlapping() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        let isn = 1000u32;
        h.segment(isn, true, false, b"", 1 << 20, &mut out);
        h.segment(isn + 1, false, false, b"GET ", 1 << 20, &mut out);
        // Reordered: the third piece first.
        h.segment(isn + 11, false, false, b" HTTP", 1 << 20, &mut out);
        // Retransmission of the first piece: ignored.
        h.segment(isn + 1, false, false, b"GET ", 1 << 20, &mut out);
        // Overlap: starts inside what was delivered, ends inside what is held.
        h.segment(isn + 3, false, false, b"T /index", 1 << 20, &mut out);
        h.segment(isn + 16, false, true, b"/1.1", 1 << 20, &mut out);
        assert_eq!(data(&out), b"GET /index HTTP/1.1");
        assert_eq!(out.last(), Some(&Delivery::Fin));
        assert_eq!(h.retransmissions, 1);
        assert_eq!(h.held(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        let isn = u32::MAX - 2;
        h.segment(isn, true, false, b"", 1 << 20, &mut out);
        h.segment(
            isn.wrapping_add(1),
            false,
            false,
            b"abcd",
            1 << 20,
            &mut out,
        );
        h.segment(
            isn.wrapping_add(5),
            false,
            false,
            b"efgh",
            1 << 20,
            &mut out,
        );
        assert_eq!(data(&out), b"abcdefgh");
    }

    #[test]
    fn missing_bytes_become_a_gap_within_the_bound() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        h.segment(0, true, false, b"", 8, &mut out);
        h.segment(1, false, false, b"ab", 8, &mut out);
        // Bytes 2..4 never come; later segments overflow the bound of 8.
        h.segment(5, false, false, b"cdef", 8, &mut out);
        h.segment(9, false, false, b"ghijk", 8, &mut out);
        assert_eq!(
            out,
            vec![
                Delivery::Data(b"ab".to_vec()),
                Delivery::Gap(2),
                Delivery::Data(b"cdef".to_vec()),
                Delivery::Data(b"ghijk".to_vec()),
            ]
        );
        assert!(h.held() <= 8);
    }

    #[test]
    fn mid_stream_start_and_close_with_held_data() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        h.segment(5000, false, false, b"xy", 1 << 20, &mut out);
        h.segment(5004, false, false, b"zz", 1 << 20, &mut out);
        h.close(&mut out);
        assert_eq!(
            out,
            vec![
                Delivery::Data(b"xy".to_vec()),
                Delivery::Gap(2),
                Delivery::Data(b"zz".to_vec())
            ]
        );
        assert!(h.is_finished());
    }
}
