//! The SMTP client side: what the queue speaks when it relays a message to
//! the other domain's server, and what the `mail send` tool speaks to its
//! own domain's server. Every line sent and received can be shown (the
//! tool prints the dialogue; the queue logs it at debug level).

use applab_proto::dot;
use applab_proto::line::{Line, LineReader};
use applab_proto::smtp::{Reply, ReplyReader, MAX_REPLY_LINE};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Shows each line: `true` for lines we sent.
pub type Trace = Box<dyn FnMut(bool, &str) + Send>;

pub struct Client {
    sock: TcpStream,
    buf: LineReader,
    pub extensions: Vec<String>,
    pub peer: SocketAddr,
    trace: Option<Trace>,
    timeout: Duration,
}

/// The outcome for one recipient.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered(String),
    /// 4xx or a connection problem: try again later.
    Temporary(String),
    /// 5xx: give up and bounce.
    Permanent(String),
}

fn classify(r: &Reply) -> Outcome {
    let text = format!("{} {}", r.code, r.lines.join(" "));
    match r.code {
        200..=399 => Outcome::Delivered(text),
        400..=499 => Outcome::Temporary(text),
        _ => Outcome::Permanent(text),
    }
}

impl Client {
    /// Connect, read the greeting and introduce ourselves (EHLO, else HELO).
    pub async fn connect(
        addr: SocketAddr,
        helo: &str,
        timeout: Duration,
        trace: Option<Trace>,
    ) -> anyhow::Result<Client> {
        let sock = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connection to {addr} timed out"))?
            .map_err(|e| anyhow::anyhow!("connection to {addr}: {e}"))?;
        let _ = sock.set_nodelay(true);
        let mut c = Client {
            sock,
            buf: LineReader::new(),
            extensions: Vec::new(),
            peer: addr,
            trace,
            timeout: timeout.max(Duration::from_secs(30)),
        };
        let greet = c.reply().await?;
        anyhow::ensure!(greet.code == 220, "{addr} greeted with {}", greet.code);
        let r = c.command(&format!("EHLO {helo}")).await?;
        if r.code == 250 {
            c.extensions = r
                .lines
                .iter()
                .skip(1)
                .map(|l| l.to_ascii_uppercase())
                .collect();
        } else {
            let r = c.command(&format!("HELO {helo}")).await?;
            anyhow::ensure!(
                r.code == 250,
                "{addr} refused HELO: {} {}",
                r.code,
                r.lines.join(" ")
            );
        }
        Ok(c)
    }

    pub fn has(&self, ext: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.split_whitespace().next() == Some(ext))
    }

    fn show(&mut self, sent: bool, line: &str) {
        if let Some(t) = &mut self.trace {
            t(sent, line);
        }
    }

    pub async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        self.show(true, line);
        self.sock
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        Ok(())
    }

    pub async fn command(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.send_line(line).await?;
        self.reply().await
    }

    /// Read one whole (possibly multi-line) reply.
    pub async fn reply(&mut self) -> anyhow::Result<Reply> {
        let mut rr = ReplyReader::default();
        loop {
            while let Some(line) = self.buf.next_line(MAX_REPLY_LINE) {
                let Line::Complete(line) = line else {
                    anyhow::bail!(
                        "{} sent a reply line over {MAX_REPLY_LINE} octets",
                        self.peer
                    );
                };
                self.show(false, &String::from_utf8_lossy(&line));
                if let Some(r) = rr.line(&line)? {
                    return Ok(r);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(self.timeout, self.sock.read(&mut chunk))
                .await
                .map_err(|_| anyhow::anyhow!("{} did not answer in time", self.peer))??;
            anyhow::ensure!(n > 0, "{} closed the connection", self.peer);
            self.buf.feed(&chunk[..n]);
        }
    }

    /// AUTH PLAIN with the initial response.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> anyhow::Result<Reply> {
        let token = applab_proto::sasl::encode_plain(user, password);
        self.send_line_hidden(&format!("AUTH PLAIN {token}"), "AUTH PLAIN <credentials>")
            .await?;
        self.reply().await
    }

    async fn send_line_hidden(&mut self, line: &str, shown: &str) -> anyhow::Result<()> {
        self.show(true, shown);
        self.sock
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        Ok(())
    }

    /// One mail transaction: MAIL FROM, RCPT TO each, DATA. The outcome of
    /// every recipient, in order.
    pub async fn transaction(
        &mut self,
        from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> anyhow::Result<Vec<Outcome>> {
        let size = if self.has("SIZE") {
            format!(" SIZE={}", message.len())
        } else {
            String::new()
        };
        let r = self.command(&format!("MAIL FROM:<{from}>{size}")).await?;
        if r.code != 250 {
            let o = classify(&r);
            self.command("RSET").await.ok();
            return Ok(vec![o; rcpts.len()]);
        }
        let mut outcomes = Vec::with_capacity(rcpts.len());
        for rc in rcpts {
            let r = self.command(&format!("RCPT TO:<{rc}>")).await?;
            outcomes.push(classify(&r));
        }
        if !outcomes.iter().any(|o| matches!(o, Outcome::Delivered(_))) {
            self.command("RSET").await.ok();
            return Ok(outcomes);
        }
        let r = self.command("DATA").await?;
        if r.code != 354 {
            let o = classify(&r);
            return Ok(outcomes
                .into_iter()
                .map(|x| match x {
                    Outcome::Delivered(_) => o.clone(),
                    other => other,
                })
                .collect());
        }
        let wire = dot::stuff(message);
        self.show(
            true,
            &format!("<message, {} bytes, then \".\">", message.len()),
        );
        self.sock.write_all(&wire).await?;
        let r = self.reply().await?;
        let end = classify(&r);
        Ok(outcomes
            .into_iter()
            .map(|x| match x {
                Outcome::Delivered(_) => end.clone(),
                other => other,
            })
            .collect())
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}
