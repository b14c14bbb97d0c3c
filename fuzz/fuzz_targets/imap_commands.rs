//! IMAP on arbitrary bytes: the server's receiver (pieces cut at literals
//! as the server cuts them) in two cuts, the tokenizer, sequence sets, and
//! the capture decoder.
#![no_main]
use applab_capture::imap::ImapFlow;
use applab_proto::imap::{parse, sequence_set, Received, Receiver, ReceiverLimits};
use applab_proto::line::LineReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.len() / 3;
    let mut lines = LineReader::new();
    let mut rx = Receiver::new(ReceiverLimits::SERVER);
    for part in [&data[..cut], &data[cut..]] {
        lines.feed(part);
        while let Some(r) = rx.next(&mut lines) {
            assert!(lines.buffered() <= data.len());
            if let Received::Whole(a) = r {
                if let Ok(c) = parse(&a.pieces) {
                    for a in &c.args {
                        if let Some(t) = a.as_text() {
                            let _ = sequence_set(&t, 100);
                        }
                    }
                }
            }
        }
    }
    let mut f = ImapFlow::default();
    let mut out = Vec::new();
    f.client_data(&data[..cut], &mut out);
    f.server_data(data, &mut out);
    f.client_data(&data[cut..], &mut out);
});
