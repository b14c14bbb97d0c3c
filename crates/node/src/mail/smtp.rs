//! The SMTP server side (RFC 5321): one session per connection.
//!
//! The three phases the lecture names: handshake (220 greeting, EHLO or
//! HELO), transfer (MAIL FROM, RCPT TO, DATA ending at CRLF.CRLF, any number
//! of times), closure (QUIT). Commands out of order get 503, bad syntax 501,
//! unknown commands 500, unknown users 550, relaying for strangers 550 with
//! 5.7.1. Replies are buffered while more commands are already waiting and
//! sent when the input runs dry, which is all PIPELINING (RFC 2920) asks of
//! a server. A message is answered 250 only once the queue holds it on
//! disk (see `store`).

use super::conn::{Connection, In, Next, Out, TcpConnection};
use super::queue::Queue;
use super::users::Users;
use applab_proto::dot::DotReader;
use applab_proto::line::Line;
use applab_proto::sasl;
use applab_proto::smtp::{encode_reply, valid_address, Command, MAX_COMMAND_LINE, MAX_DATA_LINE};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What every session needs to know.
pub struct Server {
    pub domain: String,
    pub hostname: String,
    pub users: Users,
    pub relay_from: Vec<ipnet::IpNet>,
    pub max_size: u64,
    pub queue: Arc<Queue>,
    /// Idle time allowed between commands (RFC 5321 §4.5.3.2 says 5 minutes).
    pub idle: Duration,
    pub max_connections: usize,
}

/// More than this many failed commands ends the session (a confused or hostile client).
const MAX_ERRORS: u32 = 20;
const MAX_RCPTS: usize = 100;
/// Free disk kept in reserve beyond a message's size before accepting it.
const DISK_RESERVE: u64 = 1 << 20;

pub async fn serve(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    let max = server.max_connections;
    let busy = b"421 4.3.2 Too many connections, try again later\r\n";
    crate::accept::accept_loop(listener, max, busy, "smtp", move |sock, peer| {
        let server = server.clone();
        async move {
            let mut conn = TcpConnection::tcp(sock, server.idle);
            if let Err(e) = Session::new(&server, peer).run(&mut conn).await {
                tracing::debug!(%peer, "smtp session ended: {e}");
            }
        }
    })
    .await
}

struct Session<'a> {
    s: &'a Server,
    peer: SocketAddr,
    helo: Option<String>,
    esmtp: bool,
    user: Option<String>,
    from: Option<String>,
    rcpts: Vec<String>,
    errors: u32,
    messages: u32,
}

/// Ways a DATA transfer can end.
enum DataEnd {
    Message(Vec<u8>),
    TooBig,
    LineTooLong,
    Closed,
}

