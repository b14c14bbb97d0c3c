//! The request-head parser on arbitrary bytes: never a panic, and any head
//! it accepts is within the limits and consistent with what it consumed.
#![no_main]
use applab_proto::http::{parse_request_head, request_framing, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_request_line: 256,
        max_head: 1024,
        max_headers: 16,
    };
    match parse_request_head(data, &limits) {
        Ok(Some((head, used))) => {
            assert!(used <= data.len());
            assert!(used <= limits.max_head);
            assert!(head.headers.len() <= limits.max_headers);
            assert!(head.minor <= 1);
            let _ = head.keep_alive();
            let _ = request_framing(&head);
        }
        Ok(None) => assert!(data.len() <= limits.max_head),
        Err(e) => assert!([400, 414, 431, 505].contains(&e.status())),
    }
});
