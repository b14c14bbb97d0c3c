//! The POP3 server (RFC 1939, CAPA from RFC 2449): how Bob's user agent
//! pulls his mail from his server.
//!
//! A session goes through three states, as the lecture tells: AUTHORIZATION
//! (USER, PASS), TRANSACTION (STAT, LIST, RETR, DELE, TOP, UIDL, NOOP, RSET)
//! and, after QUIT, UPDATE, where the messages marked with DELE are really
//! removed. A connection that drops before QUIT removes nothing. While a
//! session holds a mailbox it is locked: a second session is refused.
//! Messages are numbered from 1 in the order they arrived, fixed for the
//! session; UIDL gives each a name that never changes, which is how a
//! "download and keep" client knows what it already has.

use super::maildir::{self, Entry};
use super::store::Store;
use super::users::Users;
use applab_proto::pop3::{crlf_line, stuff, Command, MAX_COMMAND_LINE};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    pub domain: String,
    pub hostname: String,
    pub users: Users,
    pub store: Arc<Store>,
    /// Mailboxes held by a session now.
    pub locks: Mutex<HashSet<String>>,
    /// RFC 1939 §3: at least 10 minutes of inactivity before closing.
    pub idle: Duration,
    pub max_connections: usize,
}

/// Refused commands before the session is ended.
const MAX_ERRORS: u32 = 20;

pub async fn serve(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    let max = server.max_connections;
    crate::accept::accept_loop(
        listener,
        max,
        b"-ERR [SYS/TEMP] too many connections\r\n",
        "pop3",
        move |sock, peer| {
            let server = server.clone();
            async move {
                if let Err(e) = session(&server, sock, peer).await {
                    tracing::debug!(%peer, "pop3 session ended: {e}");
                }
            }
        },
    )
    .await
}

/// Releases the mailbox lock however the session ends.
struct Lock<'a> {
    server: &'a Server,
    user: String,
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        self.server.locks.lock().expect("locks").remove(&self.user);
    }
}

struct Maildrop<'a> {
    _lock: Lock<'a>,
    user: String,
    messages: Vec<Entry>,
    deleted: Vec<bool>,
}

impl Maildrop<'_> {
    /// The message numbered `arg` (from 1), unless deleted.
    fn get(&self, arg: Option<&String>) -> Result<usize, &'static str> {
        let n: usize = arg
            .and_then(|a| a.parse().ok())
            .ok_or("-ERR give a message number")?;
        if n == 0 || n > self.messages.len() {
            return Err("-ERR no such message");
        }
        if self.deleted[n - 1] {
            return Err("-ERR message already deleted");
        }
        Ok(n - 1)
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }
}

