//! The connection the line-based mail servers (SMTP, POP3, IMAP) share,
//! as mini-redis splits `Connection` from its frames: bytes in through
//! `applab_proto::line::LineReader` (one "too long" behaviour), buffered
//! replies out, flushed only when the input runs dry so a pipelining
//! client gets its answers in one segment, and one idle timeout.

use applab_proto::line::{Line, LineReader};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

/// The two halves a connection runs over (TCP, or a pipe in tests).
pub trait In: AsyncRead + Unpin {}
impl<T: AsyncRead + Unpin> In for T {}
pub trait Out: AsyncWrite + Unpin {}
impl<T: AsyncWrite + Unpin> Out for T {}

/// What waiting for input gave.
#[derive(Debug)]
pub enum Next<T> {
    Item(T),
    /// The peer closed (or reset) the connection.
    Closed,
    /// The peer sent nothing for the idle time.
    Idle,
}

pub struct Connection<R, W> {
    rd: R,
    out: BufWriter<W>,
    lines: LineReader,
    eof: bool,
    idle: Duration,
}

/// A mail server's connection over TCP.
pub type TcpConnection =
    Connection<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>;

impl TcpConnection {
    pub fn tcp(sock: tokio::net::TcpStream, idle: Duration) -> TcpConnection {
        // Replies are batched by the buffer, so Nagle would only delay them.
        let _ = sock.set_nodelay(true);
        let (rd, wr) = sock.into_split();
        Connection::new(rd, wr, idle)
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    pub fn new(rd: R, wr: W, idle: Duration) -> Connection<R, W> {
        Connection {
            rd,
            out: BufWriter::new(wr),
            lines: LineReader::new(),
            eof: false,
            idle,
        }
    }

    /// The next CRLF line of at most `max` octets (CRLF counted).
    pub async fn line(&mut self, max: usize) -> std::io::Result<Next<Line>> {
        self.next(|l| l.next_line(max)).await
    }

    /// Whatever `decode` makes of the buffered input, reading more (after
    /// flushing the replies) until it makes something.
    pub async fn next<T>(
        &mut self,
        mut decode: impl FnMut(&mut LineReader) -> Option<T>,
    ) -> std::io::Result<Next<T>> {
        loop {
            if let Some(item) = decode(&mut self.lines) {
                return Ok(Next::Item(item));
            }
            if self.eof {
                return Ok(Next::Closed);
            }
            self.out.flush().await?;
            match tokio::time::timeout(self.idle, self.read_once()).await {
                Err(_) => return Ok(Next::Idle),
                Ok(read) => read?,
            }
        }
    }

    /// One read into the line buffer; a close or reset marks the end.
    /// Cancel-safe: a read that did not finish took nothing.
    async fn read_once(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        match self.rd.read(&mut chunk).await {
            Ok(0) => self.eof = true,
            Ok(n) => self.lines.feed(&chunk[..n]),
            // A reset is the peer going away, like a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.eof = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// A line already buffered, without reading (IDLE looks between events).
    pub fn buffered_line(&mut self, max: usize) -> Option<Line> {
        self.lines.next_line(max)
    }

    /// Read once, with no timeout, after flushing the replies; false when
    /// the peer has closed. Cancel-safe (for `select!` beside other events).
    pub async fn read_some(&mut self) -> std::io::Result<bool> {
        if !self.eof {
            self.out.flush().await?;
            self.read_once().await?;
        }
        Ok(!self.eof)
    }

    /// Queue bytes for the peer (sent at the next wait or flush).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes).await
    }

    /// Queue one line, CRLF added.
    pub async fn send_line(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes()).await?;
        self.out.write_all(b"\r\n").await
    }

    /// Send what is queued and close our side.
    pub async fn close(&mut self) -> std::io::Result<()> {
        self.out.flush().await?;
        let _ = self.out.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_wait_for_the_input_to_run_dry_and_idle_ends() {
        let (client, server) = tokio::io::duplex(1024);
        let (rd, wr) = tokio::io::split(server);
        let mut c = Connection::new(rd, wr, Duration::from_millis(50));
        let (mut crd, mut cwr) = tokio::io::split(client);
        cwr.write_all(b"A\r\nB\r\n").await.unwrap();
        for want in [b"A", b"B"] {
            let Next::Item(Line::Complete(l)) = c.line(100).await.unwrap() else {
                panic!("a line")
            };
            assert_eq!(l, want);
            c.send_line("ok").await.unwrap();
        }
        // Both replies go out when the connection waits for more.
        assert!(matches!(c.line(100).await.unwrap(), Next::Idle));
        let mut got = [0u8; 8];
        crd.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok\r\nok\r\n");
        drop((crd, cwr));
        assert!(matches!(c.line(100).await.unwrap(), Next::Closed));
    }
}

/// A session over an in-memory pipe, for the servers' tests.
#[cfg(test)]
pub mod pipe {
    use super::Connection;
    use std::future::Future;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

    pub type PipeConnection = Connection<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

    /// Run `session` over a pipe while a client writes `chunks`, each on its
    /// own (a pause between them lets the server read each separately, as
    /// segments would arrive), then closes its side; everything the server
    /// sent comes back. The session's connection is dropped at its end, as
    /// a socket would be.
    pub async fn converse<F, Fut>(idle: Duration, chunks: &[&[u8]], session: F) -> String
    where
        F: FnOnce(PipeConnection) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut crd, mut cwr) = tokio::io::split(client);
        let (rd, wr) = tokio::io::split(server);
        let sess = session(Connection::new(rd, wr, idle));
        let feed = async {
            for c in chunks {
                cwr.write_all(c).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cwr.shutdown().await.unwrap();
            let mut out = Vec::new();
            crd.read_to_end(&mut out).await.unwrap();
            out
        };
        let (r, out) = tokio::join!(sess, feed);
        r.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }
}
