//! SMTP line handling on arbitrary bytes: commands, replies, DATA lines.
#![no_main]
use applab_proto::dot::DotReader;
use applab_proto::line::{Line, LineReader};
use applab_proto::smtp::{Command, ReplyReader, MAX_TEXT_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut replies = ReplyReader::default();
    let mut msg = DotReader::default();
    let mut lines = LineReader::new();
    lines.feed(data);
    while let Some(l) = lines.next_line(MAX_TEXT_LINE) {
        let Line::Complete(line) = l else { continue };
        assert!(line.len() + 2 <= MAX_TEXT_LINE);
        let c = Command::parse(&line);
        let _ = c.path();
        if let Ok(Some(r)) = replies.line(&line) {
            assert!((200..600).contains(&r.code) && !r.lines.is_empty());
        }
        msg.line(&line);
    }
    assert!(msg.data.len() <= data.len() + 2);
});
