//! The chunked-body decoder fed arbitrary bytes in arbitrary pieces: the
//! result never depends on how the input was split, and it never panics.
#![no_main]
use applab_proto::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ()> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut used = 0;
    for piece in data.chunks(step.max(1)) {
        pending.extend_from_slice(piece);
        let n = d.feed(&pending, &mut out).map_err(|_| ())?;
        assert!(n <= pending.len());
        used += n;
        pending.drain(..n);
        if d.is_done() {
            break;
        }
    }
    Ok((out, used, d.is_done()))
}

fuzz_target!(|input: (u8, &[u8])| {
    let (step, data) = input;
    let whole = decode(data, data.len());
    let split = decode(data, step as usize % 17 + 1);
    // A complete body decodes alike however it arrives.
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        if a.2 && b.2 {
            assert_eq!(a, b);
        }
    }
});
