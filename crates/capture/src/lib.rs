//! Capture: what crossed a student's networks, as frames and as messages.
//!
//! Frames come from a tap on a student's bridge or from a pcap file; the
//! [`decoder::Decoder`] turns each into a line of the frame list and feeds
//! TCP segments through reassembly ([`tcp`]) into the protocol decoders
//! ([`http`], [`dns`], [`smtp`], [`pop3`], [`imap`]), which emit [`event::Event`]s: an HTTP request and
//! its response, a DNS query and its answer, an SMTP command, reply or message,
//! a POP3 command or answer, an IMAP command, its data and completion. Events point back to their
//! flow and frame. Decoding uses the same `applab_proto` codecs as the lab
//! servers, so the labs' grammar lives in one place.

pub mod decoder;
pub mod dns;
/// The events (their type lives in `applab_proto::event`, so the checks
/// read them without the taps).
pub use applab_proto::event;
pub mod http;
pub mod imap;
pub mod pcap;
pub mod pop3;
pub mod ring;
pub mod session;
pub mod smtp;
pub mod tap;
pub mod tcp;

pub use decoder::{Decoder, FrameInfo, Limits};
pub use event::{Event, EventKind};

/// Decode a whole pcap or pcapng file: its frame list and its events.
pub fn decode_file(
    path: &std::path::Path,
) -> Result<(Vec<FrameInfo>, Vec<Event>), pcap::PcapError> {
    let frames = pcap::read_file(path)?;
    let mut d = Decoder::new(Limits::default());
    let mut events = Vec::new();
    let list = frames
        .iter()
        .map(|f| d.frame(f.time.as_secs_f64(), &f.data, &mut events))
        .collect();
    Ok((list, events))
}
