//! One TCP connection's bytes, read with time limits, and message bodies
//! taken off it by their framing (RFC 9112 §6): what both sides of the
//! proxy, client and origin, are read with.

use applab_proto::http::{BodyReader, Framing, HeadError};
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

/// Where a body being read stands: `applab_proto::http::BodyReader` over
/// the wire's buffer.
pub struct Body {
    reader: BodyReader,
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        Body {
            reader: BodyReader::new(framing),
        }
    }

    pub fn is_done(&self) -> bool {
        self.reader.is_done()
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
            if self.reader.is_done() {
                return Ok(false);
            }
            let before = out.len();
            if !wire.buf.is_empty() {
                let used = self.reader.feed(&wire.buf, out)?;
                wire.buf.drain(..used);
                if out.len() > before || self.reader.is_done() {
                    return Ok(true);
                }
            }
            if wire.fill(idle).await? == 0 {
                // The end of a body read to the close; any other is cut short.
                return match self.reader.at_close() {
                    Ok(()) => Ok(false),
                    Err(_) => Err(WireError::Closed),
                };
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
        if let Some(n) = self.reader.left() {
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
