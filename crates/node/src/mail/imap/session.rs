//! One IMAP session (RFC 3501 §3): its state (not authenticated,
//! authenticated, selected, logout), the command loop, and the dispatch of
//! each command to its family in `op`.

use super::view::Selected;
use super::{Server, CAPABILITIES, MAX_BAD};
use crate::mail::conn::{Connection, In, Next, Out};
use applab_proto::imap::{parse, ParseError, Piece, Received, Receiver, ReceiverLimits, Token};
use std::net::SocketAddr;

enum Read {
    Command(Vec<Piece>),
    /// A line or literal too long: answered BAD, input skipped to its end.
    TooLong,
    Closed,
}

/// The next command, its literals read (with a `+` before each
/// synchronizing one).
async fn read_command<R: In, W: Out>(
    conn: &mut Connection<R, W>,
    rx: &mut Receiver,
) -> std::io::Result<Read> {
    loop {
        match conn.next(|l| rx.next(l)).await? {
            Next::Item(Received::Whole(a)) => return Ok(Read::Command(a.pieces)),
            Next::Item(Received::Continue) => conn.send(b"+ Ready for literal data\r\n").await?,
            Next::Item(Received::TooLong) => return Ok(Read::TooLong),
            // Desync: a LITERAL+ over the limit is on its way; cannot resync.
            Next::Item(Received::Desync) | Next::Closed | Next::Idle => return Ok(Read::Closed),
        }
    }
}

pub(super) struct Session<'a> {
    pub(super) s: &'a Server,
    pub(super) peer: SocketAddr,
    pub(super) user: Option<String>,
    pub(super) sel: Option<Selected>,
    pub(super) bad: u32,
}

/// A tagged result: OK, NO or BAD with its text.
pub(super) enum Done {
    Ok(String),
    No(String),
    Bad(String),
}

impl<'a> Session<'a> {
    pub(super) async fn run<R: In, W: Out>(
        s: &'a Server,
        wr: &mut Connection<R, W>,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        let mut rx = Receiver::new(ReceiverLimits::SERVER);
        let mut me = Session {
            s,
            peer,
            user: None,
            sel: None,
            bad: 0,
        };
        tracing::info!(%peer, "imap connection");
        wr.send(
            format!(
                "* OK [CAPABILITY {CAPABILITIES}] {} IMAP4rev1 ready\r\n",
                s.hostname
            )
            .as_bytes(),
        )
        .await?;
        loop {
            let pieces = match read_command(wr, &mut rx).await? {
                Read::Command(p) => p,
                Read::TooLong => {
                    me.bad += 1;
                    wr.send(b"* BAD line or literal too long\r\n").await?;
                    continue;
                }
                Read::Closed => break,
            };
            let cmd = match parse(&pieces) {
                Ok(c) => c,
                Err(ParseError::NoTag) => {
                    me.bad += 1;
                    wr.send(b"* BAD no tag (a command is: tag NAME arguments)\r\n")
                        .await?;
                    if me.bad >= MAX_BAD {
                        break;
                    }
                    continue;
                }
                Err(ParseError::Bad(tag, why)) => {
                    me.bad += 1;
                    wr.send(format!("{tag} BAD {why}\r\n").as_bytes()).await?;
                    if me.bad >= MAX_BAD {
                        break;
                    }
                    continue;
                }
            };
            tracing::debug!(peer = %me.peer, tag = %cmd.tag, name = %cmd.name, "imap command");
            let mut out = Vec::new();
            let (done, logout) = me.command(&cmd.name, &cmd.args, &mut out, wr).await?;
            let (word, text) = match done {
                Done::Ok(t) => ("OK", t),
                Done::No(t) => ("NO", t),
                Done::Bad(t) => {
                    me.bad += 1;
                    ("BAD", t)
                }
            };
            out.extend_from_slice(format!("{} {word} {text}\r\n", cmd.tag).as_bytes());
            wr.send(&out).await?;
            if logout {
                break;
            }
            if me.bad >= MAX_BAD {
                wr.send(b"* BYE too many errors\r\n").await?;
                break;
            }
        }
        wr.close().await?;
        if let Some(sel) = &me.sel {
            sel.folder.state.lock().expect("folder").flush();
        }
        tracing::info!(%peer, user = ?me.user, "imap connection closed");
        Ok(())
    }