impl<'a> Session<'a> {
    fn new(s: &'a Server, peer: SocketAddr) -> Self {
        Session {
            s,
            peer,
            helo: None,
            esmtp: false,
            user: None,
            from: None,
            rcpts: Vec::new(),
            errors: 0,
            messages: 0,
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
    }

    fn may_relay(&self) -> bool {
        let ip = match self.peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.user.is_some() || self.s.relay_from.iter().any(|n| n.contains(&ip))
    }

    async fn run<R: In, W: Out>(mut self, out: &mut Connection<R, W>) -> std::io::Result<()> {
        tracing::info!(peer = %self.peer, "smtp connection");
        reply(out, 220, &format!("{} ESMTP applab ready", self.s.hostname)).await?;
        loop {
            let line = match out.line(MAX_COMMAND_LINE).await? {
                Next::Item(Line::Complete(l)) => l,
                Next::Item(Line::TooLong) => {
                    self.errors += 1;
                    reply(out, 500, "5.5.6 Line too long (512 octets at most)").await?;
                    if self.errors >= MAX_ERRORS {
                        reply(out, 421, "4.7.0 Too many errors, closing connection").await?;
                        break;
                    }
                    continue;
                }
                Next::Closed => break,
                Next::Idle => {
                    reply(out, 421, "4.4.2 Idle too long, closing connection").await?;
                    break;
                }
            };
            let cmd = Command::parse(&line);
            tracing::debug!(peer = %self.peer, verb = %cmd.verb, "smtp command");
            let quit = self.command(cmd, out).await?;
            if quit {
                break;
            }
            if self.errors >= MAX_ERRORS {
                reply(out, 421, "4.7.0 Too many errors, closing connection").await?;
                break;
            }
        }
        out.close().await?;
        tracing::info!(peer = %self.peer, messages = self.messages, "smtp connection closed");
        Ok(())
    }

    /// One command; true when the session is over.
    async fn command<R: In, W: Out>(
        &mut self,
        cmd: Command,
        out: &mut Connection<R, W>,
    ) -> std::io::Result<bool> {
        let arg = cmd.arg.trim().to_string();
        let (code, text): (u16, String) = match cmd.verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                (501, format!("5.5.4 Syntax: {} hostname", cmd.verb))
            }
            "EHLO" => {
                self.reset();
                self.helo = Some(arg.clone());
                self.esmtp = true;
                let lines = [
                    format!("{} greets {arg} [{}]", self.s.hostname, self.peer.ip()),
                    format!("SIZE {}", self.s.max_size),
                    "PIPELINING".into(),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                    "AUTH PLAIN LOGIN".into(),
                    "HELP".into(),
                ];
                multi_reply(out, 250, &lines).await?;
                return Ok(false);
            }
            "HELO" => {
                self.reset();
                self.helo = Some(arg.clone());
                self.esmtp = false;
                (
                    250,
                    format!("{} Hello {arg} [{}]", self.s.hostname, self.peer.ip()),
                )
            }
            "MAIL FROM" => self.mail(&cmd),
            "RCPT TO" => self.rcpt(&cmd),
            "DATA" => return self.data(&arg, out).await,
            "RSET" if !arg.is_empty() => (501, "5.5.4 Syntax: RSET (no argument)".into()),
            "RSET" => {
                self.reset();
                (250, "2.0.0 OK, transaction reset".into())
            }
            "NOOP" => (250, "2.0.0 OK".into()),
            "VRFY" => self.vrfy(&arg),
            "HELP" => (
                214,
                "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT AUTH".into(),
            ),
            "QUIT" => {
                reply(
                    out,
                    221,
                    &format!("2.0.0 {} closing connection", self.s.hostname),
                )
                .await?;
                return Ok(true);
            }
            "AUTH" => {
                let (c, t) = self.auth(&arg, out).await?;
                (c, t)
            }
            "EXPN" | "STARTTLS" | "TURN" | "ETRN" | "BDAT" => {
                (502, format!("5.5.1 {} is not implemented here", cmd.verb))
            }
            "" => (500, "5.5.2 Empty command".into()),
            _ => (500, "5.5.2 Command not recognized".into()),
        };
        if code >= 500 {
            self.errors += 1;
        }
        reply(out, code, &text).await?;
        Ok(false)
    }

    fn mail(&mut self, cmd: &Command) -> (u16, String) {
        if self.helo.is_none() {
            return (503, "5.5.1 Send HELO or EHLO first".into());
        }
        if self.from.is_some() {
            return (
                503,
                "5.5.1 Sender already given (RSET to start over)".into(),
            );
        }
        let Some((addr, params)) = cmd.path() else {
            return (501, "5.5.4 Syntax: MAIL FROM:<address>".into());
        };
        if !addr.is_empty() && !valid_address(addr) {
            return (501, format!("5.1.7 Bad sender address syntax: <{addr}>"));
        }
        let mut size = 0u64;
        for p in params.split_whitespace() {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.to_ascii_uppercase().as_str() {
                "SIZE" => match v.parse::<u64>() {
                    Ok(n) if n > self.s.max_size => {
                        return (
                            552,
                            format!(
                                "5.3.4 Message size exceeds the limit of {} bytes",
                                self.s.max_size
                            ),
                        )
                    }
                    Ok(n) => size = n,
                    Err(_) => return (501, "5.5.4 Bad SIZE value".into()),
                },
                "BODY" if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
                "AUTH" => {}
                _ if !self.esmtp => {
                    return (555, "5.5.4 Parameters need EHLO".into());
                }
                _ => return (555, format!("5.5.4 Unsupported parameter {p}")),
            }
        }
        if !self.has_room(size) {
            return (
                452,
                "4.3.1 Insufficient system storage, try again later".into(),
            );
        }
        self.from = Some(addr.to_string());
        (250, format!("2.1.0 Sender <{addr}> OK"))
    }

    fn has_room(&self, size: u64) -> bool {
        self.s
            .queue
            .store
            .free_bytes()
            .is_none_or(|free| free >= size.max(self.s.max_size.min(1 << 20)) + DISK_RESERVE)
    }

    fn rcpt(&mut self, cmd: &Command) -> (u16, String) {
        if self.from.is_none() {
            return (503, "5.5.1 Need MAIL FROM first".into());
        }
        let Some((addr, _params)) = cmd.path() else {
            return (501, "5.5.4 Syntax: RCPT TO:<address>".into());
        };
        if self.rcpts.len() >= MAX_RCPTS {
            return (452, "4.5.3 Too many recipients".into());
        }
        // `<postmaster>` without a domain is always ours (RFC 5321 §4.1.1.3).
        let full = if addr.eq_ignore_ascii_case("postmaster") {
            format!("postmaster@{}", self.s.domain)
        } else {
            addr.to_string()
        };
        if !valid_address(&full) {
            return (501, format!("5.1.3 Bad recipient address syntax: <{addr}>"));
        }
        let (local, domain) = full.rsplit_once('@').expect("checked");
        if domain.eq_ignore_ascii_case(&self.s.domain) {
            if self.s.users.mailbox(local).is_none() {
                return (
                    550,
                    format!("5.1.1 <{full}>: no such user here in {}", self.s.domain),
                );
            }
        } else if !self.may_relay() {
            return (
                550,
                format!(
                    "5.7.1 <{full}>: relay access denied (we accept mail for {} only)",
                    self.s.domain
                ),
            );
        }
        self.rcpts.push(full.clone());
        (250, format!("2.1.5 Recipient <{full}> OK"))
    }

    fn vrfy(&self, arg: &str) -> (u16, String) {
        if arg.is_empty() {
            return (501, "5.5.4 Syntax: VRFY user".into());
        }
        let a = arg.trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = a.rsplit_once('@').unwrap_or((a, &self.s.domain));
        if !domain.eq_ignore_ascii_case(&self.s.domain) {
            return (
                252,
                "2.1.5 Cannot verify, but will accept and attempt delivery".into(),
            );
        }
        match self.s.users.mailbox(local) {
            Some(u) => (250, format!("2.1.5 <{u}@{}>", self.s.domain)),
            None => (550, format!("5.1.1 <{a}>: no such user here")),
        }
    }

    async fn data<R: In, W: Out>(
        &mut self,
        arg: &str,
        out: &mut Connection<R, W>,
    ) -> std::io::Result<bool> {
        let refuse = |code, text: &str| (code, text.to_string());
        let early = if !arg.is_empty() {
            Some(refuse(501, "5.5.4 Syntax: DATA (no argument)"))
        } else if self.from.is_none() {
            Some(refuse(503, "5.5.1 Need MAIL FROM first"))
        } else if self.rcpts.is_empty() {
            Some(refuse(554, "5.5.1 No valid recipients"))
        } else if !self.has_room(0) {
            Some(refuse(
                452,
                "4.3.1 Insufficient system storage, try again later",
            ))
        } else {
            None
        };
        if let Some((code, text)) = early {
            if code >= 500 {
                self.errors += 1;
            }
            reply(out, code, &text).await?;
            return Ok(false);
        }
        reply(out, 354, "End data with <CR><LF>.<CR><LF>").await?;
        let end = self.read_data(out).await?;
        let message = match end {
            DataEnd::Message(m) => m,
            DataEnd::Closed => return Ok(true),
            DataEnd::TooBig => {
                self.reset();
                reply(
                    out,
                    552,
                    &format!("5.3.4 Message too big (limit {} bytes)", self.s.max_size),
                )
                .await?;
                return Ok(false);
            }
            DataEnd::LineTooLong => {
                self.reset();
                reply(out, 500, "5.5.6 Text line too long").await?;
                return Ok(false);
            }
        };
        if hops(&message) > MAX_HOPS {
            self.reset();
            reply(out, 554, "5.4.6 Too many hops (Received lines): mail loop?").await?;
            return Ok(false);
        }
        let from = self.from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        let protocol = match (self.esmtp, self.user.is_some()) {
            (true, true) => "ESMTPA",
            (true, false) => "ESMTP",
            (false, _) => "SMTP",
        };
        let helo = self.helo.clone().unwrap_or_default();
        let r = self
            .s
            .queue
            .accept(
                &from,
                &rcpts,
                &message,
                &helo,
                &self.peer.ip().to_string(),
                protocol,
            )
            .await;
        match r {
            Ok(id) => {
                self.messages += 1;
                reply(out, 250, &format!("2.0.0 OK: queued as {id}")).await?;
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, "cannot queue a message: {e}");
                let (code, text) = if e.raw_os_error() == Some(libc::ENOSPC)
                    || e.raw_os_error() == Some(libc::EDQUOT)
                {
                    (
                        452,
                        "4.3.1 Insufficient system storage, message not accepted",
                    )
                } else {
                    (451, "4.3.0 Local error in processing, message not accepted")
                };
                reply(out, code, text).await?;
            }
        }
        Ok(false)
    }

    async fn read_data<R: In, W: Out>(
        &mut self,
        out: &mut Connection<R, W>,
    ) -> std::io::Result<DataEnd> {
        let mut reader = DotReader::default();
        let mut too_big = false;
        let mut too_long = false;
        loop {
            match out.line(MAX_DATA_LINE).await? {
                Next::Item(Line::Complete(l)) => {
                    if too_big || too_long {
                        // Keep reading to the end; discard the text.
                        if l == b"." {
                            break;
                        }
                        continue;
                    }
                    if reader.line(&l) {
                        break;
                    }
                    if reader.data.len() as u64 > self.s.max_size {
                        too_big = true;
                        reader.data = Vec::new();
                    }
                }
                Next::Item(Line::TooLong) => too_long = true,
                Next::Closed | Next::Idle => return Ok(DataEnd::Closed),
            }
        }
        Ok(if too_big {
            DataEnd::TooBig
        } else if too_long {
            DataEnd::LineTooLong
        } else {
            DataEnd::Message(reader.data)
        })
    }

    /// AUTH PLAIN and LOGIN (RFC 4954, RFC 4616).
    async fn auth<R: In, W: Out>(
        &mut self,
        arg: &str,
        out: &mut Connection<R, W>,
    ) -> std::io::Result<(u16, String)> {
        if !self.esmtp {
            return Ok((503, "5.5.1 Send EHLO first".into()));
        }
        if self.user.is_some() {
            return Ok((503, "5.5.1 Already authenticated".into()));
        }
        if self.from.is_some() {
            return Ok((503, "5.5.1 Not during a mail transaction".into()));
        }
        let (mech, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
            None => (arg.to_ascii_uppercase(), None),
        };
        let (user, pass) = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) => i,
                    None => match self.challenge(out, "").await? {
                        Some(r) => r,
                        None => return Ok((501, "5.7.0 Authentication cancelled".into())),
                    },
                };
                match sasl::plain(&resp) {
                    Ok(c) => (c.user, c.password),
                    Err(e) => return Ok((501, format!("5.5.2 {e}"))),
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => Some(i),
                    None => self.challenge(out, "VXNlcm5hbWU6").await?,
                };
                let Some(user) = user else {
                    return Ok((501, "5.7.0 Authentication cancelled".into()));
                };
                let Some(pass) = self.challenge(out, "UGFzc3dvcmQ6").await? else {
                    return Ok((501, "5.7.0 Authentication cancelled".into()));
                };
                match (sasl::login_field(&user), sasl::login_field(&pass)) {
                    (Ok(u), Ok(p)) => (u, p),
                    (Err(e), _) | (_, Err(e)) => return Ok((501, format!("5.5.2 {e}"))),
                }
            }
            "" => return Ok((501, "5.5.4 Syntax: AUTH mechanism".into())),
            _ => {
                return Ok((
                    504,
                    format!("5.5.4 Mechanism {mech} not supported (PLAIN, LOGIN)"),
                ))
            }
        };
        let ok = self
            .s
            .users
            .verify_off_loop(&user, &self.s.domain, &pass)
            .await;
        match ok {
            Some(name) => {
                tracing::info!(peer = %self.peer, user = %name, "smtp auth ok");
                self.user = Some(name);
                Ok((235, "2.7.0 Authentication successful".into()))
            }
            None => {
                tracing::info!(peer = %self.peer, user = %user, "smtp auth failed");
                self.errors += 1;
                Ok((535, "5.7.8 Authentication credentials invalid".into()))
            }
        }
    }

    /// Send a 334 challenge and read the client's line; `None` if cancelled.
    async fn challenge<R: In, W: Out>(
        &mut self,
        out: &mut Connection<R, W>,
        text: &str,
    ) -> std::io::Result<Option<String>> {
        // "334 " with its space even when the text is empty (RFC 4954 §4).
        out.send(format!("334 {text}\r\n").as_bytes()).await?;
        match out.line(MAX_COMMAND_LINE).await? {
            Next::Item(Line::Complete(l)) if l != b"*" => {
                Ok(Some(String::from_utf8_lossy(&l).trim().to_string()))
            }
            _ => Ok(None),
        }
    }
}