async fn session(s: &Server, sock: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (mut rd, wr) = sock.into_split();
    let mut out = BufWriter::new(wr);
    let mut buf: Vec<u8> = Vec::new();
    let mut user: Option<String> = None;
    let mut drop_: Option<Maildrop> = None;
    let mut errors = 0u32;
    tracing::info!(%peer, "pop3 connection");
    line(&mut out, &format!("+OK {} POP3 server ready", s.hostname)).await?;
    loop {
        // Next command line; replies go out when the input runs dry.
        let cmd_line = loop {
            match crlf_line(&buf, MAX_COMMAND_LINE) {
                Ok(Some((n, used))) => {
                    let l = buf[..n].to_vec();
                    buf.drain(..used);
                    break Some(l);
                }
                Ok(None) => {}
                Err(_) => {
                    // Too long: refuse it and drop what came so far of it.
                    let end = buf.windows(2).position(|w| w == b"\r\n");
                    match end {
                        Some(p) => {
                            buf.drain(..p + 2);
                        }
                        None => buf.clear(),
                    }
                    errors += 1;
                    line(&mut out, "-ERR command line too long").await?;
                    continue;
                }
            }
            out.flush().await?;
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(s.idle, rd.read(&mut chunk)).await {
                Err(_) => {
                    line(&mut out, "-ERR idle too long, closing (nothing deleted)").await?;
                    out.flush().await?;
                    break None;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break None,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(l) = cmd_line else {
            // Dropped without QUIT: no UPDATE state, nothing deleted.
            if drop_.is_some() {
                tracing::info!(%peer, "pop3 connection lost before QUIT: nothing deleted");
            }
            return Ok(());
        };
        let cmd = Command::parse(&l);
        tracing::debug!(%peer, verb = %cmd.verb, "pop3 command");
        let arg = cmd.args.first();
        let reply: String = match (cmd.verb.as_str(), drop_.as_mut()) {
            ("CAPA", _) => {
                line(&mut out, "+OK capability list follows").await?;
                let caps =
                    b"USER\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION applab\r\n";
                out.write_all(&stuff(caps)).await?;
                continue;
            }
            ("QUIT", None) => {
                line(
                    &mut out,
                    &format!("+OK {} POP3 server signing off", s.hostname),
                )
                .await?;
                break;
            }
            ("QUIT", Some(d)) => {
                // UPDATE: only now do deletions take effect.
                let mut failed = 0;
                let mut removed = 0;
                for (i, e) in d.messages.iter().enumerate() {
                    if d.deleted[i] {
                        match std::fs::remove_file(&e.path) {
                            Ok(()) => removed += 1,
                            Err(err) if err.kind() == std::io::ErrorKind::NotFound => removed += 1,
                            Err(_) => failed += 1,
                        }
                    }
                }
                let left = d.messages.len() - removed - failed;
                tracing::info!(%peer, user = %d.user, removed, left, "pop3 update");
                if failed > 0 {
                    line(
                        &mut out,
                        &format!("-ERR some deleted messages not removed ({failed})"),
                    )
                    .await?;
                } else {
                    line(
                        &mut out,
                        &format!(
                            "+OK {} POP3 server signing off ({left} messages left)",
                            s.hostname
                        ),
                    )
                    .await?;
                }
                break;
            }
            ("USER", None) => match arg {
                Some(u) => {
                    user = Some(u.clone());
                    // Same answer for every name: no probing for users.
                    format!("+OK send PASS for {u}")
                }
                None => "-ERR give a user name".into(),
            },
            ("PASS", None) => match (user.take(), arg) {
                (Some(u), Some(p)) => {
                    let users = s.users.clone();
                    let (dom, pass) = (s.domain.clone(), p.clone());
                    let name = tokio::task::spawn_blocking(move || users.verify(&u, &dom, &pass))
                        .await
                        .ok()
                        .flatten();
                    match name {
                        None => "-ERR [AUTH] invalid user name or password".into(),
                        Some(name) => {
                            if !s.locks.lock().expect("locks").insert(name.clone()) {
                                "-ERR [IN-USE] mailbox already locked by another session".into()
                            } else {
                                let lock = Lock {
                                    server: s,
                                    user: name.clone(),
                                };
                                match maildir::list(&s.store.maildir(&name)) {
                                    Ok(messages) => {
                                        let total: u64 = messages.iter().map(|m| m.size).sum();
                                        let n = messages.len();
                                        tracing::info!(%peer, user = %name, messages = n, "pop3 login");
                                        drop_ = Some(Maildrop {
                                            _lock: lock,
                                            user: name.clone(),
                                            deleted: vec![false; n],
                                            messages,
                                        });
                                        format!("+OK {name}'s maildrop has {n} messages ({total} octets)")
                                    }
                                    Err(e) => {
                                        format!("-ERR [SYS/TEMP] cannot open the mailbox: {e}")
                                    }
                                }
                            }
                        }
                    }
                }
                (None, _) => "-ERR send USER first".into(),
                (_, None) => "-ERR give a password".into(),
            },
            ("STAT", Some(d)) => {
                let (n, size) = d
                    .live()
                    .fold((0, 0u64), |(n, s), (_, e)| (n + 1, s + e.size));
                format!("+OK {n} {size}")
            }
            ("LIST", Some(d)) => {
                if arg.is_some() {
                    match d.get(arg) {
                        Ok(i) => format!("+OK {} {}", i + 1, d.messages[i].size),
                        Err(e) => e.into(),
                    }
                } else {
                    let (n, size) = d
                        .live()
                        .fold((0, 0u64), |(n, s), (_, e)| (n + 1, s + e.size));
                    line(&mut out, &format!("+OK {n} messages ({size} octets)")).await?;
                    let mut body = String::new();
                    for (i, e) in d.live() {
                        body.push_str(&format!("{} {}\r\n", i + 1, e.size));
                    }
                    out.write_all(&stuff(body.as_bytes())).await?;
                    continue;
                }
            }
            ("UIDL", Some(d)) => {
                if arg.is_some() {
                    match d.get(arg) {
                        Ok(i) => format!("+OK {} {}", i + 1, uid(&d.messages[i])),
                        Err(e) => e.into(),
                    }
                } else {
                    line(&mut out, "+OK unique-id listing follows").await?;
                    let mut body = String::new();
                    for (i, e) in d.live() {
                        body.push_str(&format!("{} {}\r\n", i + 1, uid(e)));
                    }
                    out.write_all(&stuff(body.as_bytes())).await?;
                    continue;
                }
            }
            ("RETR", Some(d)) => match d.get(arg) {
                Ok(i) => match std::fs::read(&d.messages[i].path) {
                    Ok(m) => {
                        line(&mut out, &format!("+OK {} octets", m.len())).await?;
                        out.write_all(&stuff(&m)).await?;
                        continue;
                    }
                    Err(e) => format!("-ERR [SYS/TEMP] cannot read the message: {e}"),
                },
                Err(e) => e.into(),
            },
            ("TOP", Some(d)) => {
                let lines: Option<usize> = cmd.args.get(1).and_then(|a| a.parse().ok());
                match (d.get(arg), lines) {
                    (Ok(i), Some(nl)) => match std::fs::read(&d.messages[i].path) {
                        Ok(m) => {
                            line(&mut out, "+OK top of message follows").await?;
                            out.write_all(&stuff(&top(&m, nl))).await?;
                            continue;
                        }
                        Err(e) => format!("-ERR [SYS/TEMP] cannot read the message: {e}"),
                    },
                    (Err(e), _) => e.into(),
                    (_, None) => "-ERR usage: TOP msg lines".into(),
                }
            }
            ("DELE", Some(d)) => match d.get(arg) {
                Ok(i) => {
                    d.deleted[i] = true;
                    format!("+OK message {} deleted (at QUIT)", i + 1)
                }
                Err(e) => e.into(),
            },
            ("RSET", Some(d)) => {
                d.deleted.iter_mut().for_each(|x| *x = false);
                let (n, size) = d
                    .live()
                    .fold((0, 0u64), |(n, s), (_, e)| (n + 1, s + e.size));
                format!("+OK maildrop has {n} messages ({size} octets)")
            }
            ("NOOP", Some(_)) => "+OK".into(),
            ("STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP", None) => {
                "-ERR log in first (USER and PASS)".into()
            }
            ("USER" | "PASS", Some(_)) => "-ERR already logged in".into(),
            ("APOP" | "AUTH" | "STLS", _) => format!("-ERR {} is not supported here", cmd.verb),
            _ => "-ERR unknown command".into(),
        };
        if reply.starts_with("-ERR") {
            errors += 1;
        }
        line(&mut out, &reply).await?;
        if errors >= MAX_ERRORS {
            line(&mut out, "-ERR too many errors, closing (nothing deleted)").await?;
            break;
        }
    }
    out.flush().await?;
    let _ = out.shutdown().await;
    Ok(())
}

/// The UIDL name: the Maildir unique part, in the characters RFC 1939 allows.
fn uid(e: &Entry) -> String {
    e.base
        .chars()
        .filter(|c| ('\x21'..='\x7e').contains(c))
        .take(70)
        .collect()
}

/// The header section, the blank line, and the first `n` body lines.
fn top(m: &[u8], n: usize) -> Vec<u8> {
    let head_end = applab_proto::message::header_end(m).unwrap_or(m.len());
    let mut out = m[..head_end].to_vec();
    let body = &m[head_end..];
    let mut taken = 0;
    let mut i = 0;
    while taken < n && i < body.len() {
        let end = body[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| i + p + 2)
            .unwrap_or(body.len());
        out.extend_from_slice(&body[i..end]);
        i = end;
        taken += 1;
    }
    out
}

async fn line(out: &mut BufWriter<OwnedWriteHalf>, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes()).await?;
    out.write_all(b"\r\n").await
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_keeps_the_header_and_n_body_lines() {
        let m = b"Subject: x\r\n\r\none\r\ntwo\r\nthree\r\n";
        assert_eq!(super::top(m, 0), b"Subject: x\r\n\r\n");
        assert_eq!(super::top(m, 2), b"Subject: x\r\n\r\none\r\ntwo\r\n");
        assert_eq!(super::top(m, 9), m);
    }
}
