//! POP3 on arbitrary bytes: the codec's lines and the capture decoder,
//! fed the same bytes as client and as server, in two cuts.
#![no_main]
use applab_capture::pop3::Pop3Flow;
use applab_proto::dot::DotReader;
use applab_proto::line::{Line, LineReader};
use applab_proto::pop3::{parse_status, Command, MAX_COMMAND_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut m = DotReader::default();
    let mut lines = LineReader::new();
    lines.feed(data);
    while let Some(l) = lines.next_line(MAX_COMMAND_LINE) {
        assert!(lines.buffered() <= data.len());
        let Line::Complete(line) = l else { continue };
        assert!(line.len() + 2 <= MAX_COMMAND_LINE);
        let c = Command::parse(&line);
        let _ = c.multiline_answer();
        let _ = parse_status(&line);
        m.line(&line);
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