/// More Received lines than this means a mail loop (RFC 5321 §6.3).
const MAX_HOPS: usize = 30;

/// Received fields in a message's header section.
fn hops(message: &[u8]) -> usize {
    applab_proto::message::field_values(message, "received").len()
}

async fn reply<R: In, W: Out>(
    out: &mut Connection<R, W>,
    code: u16,
    text: &str,
) -> std::io::Result<()> {
    out.send(&encode_reply(code, &[text])).await
}

async fn multi_reply<R: In, W: Out>(
    out: &mut Connection<R, W>,
    code: u16,
    lines: &[String],
) -> std::io::Result<()> {
    out.send(&encode_reply(code, lines)).await
}

#[cfg(test)]
mod tests {
    use super::super::conn::pipe::converse;
    use super::*;

    #[test]
    fn hops_are_counted_in_the_header_only() {
        let m = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: body\r\n";
        assert_eq!(hops(m), 2);
    }

    /// A server for b.lab over a scratch queue (never run: nothing relays).
    fn server(dir: &std::path::Path) -> Server {
        let store = super::super::store::Store::open(dir, "test").unwrap();
        let users = crate::mail::users::bob();
        let settings = super::super::queue::Settings {
            domain: "b.lab".into(),
            hostname: "mail.b.lab".into(),
            resolver: Some("127.0.0.1:9".into()),
            relay_port: 25,
            schedule: super::super::schedule::Schedule::default(),
            connect_timeout: Duration::from_secs(1),
        };
        let queue = Queue::open(store, settings, users.clone()).unwrap();
        Server {
            domain: "b.lab".into(),
            hostname: "mail.b.lab".into(),
            users,
            relay_from: vec!["10.1.0.0/24".parse().unwrap()],
            max_size: 1000,
            queue,
            idle: Duration::from_secs(5),
            max_connections: 10,
        }
    }

