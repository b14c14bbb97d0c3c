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

use super::conn::{Connection, Next};
use super::maildir::{self, Entry};
use super::store::Store;
use super::users::Users;
use applab_proto::dot::stuff;
use applab_proto::line::Line;
use applab_proto::pop3::{Command, MAX_COMMAND_LINE};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

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
                let mut conn = super::conn::TcpConnection::tcp(sock, server.idle);
                if let Err(e) = session(&server, &mut conn, peer).await {
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

async fn session<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    s: &Server,
    out: &mut Connection<R, W>,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let mut user: Option<String> = None;
    let mut drop_: Option<Maildrop> = None;
    let mut errors = 0u32;
    tracing::info!(%peer, "pop3 connection");
    out.send_line(&format!("+OK {} POP3 server ready", s.hostname))
        .await?;
    loop {
        // Next command line; replies go out when the input runs dry.
        let l = match out.line(MAX_COMMAND_LINE).await? {
            Next::Item(Line::Complete(l)) => l,
            Next::Item(Line::TooLong) => {
                // The whole over-long line is one refused command.
                errors += 1;
                out.send_line("-ERR command line too long").await?;
                if errors >= MAX_ERRORS {
                    out.send_line("-ERR too many errors, closing (nothing deleted)")
                        .await?;
                    break;
                }
                continue;
            }
            Next::Idle => {
                out.send_line("-ERR idle too long, closing (nothing deleted)")
                    .await?;
                break;
            }
            Next::Closed => {
                // Dropped without QUIT: no UPDATE state, nothing deleted.
                if drop_.is_some() {
                    tracing::info!(%peer, "pop3 connection lost before QUIT: nothing deleted");
                }
                return Ok(());
            }
        };
        let cmd = Command::parse(&l);
        tracing::debug!(%peer, verb = %cmd.verb, "pop3 command");
        let arg = cmd.args.first();
        let reply: String = match (cmd.verb.as_str(), drop_.as_mut()) {
            ("CAPA", _) => {
                out.send_line("+OK capability list follows").await?;
                let caps =
                    b"USER\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION applab\r\n";
                out.send(&stuff(caps)).await?;
                continue;
            }
            ("QUIT", None) => {
                out.send_line(&format!("+OK {} POP3 server signing off", s.hostname))
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
                    out.send_line(&format!(
                        "-ERR some deleted messages not removed ({failed})"
                    ))
                    .await?;
                } else {
                    out.send_line(&format!(
                        "+OK {} POP3 server signing off ({left} messages left)",
                        s.hostname
                    ))
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
                    let name = s.users.verify_off_loop(&u, &s.domain, p).await;
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
                    out.send_line(&format!("+OK {n} messages ({size} octets)"))
                        .await?;
                    let mut body = String::new();
                    for (i, e) in d.live() {
                        body.push_str(&format!("{} {}\r\n", i + 1, e.size));
                    }
                    out.send(&stuff(body.as_bytes())).await?;
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
                    out.send_line("+OK unique-id listing follows").await?;
                    let mut body = String::new();
                    for (i, e) in d.live() {
                        body.push_str(&format!("{} {}\r\n", i + 1, uid(e)));
                    }
                    out.send(&stuff(body.as_bytes())).await?;
                    continue;
                }
            }
            ("RETR", Some(d)) => match d.get(arg) {
                Ok(i) => match std::fs::read(&d.messages[i].path) {
                    Ok(m) => {
                        out.send_line(&format!("+OK {} octets", m.len())).await?;
                        out.send(&stuff(&m)).await?;
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
                            out.send_line("+OK top of message follows").await?;
                            out.send(&stuff(&top(&m, nl))).await?;
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
        out.send_line(&reply).await?;
        if errors >= MAX_ERRORS {
            out.send_line("-ERR too many errors, closing (nothing deleted)")
                .await?;
            break;
        }
    }
    out.close().await
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

#[cfg(test)]
mod tests {
    use super::super::conn::pipe::converse;
    use super::*;

    #[test]
    fn top_keeps_the_header_and_n_body_lines() {
        let m = b"Subject: x\r\n\r\none\r\ntwo\r\nthree\r\n";
        assert_eq!(top(m, 0), b"Subject: x\r\n\r\n");
        assert_eq!(top(m, 2), b"Subject: x\r\n\r\none\r\ntwo\r\n");
        assert_eq!(top(m, 9), m);
    }

    /// A server over a scratch store holding `n` messages for bob.
    fn server(dir: &std::path::Path, n: usize) -> Server {
        let store = Store::open(dir, "test").unwrap();
        for i in 0..n {
            let m = format!("Subject: m{i}\r\n\r\n.dot line {i}\r\n");
            store
                .deliver_local(
                    "bob",
                    &format!("id{i}"),
                    0,
                    1_700_000_000 + i as u64,
                    m.as_bytes(),
                )
                .unwrap();
        }
        let users = crate::mail::users::bob();
        Server {
            domain: "b.lab".into(),
            hostname: "mail.b.lab".into(),
            users,
            store: Arc::new(store),
            locks: Mutex::default(),
            idle: Duration::from_secs(5),
            max_connections: 10,
        }
    }

    /// One session over a pipe, each chunk read by the server on its own.
    async fn talk(s: &Server, chunks: &[&[u8]]) -> String {
        let peer: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        converse(s.idle, chunks, |mut conn| async move {
            session(s, &mut conn, peer).await
        })
        .await
    }

    fn left(s: &Server) -> usize {
        maildir::list(&s.store.maildir("bob")).unwrap().len()
    }

    /// The defect this connection type fixed: `<300 bytes>DELE 1` split
    /// at any byte is one refused line, never a DELE.
    #[tokio::test]
    async fn an_over_long_line_split_at_every_byte_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 2);
        let mut line = vec![b'x'; 300];
        line.extend_from_slice(b"DELE 1\r\n");
        for cut in 0..=line.len() {
            let out = talk(
                &s,
                &[
                    b"USER bob\r\nPASS pw\r\n",
                    &line[..cut],
                    &line[cut..],
                    b"QUIT\r\n",
                ],
            )
            .await;
            assert!(
                out.contains("-ERR command line too long"),
                "cut {cut}: {out}"
            );
            assert!(!out.contains("deleted"), "cut {cut}: {out}");
            assert_eq!(
                out.matches("\r\n").count(),
                5,
                "cut {cut}: one answer per line: {out}"
            );
            assert_eq!(left(&s), 2, "cut {cut}");
        }
    }

    #[tokio::test]
    async fn the_states_authorization_transaction_update() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 2);
        // AUTHORIZATION: nothing but USER/PASS (and QUIT, CAPA).
        let out = talk(&s, &[b"STAT\r\nPASS pw\r\nUSER bob\r\nPASS no\r\nQUIT\r\n"]).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "-ERR log in first (USER and PASS)");
        assert_eq!(lines[2], "-ERR send USER first");
        assert_eq!(lines[4], "-ERR [AUTH] invalid user name or password");
        assert!(lines[5].starts_with("+OK"));
        // TRANSACTION: a DELE takes effect only at QUIT (UPDATE)...
        let out = talk(
            &s,
            &[b"USER bob\r\nPASS pw\r\nDELE 1\r\nSTAT\r\nRETR 1\r\n"],
        )
        .await;
        assert!(
            out.contains("+OK message 1 deleted (at QUIT)\r\n+OK 1 "),
            "{out}"
        );
        assert!(
            out.contains("-ERR"),
            "a deleted message cannot be read: {out}"
        );
        assert_eq!(left(&s), 2, "dropped without QUIT: nothing deleted");
        // ...RSET undoes it...
        let out = talk(&s, &[b"USER bob\r\nPASS pw\r\nDELE 1\r\nRSET\r\nQUIT\r\n"]).await;
        assert!(out.contains("+OK maildrop has 2 messages"), "{out}");
        assert_eq!(left(&s), 2);
        // ...and QUIT removes it; RETR un-stuffs nothing the client must see twice.
        let out = talk(
            &s,
            &[b"USER bob\r\nPASS pw\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n"],
        )
        .await;
        assert!(
            out.contains("\r\n..dot line 1\r\n.\r\n"),
            "stuffed on the wire: {out}"
        );
        assert!(out.contains("(1 messages left)"), "{out}");
        assert_eq!(left(&s), 1);
    }

    #[tokio::test]
    async fn listings_of_an_empty_maildrop_hold_no_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 1);
        let out = talk(
            &s,
            &[b"USER bob\r\nPASS pw\r\nDELE 1\r\nLIST\r\nUIDL\r\nQUIT\r\n"],
        )
        .await;
        assert!(
            out.contains(
                "+OK 0 messages (0 octets)\r\n.\r\n+OK unique-id listing follows\r\n.\r\n"
            ),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_second_session_finds_the_maildrop_locked() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 1);
        s.locks.lock().unwrap().insert("bob".into());
        let out = talk(&s, &[b"USER bob\r\nPASS pw\r\n"]).await;
        assert!(out.contains("-ERR [IN-USE]"), "{out}");
    }
}
