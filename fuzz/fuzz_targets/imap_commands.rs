//! IMAP on arbitrary bytes: the command tokenizer (pieces cut at literals
//! as the server cuts them), sequence sets, and the capture decoder.
#![no_main]
use applab_capture::imap::ImapFlow;
use applab_proto::imap::{crlf_line, literal_at_end, parse, sequence_set, Piece, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut pieces = Vec::new();
    while let Ok(Some((n, used))) = crlf_line(rest, MAX_LINE) {
        let line = rest[..n].to_vec();
        rest = &rest[used..];
        let lit = literal_at_end(&line);
        pieces.push(Piece::Line(line));
        match lit {
            Some((k, _)) if k <= rest.len() => {
                pieces.push(Piece::Literal(rest[..k].to_vec()));
                rest = &rest[k..];
            }
            Some(_) => break,
            None => {
                if let Ok(c) = parse(&pieces) {
                    for a in &c.args {
                        if let Some(t) = a.as_text() {
                            let _ = sequence_set(&t, 100);
                        }
                    }
                }
                pieces.clear();
            }
        }
    }
    let cut = data.len() / 3;
    let mut f = ImapFlow::default();
    let mut out = Vec::new();
    f.client_data(&data[..cut], &mut out);
    f.server_data(data, &mut out);
    f.client_data(&data[cut..], &mut out);
});
