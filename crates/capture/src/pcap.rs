//! Pcap files: reading (pcap and pcapng, with the pcap-file crate) and
//! writing (classic pcap, which every version of tshark and Wireshark opens).

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
}

/// One captured frame: its time since the epoch and its bytes.
pub struct Captured {
    pub time: Duration,
    pub data: Vec<u8>,
}

/// Read every Ethernet frame of a pcap or pcapng file.
pub fn read_file(path: &Path) -> Result<Vec<Captured>, PcapError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PcapError::Io {
        path: p.clone(),
        source,
    })?;
    let format = |reason: String| PcapError::Format {
        path: p.clone(),
        reason,
    };
    let mut out = Vec::new();
    // pcapng starts with a section header block of type 0x0A0D0D0A.
    if bytes.starts_with(&[0x0A, 0x0D, 0x0D, 0x0A]) {
        let mut r = PcapNgReader::new(&bytes[..]).map_err(|e| format(e.to_string()))?;
        let mut links = Vec::new();
        while let Some(block) = r.next_block() {
            match block.map_err(|e| format(e.to_string()))? {
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(b) => {
                    let link = links.get(b.interface_id as usize).copied();
                    if link != Some(DataLink::ETHERNET) {
                        return Err(format(format!("link type {link:?} is not Ethernet")));
                    }
                    out.push(Captured {
                        time: b.timestamp,
                        data: b.data.into_owned(),
                    });
                }
                Block::SimplePacket(b) => out.push(Captured {
                    time: Duration::ZERO,
                    data: b.data.into_owned(),
                }),
                _ => {}
            }
        }
        return Ok(out);
    }
    let mut r = PcapReader::new(&bytes[..]).map_err(|e| format(e.to_string()))?;
    if r.header().datalink != DataLink::ETHERNET {
        return Err(format(format!(
            "link type {:?} is not Ethernet",
            r.header().datalink
        )));
    }
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| format(e.to_string()))?;
        out.push(Captured {
            time: p.timestamp,
            data: p.data.into_owned(),
        });
    }
    Ok(out)
}

/// A classic pcap stream of Ethernet frames with microsecond timestamps
/// (libpcap's format: a 24-byte file header, a 16-byte header per frame).
pub struct Writer<W: Write> {
    inner: W,
    snaplen: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(mut w: W, snaplen: u32) -> std::io::Result<Writer<W>> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        w.write_all(&h)?;
        Ok(Writer { inner: w, snaplen })
    }

    /// Append a frame; `orig_len` is its length on the wire.
    pub fn write(&mut self, time: Duration, orig_len: u32, data: &[u8]) -> std::io::Result<()> {
        let data = &data[..data.len().min(self.snaplen as usize)];
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(time.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&time.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(data)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Read a classic pcap from any reader (for tests and tools).
pub fn read_from(r: impl Read) -> Result<Vec<Captured>, String> {
    let mut r = PcapReader::new(r).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| e.to_string())?;
        out.push(Captured {
            time: p.timestamp,
            data: p.data.into_owned(),
        });
    }
    Ok(out)
}
