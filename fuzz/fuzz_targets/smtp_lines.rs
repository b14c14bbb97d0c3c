//! SMTP line handling on arbitrary bytes: commands, replies, DATA lines.
#![no_main]
use applab_proto::smtp::{crlf_line, Command, DataReader, ReplyReader, MAX_TEXT_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut replies = ReplyReader::default();
    let mut msg = DataReader::default();
    let mut rest = data;
    while let Ok(Some((n, used))) = crlf_line(rest, MAX_TEXT_LINE) {
        assert!(n + 2 == used && used <= rest.len());
        let line = &rest[..n];
        let c = Command::parse(line);
        let _ = c.path();
        if let Ok(Some(r)) = replies.line(line) {
            assert!((200..600).contains(&r.code) && !r.lines.is_empty());
        }
        msg.line(line);
        rest = &rest[used..];
    }
    assert!(msg.message.len() <= data.len() + 2);
});
