//! One TCP connection's bytes, read with time limits, and message bodies
//! taken off it by their framing (RFC 9112 §6): what both sides of the
//! proxy, client and origin, are read with.

use applab_proto::http::{ChunkedDecoder, Framing, HeadError};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] HeadError),
}

pub struct Wire {
    pub stream: TcpStream,
    /// Bytes read and not yet used.
    pub buf: Vec<u8>,
    /// Every byte read from the socket, for the stats.
    pub bytes_in: u64,
}

/// Read at most this much per call: bounds a connection's buffer.
const READ: usize = 64 * 1024;

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::with_capacity(4096),
            bytes_in: 0,
        }
    }

    /// Read more into the buffer; `Ok(0)` is the peer's end of stream.
    pub async fn fill(&mut self, limit: Duration) -> Result<usize, WireError> {
        let old = self.buf.len();
        self.buf.resize(old + READ, 0);
        let r = tokio::time::timeout(limit, self.stream.read(&mut self.buf[old..])).await;
        let n = match r {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.buf.truncate(old);
                return Err(e.into());
            }
            Err(_) => {
                self.buf.truncate(old);
                return Err(WireError::Timeout);
            }
        };
        self.buf.truncate(old + n);
        self.bytes_in += n as u64;
        Ok(n)
    }
}

/// Where a body being read stands.
pub struct Body {
    framing: Framing,
    left: u64,
    chunked: ChunkedDecoder,
    done: bool,
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        Body {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedDecoder::new(),
            done: matches!(framing, Framing::None | Framing::Length(0)),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Append the next piece of the body to `out`. `Ok(false)` once the
    /// body has ended (nothing appended then).
    pub async fn next(
        &mut self,
        wire: &mut Wire,
        out: &mut Vec<u8>,
        idle: Duration,
    ) -> Result<bool, WireError> {
        loop {
            if self.done {
                return Ok(false);
            }
            let before = out.len();
            if !wire.buf.is_empty() {
                match self.framing {
                    Framing::Length(_) => {
                        let take = (wire.buf.len() as u64).min(self.left) as usize;
                        out.extend_from_slice(&wire.buf[..take]);
                        wire.buf.drain(..take);
                        self.left -= take as u64;
                        self.done = self.left == 0;
                    }
                    Framing::Chunked => {
                        let used = self.chunked.feed(&wire.buf, out)?;
                        wire.buf.drain(..used);
                        self.done = self.chunked.is_done();
                    }
                    Framing::UntilClose => {
                        out.append(&mut wire.buf);
                    }
                    Framing::None => self.done = true,
                }
                if out.len() > before || self.done {
                    return Ok(true);
                }
            }
            if wire.fill(idle).await? == 0 {
                if self.framing == Framing::UntilClose {
                    self.done = true;
                    return Ok(false);
                }
                return Err(WireError::Closed);
            }
        }
    }

    /// Read the whole body if it fits in `max` bytes. `Ok(None)`: it does
    /// not; what was read is in `out` and the rest is still to come.
    pub async fn read_all(
        &mut self,
        wire: &mut Wire,
        out: &mut Vec<u8>,
        max: usize,
        idle: Duration,
    ) -> Result<bool, WireError> {
        if let Framing::Length(n) = self.framing {
            if n > max as u64 {
                return Ok(false);
            }
            out.reserve(n as usize);
        }
        while self.next(wire, out, idle).await? {
            if out.len() > max {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