    /// One session from `peer` over a pipe, the client's bytes sent at once;
    /// the server's reply codes in order.
    async fn codes(s: &Server, peer: &str, client: &[u8]) -> Vec<u16> {
        let peer: SocketAddr = peer.parse().unwrap();
        let out = converse(s.idle, &[client], |mut conn| async move {
            Session::new(s, peer).run(&mut conn).await
        })
        .await;
        out.lines()
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .map(|l| l[..3].parse().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn handshake_transfer_closure_and_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let out = "10.9.9.9:1000";
        // Out of order: MAIL before HELO, RCPT before MAIL, DATA before RCPT.
        let c = codes(
            &s,
            out,
            b"MAIL FROM:<a@x.lab>\r\nEHLO me\r\nRCPT TO:<bob@b.lab>\r\nDATA\r\nQUIT\r\n",
        )
        .await;
        assert_eq!(c, [220, 503, 250, 503, 503, 221]);
        // A whole transaction, pipelined, for a local user: 354 then 250.
        let c = codes(
            &s,
            out,
            b"EHLO me\r\nMAIL FROM:<a@x.lab>\r\nRCPT TO:<bob@b.lab>\r\nDATA\r\nSubject: hi\r\n\r\n..x\r\n.\r\nQUIT\r\n",
        )
        .await;
        assert_eq!(c, [220, 250, 250, 250, 354, 250, 221]);
        // Unknown users 550; relaying for a stranger 550; RSET ends the transaction.
        let c = codes(
            &s,
            out,
            b"HELO me\r\nMAIL FROM:<a@x.lab>\r\nRCPT TO:<nobody@b.lab>\r\nRCPT TO:<c@elsewhere.lab>\r\nRSET\r\nRCPT TO:<bob@b.lab>\r\nQUIT\r\n",
        )
        .await;
        assert_eq!(c, [220, 250, 250, 550, 550, 250, 503, 221]);
        // A trusted network may relay.
        let c = codes(
            &s,
            "10.1.0.5:1000",
            b"HELO me\r\nMAIL FROM:<a@b.lab>\r\nRCPT TO:<c@elsewhere.lab>\r\nQUIT\r\n",
        )
        .await;
        assert_eq!(c, [220, 250, 250, 250, 221]);
    }

    #[tokio::test]
    async fn limits_too_long_too_big_and_auth() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path());
        let out = "10.9.9.9:1000";
        // A command line over 512 octets is one 500, whatever follows it.
        let mut long = vec![b'x'; 600];
        long.extend_from_slice(b"QUIT\r\nNOOP\r\nQUIT\r\n");
        assert_eq!(codes(&s, out, &long).await, [220, 500, 250, 221]);
        // A message over max_size (1000): read to its end, then 552.
        let mut big = b"HELO me\r\nMAIL FROM:<a@x.lab>\r\nRCPT TO:<bob@b.lab>\r\nDATA\r\n".to_vec();
        big.extend(
            std::iter::repeat_n(&b"0123456789012345678901234567890123456789\r\n"[..], 40).flatten(),
        );
        big.extend_from_slice(b".\r\nNOOP\r\n");
        assert_eq!(
            codes(&s, out, &big).await,
            [220, 250, 250, 250, 354, 552, 250]
        );
        // AUTH PLAIN: wrong then right; an authenticated user may relay.
        let bad = format!("AUTH PLAIN {}\r\n", sasl::encode_plain("bob", "no"));
        let good = format!("AUTH PLAIN {}\r\n", sasl::encode_plain("bob", "pw"));
        let script = format!(
            "EHLO me\r\n{bad}{good}MAIL FROM:<bob@b.lab>\r\nRCPT TO:<c@elsewhere.lab>\r\nQUIT\r\n"
        );
        assert_eq!(
            codes(&s, out, script.as_bytes()).await,
            [220, 250, 535, 235, 250, 250, 221]
        );
        // AUTH needs EHLO first.
        assert_eq!(
            codes(&s, out, format!("HELO me\r\n{good}").as_bytes()).await,
            [220, 250, 503]
        );
    }
}