    /// Run one command; untagged responses go to `out`.
    async fn command<R: In, W: Out>(
        &mut self,
        name: &str,
        args: &[Token],
        out: &mut Vec<u8>,
        wr: &mut Connection<R, W>,
    ) -> std::io::Result<(Done, bool)> {
        let arg = |i: usize| args.get(i).and_then(Token::as_text);
        let n_args = |n: usize| args.len() == n;
        // Any state.
        match name {
            "CAPABILITY" => {
                out.extend_from_slice(format!("* CAPABILITY {CAPABILITIES}\r\n").as_bytes());
                return Ok((Done::Ok("CAPABILITY completed".into()), false));
            }
            "NOOP" | "CHECK" if name == "NOOP" || self.sel.is_some() => {
                if let Some(sel) = self.sel.as_mut() {
                    sel.updates(true, false, out);
                }
                return Ok((Done::Ok(format!("{name} completed")), false));
            }
            "LOGOUT" => {
                out.extend_from_slice(
                    format!("* BYE {} IMAP4rev1 server logging out\r\n", self.s.hostname)
                        .as_bytes(),
                );
                return Ok((Done::Ok("LOGOUT completed".into()), true));
            }
            _ => {}
        }
        let Some(user) = self.user.clone() else {
            return Ok((
                match name {
                    "LOGIN" => match (arg(0), arg(1), n_args(2)) {
                        (Some(u), Some(p), true) => self.login(&u, &p).await,
                        _ => Done::Bad("usage: LOGIN user password".into()),
                    },
                    "AUTHENTICATE" => self.authenticate(args, wr).await?,
                    "STARTTLS" => Done::No("TLS is not offered in this lab".into()),
                    _ => Done::Bad(format!("{name} needs LOGIN first (or is unknown)")),
                },
                false,
            ));
        };
        // What changed since the client last looked comes first, so a
        // command's results cover every message it could know of.
        let quiet = matches!(name, "FETCH" | "STORE" | "SEARCH");
        if let Some(sel) = self.sel.as_mut() {
            if !matches!(name, "SELECT" | "EXAMINE" | "CLOSE" | "UNSELECT" | "IDLE") {
                sel.updates(!quiet, name == "UID", out);
            }
        }
        let done = match name {
            "LOGIN" | "AUTHENTICATE" => Done::Bad("already authenticated".into()),
            "SELECT" | "EXAMINE" => match (arg(0), n_args(1)) {
                (Some(f), true) => self.select(&user, &f, name == "EXAMINE", out),
                _ => Done::Bad(format!("usage: {name} folder")),
            },
            "CREATE" | "DELETE" | "RENAME" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
                self.manage(&user, name, args)
            }
            "LIST" | "LSUB" => match (arg(0), arg(1)) {
                (Some(r), Some(p)) => {
                    self.list(&user, &r, &p, name == "LSUB", out);
                    Done::Ok(format!("{name} completed"))
                }
                _ => Done::Bad(format!("usage: {name} reference pattern")),
            },
            "STATUS" => match (arg(0), args.get(1)) {
                (Some(f), Some(Token::List(items))) => self.status(&user, &f, items, out),
                _ => Done::Bad("usage: STATUS folder (items)".into()),
            },
            "APPEND" => self.append(&user, args),
            _ if self.sel.is_none() => {
                let known = [
                    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY",
                    "MOVE", "UID", "IDLE",
                ];
                if known.contains(&name) {
                    Done::Bad(format!("{name} needs a selected folder (SELECT first)"))
                } else {
                    Done::Bad(format!("unknown command {name}"))
                }
            }
            "CLOSE" | "UNSELECT" => self.close(name == "CLOSE"),
            "EXPUNGE" => self.expunge(None, out),
            "IDLE" => return Ok((self.idle(wr, out).await?, false)),
            "UID" => self.uid(&user, args, out),
            "FETCH" => self.fetch(args, false, out),
            "STORE" => self.store(args, false, out),
            "SEARCH" => self.search(args, false, out),
            "COPY" => self.copy(&user, args, false, false, out),
            "MOVE" => self.copy(&user, args, false, true, out),
            _ => Done::Bad(format!("unknown command {name}")),
        };
        // Tell the client what other sessions and deliveries changed. Not
        // EXPUNGE during FETCH, STORE or SEARCH: sequence numbers must not
        // shift under them (RFC 3501 §7.4.1).
        if let Some(sel) = self.sel.as_mut() {
            sel.updates(!quiet, name == "UID", out);
        }
        Ok((done, false))
    }

    /// The UID forms (RFC 3501 §6.4.8, RFC 4315's UID EXPUNGE): the same
    /// commands with UIDs in place of sequence numbers.
    fn uid(&mut self, user: &str, args: &[Token], out: &mut Vec<u8>) -> Done {
        let Some(sub) = args.first().and_then(Token::atom_upper) else {
            return Done::Bad("usage: UID FETCH|STORE|SEARCH|COPY|MOVE|EXPUNGE ...".into());
        };
        let rest = &args[1..];
        match sub.as_str() {
            "FETCH" => self.fetch(rest, true, out),
            "STORE" => self.store(rest, true, out),
            "SEARCH" => self.search(rest, true, out),
            "COPY" => self.copy(user, rest, true, false, out),
            "MOVE" => self.copy(user, rest, true, true, out),
            "EXPUNGE" => self.uid_expunge(rest, out),
            _ => Done::Bad(format!("unknown UID command {sub}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::conn::pipe::converse;
    use crate::mail::store::Store;
    use std::sync::Arc;

    fn server(dir: &std::path::Path, n: usize) -> Server {
        let store = Store::open(dir, "test").unwrap();
        for i in 0..n {
            let m = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
            store
                .deliver_local("bob", &format!("id{i}"), 0, 1_700_000_000, m.as_bytes())
                .unwrap();
        }
        let users = crate::mail::users::bob();
        Server::new(
            "b.lab".into(),
            "mail.b.lab".into(),
            users,
            Arc::new(store),
            10,
        )
    }

    async fn talk(s: &Server, chunks: &[&[u8]]) -> String {
        let peer: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        converse(s.idle, chunks, |mut conn| async move {
            Session::run(s, &mut conn, peer).await
        })
        .await
    }

    /// The tagged line of `tag`.
    fn tagged<'a>(out: &'a str, tag: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} in {out}"))
    }

    #[tokio::test]
    async fn states_commands_and_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 3);
        let out = talk(
            &s,
            &[
                b"a SELECT INBOX\r\nb LOGIN bob wrong\r\nc LOGIN bob pw\r\nd FETCH 1 FLAGS\r\n\
                e SELECT inbox\r\nf STORE 2 +FLAGS (\\Deleted)\r\ng UID EXPUNGE 1:2\r\n\
                h FETCH 1:* (UID FLAGS)\r\ni STATUS INBOX (MESSAGES UNSEEN)\r\nj LOGOUT\r\n",
            ],
        )
        .await;
        assert!(out.starts_with("* OK [CAPABILITY "), "{out}");
        assert!(
            tagged(&out, "a").starts_with("a BAD SELECT needs LOGIN"),
            "{out}"
        );
        assert!(
            tagged(&out, "b").starts_with("b NO [AUTHENTICATIONFAILED]"),
            "{out}"
        );
        assert!(tagged(&out, "c").starts_with("c OK"), "{out}");
        assert!(
            tagged(&out, "d").starts_with("d BAD FETCH needs a selected"),
            "{out}"
        );
        assert!(out.contains("* 3 EXISTS\r\n* 3 RECENT\r\n"), "{out}");
        assert_eq!(tagged(&out, "e"), "e OK [READ-WRITE] SELECT completed");
        assert!(
            out.contains("* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\n"),
            "{out}"
        );
        assert!(out.contains("* 2 EXPUNGE\r\ng OK"), "{out}");
        assert!(
            out.contains("* 2 FETCH (UID 3 FLAGS (\\Recent))\r\n"),
            "{out}"
        );
        assert!(
            out.contains("* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2)\r\n"),
            "{out}"
        );
        assert!(
            out.contains("* BYE ") && tagged(&out, "j").starts_with("j OK"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_literal_is_read_whole_however_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 0);
        let msg = b"Subject: hi\r\n\r\nhello\r\n";
        let mut whole = b"a LOGIN bob pw\r\nb APPEND INBOX {".to_vec();
        whole.extend_from_slice(format!("{}}}\r\n", msg.len()).as_bytes());
        whole.extend_from_slice(msg);
        whole.extend_from_slice(b"\r\nc SELECT INBOX\r\nd LOGOUT\r\n");
        for cut in [20, 34, 40, whole.len() - 30] {
            let out = talk(&s, &[&whole[..cut], &whole[cut..]]).await;
            assert!(
                tagged(&out, "b").starts_with("b OK [APPENDUID "),
                "{cut}: {out}"
            );
            assert!(out.contains("+ Ready for literal data\r\n"), "{out}");
            assert_eq!(tagged(&out, "c"), "c OK [READ-WRITE] SELECT completed");
        }
        let out = talk(&s, &[b"a LOGIN bob pw\r\nb SELECT INBOX\r\nc LOGOUT\r\n"]).await;
        assert!(
            out.contains("* 4 EXISTS\r\n"),
            "each APPEND stored once: {out}"
        );
    }

    #[tokio::test]
    async fn an_over_long_line_is_refused_and_the_session_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path(), 1);
        let mut long = vec![b'x'; applab_proto::imap::MAX_LINE + 10];
        long.extend_from_slice(b" LOGOUT\r\n");
        let (head, tail) = long.split_at(300);
        let out = talk(&s, &[head, tail, b"a LOGIN bob pw\r\nb LOGOUT\r\n"]).await;
        assert!(out.contains("* BAD line or literal too long\r\n"), "{out}");
        assert_eq!(
            out.matches("* BYE").count(),
            1,
            "the tail was not a command: {out}"
        );
        assert!(tagged(&out, "a").starts_with("a OK"), "{out}");
    }
}
