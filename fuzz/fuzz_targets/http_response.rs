//! The response-head parser and response framing on arbitrary bytes.
#![no_main]
use applab_proto::http::{parse_response_head, response_framing, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, used))) = parse_response_head(data, &Limits::default()) {
        assert!(used <= data.len());
        let _ = response_framing("GET", &head);
        let _ = response_framing("HEAD", &head);
    }
});
