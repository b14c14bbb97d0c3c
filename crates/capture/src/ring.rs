//! A bounded pcap on disk: a ring of files in one folder.
//!
//! Frames are appended to the newest file; past `total / files` bytes a new
//! file starts, and the oldest files are deleted while the folder holds
//! more than `total`. Each file is a whole pcap that tshark and Wireshark
//! open on its own; [`Ring::export`] joins the frames of a time range into
//! one pcap for download.

use crate::pcap::Writer;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SNAPLEN: u32 = 65535;

pub struct Ring {
    dir: PathBuf,
    total: u64,
    file_limit: u64,
    current: Option<(u64, Writer<BufWriter<File>>)>,
    written: u64,
    next_seq: u64,
}

fn seq_of(p: &Path) -> Option<u64> {
    p.file_name()?.to_str()?.strip_suffix(".pcap")?.parse().ok()
}

/// The ring's files, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| seq_of(&p).map(|s| (s, p)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

impl Ring {
    /// Open (or continue) the ring in `dir`, holding at most `total` bytes.
    pub fn open(dir: &Path, total: u64) -> std::io::Result<Ring> {
        std::fs::create_dir_all(dir)?;
        let next_seq = files(dir)
            .last()
            .and_then(|p| seq_of(p))
            .map(|s| s + 1)
            .unwrap_or(1);
        Ok(Ring {
            dir: dir.to_path_buf(),
            total: total.max(64 * 1024),
            file_limit: (total / 8).max(32 * 1024),
            current: None,
            written: 0,
            next_seq,
        })
    }

    pub fn write(&mut self, time: Duration, wire_len: u32, data: &[u8]) -> std::io::Result<()> {
        if self.current.is_none() || self.written >= self.file_limit {
            self.rotate()?;
        }
        let (_, w) = self.current.as_mut().expect("rotated above");
        w.write(time, wire_len, data)?;
        self.written += 16 + data.len() as u64;
        Ok(())
    }

    /// Push buffered frames to the file (so a download sees them).
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some((_, w)) = self.current.as_mut() {
            w_flush(w)?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some((_, w)) = self.current.take() {
            let mut inner = w.into_inner();
            inner.flush()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let f = File::create(self.dir.join(format!("{seq:08}.pcap")))?;
        let w = Writer::new(BufWriter::with_capacity(64 * 1024, f), SNAPLEN)?;
        self.current = Some((seq, w));
        self.written = 24;
        // Delete the oldest files beyond the total (never the current one).
        let all = files(&self.dir);
        let mut sizes: Vec<(PathBuf, u64)> = all
            .into_iter()
            .map(|p| {
                let n = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                (p, n)
            })
            .collect();
        let mut sum: u64 = sizes.iter().map(|(_, n)| n).sum::<u64>() + self.file_limit;
        while sum > self.total && sizes.len() > 1 {
            let (p, n) = sizes.remove(0);
            let _ = std::fs::remove_file(&p);
            sum -= n;
        }
        Ok(())
    }
}

fn w_flush(w: &mut Writer<BufWriter<File>>) -> std::io::Result<()> {
    // The pcap writer owns the BufWriter; flush through a reference to it.
    w.get_mut().flush()
}

/// The frames of `dir` between `from` and `to` (since the epoch), as one pcap.
pub fn export(dir: &Path, from: Duration, to: Duration) -> std::io::Result<Vec<u8>> {
    let mut w = Writer::new(Vec::new(), SNAPLEN)?;
    for p in files(dir) {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        for (time, orig, data) in records(&bytes) {
            if time >= from && time <= to {
                w.write(time, orig, data)?;
            }
        }
    }
    Ok(w.into_inner())
}

/// Every frame of one ring file, in order (tolerant of a torn end).
pub fn each_frame(path: &Path, mut f: impl FnMut(Duration, &[u8])) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    for (time, _orig, data) in records(&bytes) {
        f(time, data);
    }
    Ok(())
}

/// The frames of a ring file as this module writes them (little-endian,
/// microseconds). The newest file is being written and may end inside a
/// frame: everything before that frame is kept.
fn records(bytes: &[u8]) -> Vec<(Duration, u32, &[u8])> {
    let mut out = Vec::new();
    if bytes.len() < 24 || bytes[..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return out;
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut i = 24;
    while i + 16 <= bytes.len() {
        let (sec, usec, incl, orig) = (
            u32_at(i),
            u32_at(i + 4),
            u32_at(i + 8) as usize,
            u32_at(i + 12),
        );
        if i + 16 + incl > bytes.len() {
            break;
        }
        let time = Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64);
        out.push((time, orig, &bytes[i + 16..i + 16 + incl]));
        i += 16 + incl;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_stays_bounded_and_exports_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Ring::open(dir.path(), 256 * 1024).unwrap();
        let frame = vec![0xABu8; 1000];
        for i in 0..1000u64 {
            r.write(Duration::from_secs(1_700_000_000 + i), 1000, &frame)
                .unwrap();
        }
        r.flush().unwrap();
        let total: u64 = files(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= 256 * 1024 + 64 * 1024, "{total}");
        assert!(files(dir.path()).len() > 2);
        let base = Duration::from_secs(1_700_000_000);
        let out = export(
            dir.path(),
            base + Duration::from_secs(990),
            base + Duration::from_secs(994),
        )
        .unwrap();
        let frames = crate::pcap::read_from(&out[..]).unwrap();
        assert_eq!(frames.len(), 5);
        // A reopened ring continues after the last file.
        drop(r);
        let before = files(dir.path()).len();
        let mut r = Ring::open(dir.path(), 256 * 1024).unwrap();
        r.write(base, 3, b"abc").unwrap();
        r.flush().unwrap();
        assert!(files(dir.path()).len() >= before);
    }
}
