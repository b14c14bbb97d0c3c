//! POP3 on arbitrary bytes: the codec's lines and the capture decoder,
//! fed the same bytes as client and as server, in two cuts.
#![no_main]
use applab_capture::pop3::Pop3Flow;
use applab_proto::pop3::{crlf_line, parse_status, Command, MultiLine, MAX_RESPONSE_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut m = MultiLine::default();
    let mut rest = data;
    while let Ok(Some((n, used))) = crlf_line(rest, MAX_RESPONSE_LINE) {
        let line = &rest[..n];
        let c = Command::parse(line);
        let _ = c.multiline_answer();
        let _ = parse_status(line);
        m.line(line);
        rest = &rest[used..];
    }
    assert!(m.data.len() <= data.len() + 2);
    let cut = data.len() / 2;
    let mut f = Pop3Flow::default();
    let mut out = Vec::new();
    f.server_data(&data[..cut], &mut out);
    f.client_data(data, &mut out);
    f.server_data(&data[cut..], &mut out);
    f.gap(3, &mut out);
});
