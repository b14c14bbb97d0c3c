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
#[derive(Debug)]
pub struct Captured {
    pub time: Duration,
    pub data: Vec<u8>,
}

/// No frame on a lab's links is larger (jumbo frames included).
const MAX_FRAME: u32 = 262_144;

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
    let header = r.header();
    let mut number = 0;
    // Raw packets, checked here: pcap-file's own check refuses a frame
    // longer on the wire than the snap length, which is what a capture
    // with a short snap length (`tcpdump -s 96`) is made of.
    while let Some(p) = r.next_raw_packet() {
        let p = p.map_err(|e| format(e.to_string()))?;
        number += 1;
        let frac = match header.ts_resolution {
            pcap_file::TsResolution::MicroSecond => p.ts_frac.checked_mul(1000),
            pcap_file::TsResolution::NanoSecond => Some(p.ts_frac),
        };
        let Some(nanos) = frac.filter(|n| *n < 1_000_000_000) else {
            return Err(format(format!(
                "frame {number}: bad timestamp fraction {}",
                p.ts_frac
            )));
        };
        if p.incl_len > header.snaplen.max(MAX_FRAME) || p.incl_len > p.orig_len {
            return Err(format(format!(
                "frame {number}: {} bytes captured of {} on the wire, snap length {}",
                p.incl_len, p.orig_len, header.snaplen
            )));
        }
        out.push(Captured {
            time: Duration::new(u64::from(p.ts_sec), nanos),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap file by hand: header, then (incl_len, orig_len, bytes).
    fn pcap(snaplen: u32, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&snaplen.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        for (i, (incl, orig, data)) in frames.iter().enumerate() {
            f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            f.extend_from_slice(&250_000u32.to_le_bytes());
            f.extend_from_slice(&incl.to_le_bytes());
            f.extend_from_slice(&orig.to_le_bytes());
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn a_short_snap_length_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("short.pcap");
        let head = [0x11u8; 96];
        std::fs::write(&p, pcap(96, &[(96, 1514, &head), (60, 60, &head[..60])])).unwrap();
        let frames = read_file(&p).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].data.len(), 96);
        assert_eq!(frames[0].time, Duration::new(1_700_000_000, 250_000_000));
        assert_eq!(frames[1].data.len(), 60);
    }

    #[test]
    fn impossible_lengths_name_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pcap");
        let data = [0u8; 100];
        std::fs::write(&p, pcap(65535, &[(60, 60, &data[..60]), (100, 80, &data)])).unwrap();
        let e = read_file(&p).unwrap_err().to_string();
        assert!(e.contains("frame 2: 100 bytes captured of 80"), "{e}");
        assert!(e.contains("bad.pcap"), "{e}");
    }
}
