//! Property tests of the codecs: a message encoded and decoded is itself,
//! and input cut into any chunks decodes as the whole does.

use applab_proto::dns_tcp::{frame, Deframer};
use applab_proto::dot::{stuff, DotReader};
use applab_proto::http::{BodyReader, Framing};
use applab_proto::imap::{Piece, Received, Receiver, ReceiverLimits};
use applab_proto::line::{Line, LineReader};
use applab_proto::smtp::{encode_reply, ReplyReader};
use proptest::prelude::*;

/// `data` fed in pieces cut at `cuts` (positions modulo its length).
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Line> {
    let mut r = LineReader::new();
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c);
        while let Some(l) = r.next_line(max) {
            out.push(l);
        }
        assert!(r.buffered() <= max + c.len());
    }
    out
}

/// Text lines: printable bytes and dots, no CR or LF.
fn text_line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(b'.'), 0x20u8..0x7f], 0..40)
}

proptest! {
    #[test]
    fn lines_decode_the_same_in_any_chunks(
        data in prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max in 3usize..300,
    ) {
        prop_assert_eq!(lines_of(&[&data], max), lines_of(&pieces(&data, &cuts), max));
    }

    #[test]
    fn dot_stuffed_text_reads_back_as_itself(
        lines in prop::collection::vec(text_line(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut text = Vec::new();
        for l in &lines {
            text.extend_from_slice(l);
            text.extend_from_slice(b"\r\n");
        }
        let wire = stuff(&text);
        let mut d = DotReader::default();
        let mut ended = false;
        for l in lines_of(&pieces(&wire, &cuts), 1000) {
            let Line::Complete(l) = l else { panic!("a line too long") };
            prop_assert!(!ended, "nothing after the final dot");
            ended = d.line(&l);
        }
        prop_assert!(ended);
        prop_assert_eq!(d.data, text);
    }

    #[test]
    fn smtp_replies_encode_and_decode(
        code in 200u16..600,
        texts in prop::collection::vec("[ -~]{0,30}", 1..6),
    ) {
        let wire = encode_reply(code, &texts);
        let mut r = ReplyReader::default();
        let mut got = None;
        for l in lines_of(&[&wire], 512) {
            let Line::Complete(l) = l else { panic!("too long") };
            prop_assert!(got.is_none(), "one reply");
            got = r.line(&l).unwrap();
        }
        let reply = got.unwrap();
        prop_assert_eq!(reply.code, code);
        prop_assert_eq!(reply.lines, texts);
    }

    #[test]
    fn dns_tcp_frames_in_any_chunks(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..5),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let wire: Vec<u8> = msgs.iter().flat_map(|m| frame(m).unwrap()).collect();
        let mut d = Deframer::default();
        let mut got = Vec::new();
        for c in pieces(&wire, &cuts) {
            d.feed(c);
            got.extend(std::iter::from_fn(|| d.next_message()));
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn imap_commands_with_literals_in_any_chunks(
        lits in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..4),
        plus in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = b"a1 APPEND INBOX".to_vec();
        for l in &lits {
            wire.extend_from_slice(format!(" {{{}{}}}\r\n", l.len(), if plus { "+" } else { "" }).as_bytes());
            wire.extend_from_slice(l);
        }
        wire.extend_from_slice(b"\r\na2 NOOP\r\n");
        for limits in [ReceiverLimits::SERVER, ReceiverLimits::DECODER] {
            let mut lines = LineReader::new();
            let mut rx = Receiver::new(limits);
            let mut whole = Vec::new();
            for c in pieces(&wire, &cuts) {
                lines.feed(c);
                while let Some(r) = rx.next(&mut lines) {
                    match r {
                        Received::Whole(a) => whole.push(a),
                        Received::Continue => prop_assert!(!plus),
                        other => panic!("{other:?}"),
                    }
                }
            }
            prop_assert_eq!(whole.len(), 2);
            let kept: Vec<&Vec<u8>> = whole[0]
                .pieces
                .iter()
                .filter_map(|p| match p { Piece::Literal(d) => Some(d), _ => None })
                .collect();
            prop_assert_eq!(kept.len(), lits.len());
            prop_assert_eq!(whole[0].literal_octets, lits.iter().map(|l| l.len() as u64).sum::<u64>());
            if limits.keep {
                prop_assert_eq!(kept, lits.iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_chunks(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\nNEXT");
        let mut r = BodyReader::new(Framing::Chunked);
        let (mut out, mut pending, mut used) = (Vec::new(), Vec::new(), 0);
        for c in pieces(&wire, &cuts) {
            pending.extend_from_slice(c);
            used += r.feed(&pending[used..], &mut out).unwrap();
        }
        prop_assert!(r.is_done());
        prop_assert_eq!(out, chunks.concat());
        prop_assert_eq!(&wire[used..], b"NEXT");
    }
}
