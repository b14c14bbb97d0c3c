//! The capture decoder on hostile frames: the input is cut into frames at
//! 0xFF 0xFF pairs and each is decoded as Ethernet, then as TCP or UDP
//! payload of the lab protocols (HTTP, SMTP) through reassembly. It must
//! never panic, and its memory stays bounded by its limits.
#![no_main]
use applab_capture::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

/// A valid Ethernet/IPv4/TCP header around `payload`, so the fuzzer's bytes
/// reach the reassembler and the HTTP decoder, not only the outer parsers.
fn tcp_frame(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 20 + 20 + payload.len();
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    f.append(&mut ip);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    f.append(&mut tcp);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(Limits {
        held_per_direction: 4096,
        flows: 8,
    });
    let mut events = Vec::new();
    let mut seq = 1000u32;
    for (i, piece) in data.split(|&b| b == 0xFF).enumerate() {
        // Raw frames, and the same bytes as HTTP segments both ways.
        d.frame(i as f64, piece, &mut events);
        let flags = piece.first().copied().unwrap_or(0x18) & 0x1F;
        let seq_jitter = piece.get(1).copied().unwrap_or(0) as u32;
        // HTTP and SMTP connections, both directions.
        let (s, p) = match i % 4 {
            0 => (40000, 80),
            1 => (80, 40000),
            2 => (40001, 25),
            _ => (25, 40001),
        };
        d.frame(i as f64, &tcp_frame(s, p, seq.wrapping_add(seq_jitter), flags, piece), &mut events);
        seq = seq.wrapping_add(piece.len() as u32);
    }
    assert!(events.len() < 100_000);
});
