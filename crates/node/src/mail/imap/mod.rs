//! The IMAP server (IMAP4rev1, RFC 3501): the user's mail stays on the
//! server, in folders, and the user agent works on it there.
//!
//! A session moves through the states of RFC 3501 §3: not authenticated
//! (LOGIN, AUTHENTICATE PLAIN), authenticated (folder commands: LIST,
//! CREATE, SELECT, APPEND, STATUS, ...), selected (message commands:
//! FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, and their UID forms, IDLE),
//! and logout. Messages are addressed by sequence number (their position,
//! which shifts on EXPUNGE) or by UID (which never changes). Several
//! sessions may have one folder selected; each keeps its own view and, at
//! the end of its commands (or while IDLE), is told what changed: EXISTS
//! for new messages, EXPUNGE for removed ones, FETCH FLAGS for new flags.
//! Folders, UIDs and flags live in `folders`; FETCH items in `fetch`;
//! SEARCH keys in `search`.

mod fetch;
mod folders;
mod search;

use super::conn::{Connection, In, Next, Out, TcpConnection};
use super::store::Store;
use super::users::Users;
use applab_proto::imap::{
    in_set, parse, sequence_set, ParseError, Piece, Received, Receiver, ReceiverLimits, Token,
    MAX_LINE,
};
use applab_proto::line::Line;
use base64::Engine;
use fetch::quoted;
use folders::{Folder, Mailstore, DELIMITER};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Server {
    pub domain: String,
    pub hostname: String,
    pub users: Users,
    pub store: Arc<Store>,
    pub mailstore: Mailstore,
    /// RFC 3501 §5.4: at least 30 minutes before an idle client is logged out.
    pub idle: Duration,
    pub max_connections: usize,
}

impl Server {
    pub fn new(
        domain: String,
        hostname: String,
        users: Users,
        store: Arc<Store>,
        max_connections: usize,
    ) -> Server {
        let mailstore = Mailstore::new(store.root.join("mailboxes"));
        Server {
            domain,
            hostname,
            users,
            store,
            mailstore,
            idle: Duration::from_secs(30 * 60),
            max_connections,
        }
    }
}

const CAPABILITIES: &str = "IMAP4rev1 LITERAL+ IDLE UIDPLUS MOVE UNSELECT AUTH=PLAIN";
const MAX_BAD: u32 = 50;
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

pub async fn serve(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    // Flag changes reach the index files within a second.
    let flusher = server.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = flusher.clone();
            let _ = tokio::task::spawn_blocking(move || s.mailstore.flush_all()).await;
        }
    });
    let max = server.max_connections;
    crate::accept::accept_loop(
        listener,
        max,
        b"* BYE too many connections\r\n",
        "imap",
        move |sock, peer| {
            let server = server.clone();
            async move {
                let mut conn = TcpConnection::tcp(sock, server.idle);
                if let Err(e) = Session::run(&server, &mut conn, peer).await {
                    tracing::debug!(%peer, "imap session ended: {e}");
                }
            }
        },
    )
    .await
}

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

struct Selected {
    name: String,
    folder: Arc<Folder>,
    read_only: bool,
    /// UIDs in sequence-number order, as this client knows them.
    view: Vec<u32>,
    flags: HashMap<u32, BTreeSet<String>>,
    recent: HashSet<u32>,
    /// The folder's version this view last caught up with.
    version: u64,
}

impl Selected {
    /// Tell this client what changed in the folder since it last looked.
    fn updates(&mut self, allow_expunge: bool, uid_form: bool, out: &mut Vec<u8>) {
        let mut st = self.folder.state.lock().expect("folder");
        st.sync();
        if st.version == self.version {
            return; // nothing changed since this view last looked
        }
        let current: HashSet<u32> = st.msgs.iter().map(|m| m.uid).collect();
        if allow_expunge {
            for (n, uid) in expunge_numbers(&mut self.view, &current) {
                out.extend_from_slice(format!("* {n} EXPUNGE\r\n").as_bytes());
                self.flags.remove(&uid);
                self.recent.remove(&uid);
            }
        }
        let last = self.view.last().copied().unwrap_or(0);
        let new: Vec<u32> = st
            .msgs
            .iter()
            .map(|m| m.uid)
            .filter(|&u| u > last)
            .collect();
        if !new.is_empty() {
            for &u in &new {
                self.view.push(u);
                if !self.read_only && u > st.recent_upto {
                    self.recent.insert(u);
                }
                if let Some(m) = st.by_uid(u) {
                    self.flags.insert(u, m.flags.clone());
                }
            }
            if !self.read_only {
                let top = *new.last().expect("non-empty");
                if top > st.recent_upto {
                    st.recent_upto = top;
                    st.touch_flags();
                }
            }
            out.extend_from_slice(
                format!(
                    "* {} EXISTS\r\n* {} RECENT\r\n",
                    self.view.len(),
                    self.recent.len()
                )
                .as_bytes(),
            );
        }
        for (i, uid) in self.view.iter().enumerate() {
            let Some(m) = st.by_uid(*uid) else { continue };
            if self.flags.get(uid) != Some(&m.flags) {
                self.flags.insert(*uid, m.flags.clone());
                let mut f: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                if self.recent.contains(uid) {
                    f.push("\\Recent");
                }
                let uid_part = if uid_form {
                    format!("UID {uid} ")
                } else {
                    String::new()
                };
                out.extend_from_slice(
                    format!("* {} FETCH ({uid_part}FLAGS ({}))\r\n", i + 1, f.join(" ")).as_bytes(),
                );
            }
        }
    }
}

/// Take out of a session's `view` (UIDs in sequence order) the messages no
/// longer in the folder; the EXPUNGE numbers to send, with their UIDs. In
/// ascending order, each number counted after the removals before it
/// (RFC 3501 §7.4.1: deleting 3, 4, 7, 11 reads 3, 3, 5, 8), as Dovecot
/// sends them.
fn expunge_numbers(view: &mut Vec<u32>, current: &HashSet<u32>) -> Vec<(usize, u32)> {
    let mut gone = Vec::new();
    let mut i = 0;
    while i < view.len() {
        if current.contains(&view[i]) {
            i += 1;
        } else {
            gone.push((i + 1, view.remove(i)));
        }
    }
    gone
}

struct Session<'a> {
    s: &'a Server,
    peer: SocketAddr,
    user: Option<String>,
    sel: Option<Selected>,
    bad: u32,
}

/// A tagged result: OK, NO or BAD with its text.
enum Done {
    Ok(String),
    No(String),
    Bad(String),
}

fn flag_list(t: Option<&Token>) -> Result<BTreeSet<String>, String> {
    let items: Vec<Token> = match t {
        Some(Token::List(l)) => l.clone(),
        Some(a @ Token::Atom(_)) => vec![a.clone()],
        _ => return Err("flags must be a list".into()),
    };
    let mut out = BTreeSet::new();
    for i in items {
        let Token::Atom(a) = i else {
            return Err("a flag is an atom".into());
        };
        let canon = match a.to_ascii_lowercase().as_str() {
            "\\seen" => "\\Seen".to_string(),
            "\\answered" => "\\Answered".to_string(),
            "\\flagged" => "\\Flagged".to_string(),
            "\\deleted" => "\\Deleted".to_string(),
            "\\draft" => "\\Draft".to_string(),
            "\\recent" => return Err("\\Recent cannot be stored".into()),
            _ if a.starts_with('\\') => return Err(format!("unknown system flag {a}")),
            _ => a,
        };
        out.insert(canon);
    }
    Ok(out)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

impl<'a> Session<'a> {
    async fn run<R: In, W: Out>(
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
            let (done, logout) = me
                .command(&cmd.tag, &cmd.name, &cmd.args, &mut out, wr)
                .await?;
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
        tag: &str,
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
        let ms = &self.s.mailstore;
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
            "CREATE" => match arg(0) {
                Some(f) => match ms.create(&user, &f) {
                    Ok(()) => Done::Ok("CREATE completed".into()),
                    Err(e) => Done::No(e),
                },
                None => Done::Bad("usage: CREATE folder".into()),
            },
            "DELETE" => match arg(0) {
                Some(f) => {
                    if self.sel.as_ref().is_some_and(|s| s.name == f) {
                        self.sel = None;
                    }
                    match ms.delete(&user, &f) {
                        Ok(()) => Done::Ok("DELETE completed".into()),
                        Err(e) => Done::No(e),
                    }
                }
                None => Done::Bad("usage: DELETE folder".into()),
            },
            "RENAME" => match (arg(0), arg(1)) {
                (Some(a), Some(b)) => match ms.rename(&user, &a, &b) {
                    Ok(()) => Done::Ok("RENAME completed".into()),
                    Err(e) => Done::No(e),
                },
                _ => Done::Bad("usage: RENAME old new".into()),
            },
            "SUBSCRIBE" | "UNSUBSCRIBE" => match arg(0) {
                Some(f) => match ms.set_subscribed(&user, &f, name == "SUBSCRIBE") {
                    Ok(()) => Done::Ok(format!("{name} completed")),
                    Err(e) => Done::No(e),
                },
                None => Done::Bad(format!("usage: {name} folder")),
            },
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
            "CLOSE" | "UNSELECT" => {
                let sel = self.sel.take().expect("selected");
                if name == "CLOSE" && !sel.read_only {
                    // Silently: no EXPUNGE responses (RFC 3501 §6.4.2).
                    sel.folder.state.lock().expect("folder").expunge(None);
                }
                Done::Ok(format!("{name} completed"))
            }
            "EXPUNGE" => self.expunge(None, out),
            "IDLE" => return Ok((self.idle(tag, wr, out).await?, false)),
            "UID" => {
                let Some(sub) = args.first().and_then(Token::atom_upper) else {
                    return Ok((
                        Done::Bad("usage: UID FETCH|STORE|SEARCH|COPY|MOVE|EXPUNGE ...".into()),
                        false,
                    ));
                };
                let rest = &args[1..];
                match sub.as_str() {
                    "FETCH" => self.fetch(rest, true, out),
                    "STORE" => self.store(rest, true, out),
                    "SEARCH" => self.search(rest, true, out),
                    "COPY" => self.copy(&user, rest, true, false, out),
                    "MOVE" => self.copy(&user, rest, true, true, out),
                    "EXPUNGE" => match rest.first().and_then(Token::as_text) {
                        Some(set) => {
                            let sel = self.sel.as_ref().expect("selected");
                            let max = sel.view.last().copied().unwrap_or(0);
                            match sequence_set(&set, max) {
                                Some(r) => {
                                    let only: BTreeSet<u32> = sel
                                        .view
                                        .iter()
                                        .copied()
                                        .filter(|u| in_set(&r, *u))
                                        .collect();
                                    self.expunge(Some(&only), out)
                                }
                                None => Done::Bad("bad UID set".into()),
                            }
                        }
                        None => Done::Bad("usage: UID EXPUNGE set".into()),
                    },
                    _ => Done::Bad(format!("unknown UID command {sub}")),
                }
            }
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

    async fn login(&mut self, user: &str, pass: &str) -> Done {
        let users = self.s.users.clone();
        let (u, d, p) = (user.to_string(), self.s.domain.clone(), pass.to_string());
        let name = tokio::task::spawn_blocking(move || users.verify(&u, &d, &p))
            .await
            .ok()
            .flatten();
        match name {
            Some(n) => {
                tracing::info!(peer = %self.peer, user = %n, "imap login");
                let _ = std::fs::create_dir_all(self.s.mailstore.user_dir(&n));
                self.user = Some(n);
                Done::Ok(format!("[CAPABILITY {CAPABILITIES}] LOGIN completed"))
            }
            None => {
                tracing::info!(peer = %self.peer, user, "imap login failed");
                Done::No("[AUTHENTICATIONFAILED] invalid user name or password".into())
            }
        }
    }

    async fn authenticate<R: In, W: Out>(
        &mut self,
        args: &[Token],
        wr: &mut Connection<R, W>,
    ) -> std::io::Result<Done> {
        if args.first().and_then(Token::atom_upper).as_deref() != Some("PLAIN") {
            return Ok(Done::No("only AUTHENTICATE PLAIN is offered".into()));
        }
        let resp = match args.get(1).and_then(Token::as_text) {
            Some(r) => r,
            None => {
                wr.send(b"+ \r\n").await?;
                match wr.line(MAX_LINE).await? {
                    Next::Item(Line::Complete(l)) => String::from_utf8_lossy(&l).into_owned(),
                    _ => return Ok(Done::Bad("authentication aborted".into())),
                }
            }
        };
        if resp.trim() == "*" {
            return Ok(Done::Bad("authentication cancelled".into()));
        }
        let Some(raw) = b64(&resp) else {
            return Ok(Done::Bad("cannot decode the response (base64)".into()));
        };
        let mut parts = raw.split(|&b| b == 0);
        let (_, Some(u), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(Done::Bad(
                "PLAIN needs authzid NUL user NUL password".into(),
            ));
        };
        let (u, p) = (
            String::from_utf8_lossy(u).into_owned(),
            String::from_utf8_lossy(p).into_owned(),
        );
        Ok(self.login(&u, &p).await)
    }

    fn select(&mut self, user: &str, name: &str, read_only: bool, out: &mut Vec<u8>) -> Done {
        // A failed SELECT leaves no folder selected (RFC 3501 §6.3.1).
        self.sel = None;
        let Some(folder) = self.s.mailstore.folder(user, name) else {
            return Done::No("[NONEXISTENT] no such folder".into());
        };
        let canonical = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            name.to_string()
        };
        let mut sel = Selected {
            name: canonical,
            folder: folder.clone(),
            read_only,
            view: Vec::new(),
            flags: HashMap::new(),
            recent: HashSet::new(),
            version: 0,
        };
        let (uidvalidity, uidnext, first_unseen) = {
            let mut st = folder.state.lock().expect("folder");
            for m in &st.msgs {
                sel.view.push(m.uid);
                sel.flags.insert(m.uid, m.flags.clone());
                if !read_only && m.uid > st.recent_upto {
                    sel.recent.insert(m.uid);
                }
            }
            if !read_only {
                if let Some(top) = st.msgs.last().map(|m| m.uid) {
                    if top > st.recent_upto {
                        st.recent_upto = top;
                        st.touch_flags();
                    }
                }
            }
            let first_unseen = st
                .msgs
                .iter()
                .position(|m| !m.flags.contains("\\Seen"))
                .map(|i| i + 1);
            sel.version = st.version;
            (st.uidvalidity, st.uidnext, first_unseen)
        };
        out.extend_from_slice(
            format!(
                "* FLAGS ({SYSTEM_FLAGS})\r\n* OK [PERMANENTFLAGS ({SYSTEM_FLAGS} \\*)] flags permitted\r\n\
                 * {} EXISTS\r\n* {} RECENT\r\n",
                sel.view.len(),
                sel.recent.len()
            )
            .as_bytes(),
        );
        if let Some(u) = first_unseen {
            out.extend_from_slice(format!("* OK [UNSEEN {u}] first unseen\r\n").as_bytes());
        }
        out.extend_from_slice(
            format!("* OK [UIDVALIDITY {uidvalidity}] UIDs valid\r\n* OK [UIDNEXT {uidnext}] predicted next UID\r\n").as_bytes(),
        );
        self.sel = Some(sel);
        if read_only {
            Done::Ok("[READ-ONLY] EXAMINE completed".into())
        } else {
            Done::Ok("[READ-WRITE] SELECT completed".into())
        }
    }

    fn list(&self, user: &str, reference: &str, pattern: &str, lsub: bool, out: &mut Vec<u8>) {
        let word = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            // The hierarchy delimiter and root (RFC 3501 §6.3.8).
            out.extend_from_slice(
                format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\"\r\n").as_bytes(),
            );
            return;
        }
        let full = format!("{reference}{pattern}");
        let all = self.s.mailstore.list(user);
        let subs = self.s.mailstore.subscriptions(user);
        for f in &all {
            if !folders::pattern_match(&full, f) {
                continue;
            }
            if lsub
                && !subs.contains(f)
                && !(f == "INBOX" && subs.iter().any(|s| s.eq_ignore_ascii_case("INBOX")))
            {
                continue;
            }
            let prefix = format!("{f}{DELIMITER}");
            let children = all.iter().any(|x| x.starts_with(&prefix));
            let attr = if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            };
            out.extend_from_slice(
                format!("* {word} ({attr}) \"{DELIMITER}\" {}\r\n", quoted(f)).as_bytes(),
            );
        }
    }

    fn status(&self, user: &str, name: &str, items: &[Token], out: &mut Vec<u8>) -> Done {
        let Some(folder) = self.s.mailstore.folder(user, name) else {
            return Done::No("[NONEXISTENT] no such folder".into());
        };
        let st = folder.state.lock().expect("folder");
        let mut parts = Vec::new();
        for i in items {
            let Some(a) = i.atom_upper() else {
                return Done::Bad("bad STATUS item".into());
            };
            let v = match a.as_str() {
                "MESSAGES" => st.msgs.len() as u64,
                "RECENT" => st.msgs.iter().filter(|m| m.uid > st.recent_upto).count() as u64,
                "UIDNEXT" => st.uidnext as u64,
                "UIDVALIDITY" => st.uidvalidity as u64,
                "UNSEEN" => st.unseen() as u64,
                _ => return Done::Bad(format!("unknown STATUS item {a}")),
            };
            parts.push(format!("{a} {v}"));
        }
        let shown = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            name
        };
        out.extend_from_slice(
            format!("* STATUS {} ({})\r\n", quoted(shown), parts.join(" ")).as_bytes(),
        );
        Done::Ok("STATUS completed".into())
    }

    fn append(&self, user: &str, args: &[Token]) -> Done {
        let Some(name) = args.first().and_then(Token::as_text) else {
            return Done::Bad("usage: APPEND folder [(flags)] [date] message".into());
        };
        let mut i = 1;
        let mut flags = BTreeSet::new();
        if let Some(t @ Token::List(_)) = args.get(i) {
            match flag_list(Some(t)) {
                Ok(f) => flags = f,
                Err(e) => return Done::Bad(e),
            }
            i += 1;
        }
        let mut internal = None;
        if let (Some(Token::Str(d)), Some(_)) = (args.get(i), args.get(i + 1)) {
            match parse_datetime(&String::from_utf8_lossy(d)) {
                Some(t) => internal = Some(t),
                None => return Done::Bad("bad date-time (\"27-Nov-2026 20:00:00 +0000\")".into()),
            }
            i += 1;
        }
        let Some(Token::Str(data)) = args.get(i) else {
            return Done::Bad("APPEND needs the message as a literal".into());
        };
        if args.len() != i + 1 {
            return Done::Bad("too many arguments to APPEND".into());
        }
        let Some(folder) = self.s.mailstore.folder(user, &name) else {
            return Done::No("[TRYCREATE] no such folder".into());
        };
        let mut st = folder.state.lock().expect("folder");
        let when = internal.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        match st.add(data, flags, when) {
            Ok(uid) => Done::Ok(format!(
                "[APPENDUID {} {uid}] APPEND completed",
                st.uidvalidity
            )),
            Err(e) => Done::No(format!("[SERVERBUG] cannot store the message: {e}")),
        }
    }

    /// The messages a set names, as (sequence number, UID), in order.
    fn resolve_set(&self, set: &str, uid: bool) -> Result<Vec<(usize, u32)>, String> {
        let sel = self.sel.as_ref().expect("selected");
        if uid {
            let max = sel.view.last().copied().unwrap_or(0);
            let r = sequence_set(set, max).ok_or("bad UID set")?;
            Ok(sel
                .view
                .iter()
                .enumerate()
                .filter(|(_, u)| in_set(&r, **u))
                .map(|(i, u)| (i + 1, *u))
                .collect())
        } else {
            let max = sel.view.len() as u32;
            let r = sequence_set(set, max).ok_or("bad sequence set")?;
            if r.iter().any(|&(_, b)| b > max) {
                return Err("no such message (sequence number beyond the last)".into());
            }
            Ok(sel
                .view
                .iter()
                .enumerate()
                .filter(|(i, _)| in_set(&r, *i as u32 + 1))
                .map(|(i, u)| (i + 1, *u))
                .collect())
        }
    }

    fn fetch(&mut self, args: &[Token], uid: bool, out: &mut Vec<u8>) -> Done {
        let (Some(set), Some(items)) = (args.first().and_then(Token::as_text), args.get(1)) else {
            return Done::Bad("usage: FETCH set items".into());
        };
        if args.len() != 2 {
            return Done::Bad("usage: FETCH set items".into());
        }
        let mut items = match fetch::parse_items(items) {
            Ok(i) => i,
            Err(e) => return Done::Bad(e),
        };
        if uid && !items.contains(&fetch::Item::Uid) {
            items.insert(0, fetch::Item::Uid);
        }
        let targets = match self.resolve_set(&set, uid) {
            Ok(t) => t,
            Err(e) => return Done::Bad(e),
        };
        let sets_seen = items.iter().any(fetch::Item::sets_seen);
        let sel = self.sel.as_mut().expect("selected");
        // Under the folder's lock only what must be: flags and a snapshot of
        // each message; the files are read and rendered after it.
        let mut work = Vec::with_capacity(targets.len());
        {
            let mut st = sel.folder.state.lock().expect("folder");
            let mut changed = false;
            for (seq, u) in targets {
                let mut its = items.clone();
                if sets_seen && !sel.read_only {
                    if let Some(m) = st.by_uid_mut(u) {
                        if m.flags.insert("\\Seen".to_string()) {
                            changed = true;
                            if !its.contains(&fetch::Item::Flags) {
                                its.push(fetch::Item::Flags);
                            }
                        }
                    }
                }
                let Some(m) = st.by_uid(u) else {
                    continue; // expunged by another session meanwhile
                };
                sel.flags.insert(u, m.flags.clone());
                work.push((seq, m.clone(), its, sel.recent.contains(&u)));
            }
            if changed {
                st.touch_flags();
            }
        }
        for (seq, m, its, recent) in work {
            let mut cache = None;
            let body = fetch::render(&m, recent, &its, &mut cache);
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(b")\r\n");
        }
        Done::Ok(format!("{}FETCH completed", if uid { "UID " } else { "" }))
    }

    fn store(&mut self, args: &[Token], uid: bool, out: &mut Vec<u8>) -> Done {
        let (Some(set), Some(op)) = (
            args.first().and_then(Token::as_text),
            args.get(1).and_then(Token::atom_upper),
        ) else {
            return Done::Bad("usage: STORE set [+|-]FLAGS[.SILENT] (flags)".into());
        };
        let flags = if args.len() == 3 {
            flag_list(args.get(2))
        } else {
            // Flags given without parentheses: `+FLAGS \Seen \Deleted`.
            flag_list(Some(&Token::List(args[2.min(args.len())..].to_vec())))
        };
        let flags = match flags {
            Ok(f) => f,
            Err(e) => return Done::Bad(e),
        };
        let silent = op.ends_with(".SILENT");
        let mode = op.trim_end_matches(".SILENT");
        if !matches!(mode, "FLAGS" | "+FLAGS" | "-FLAGS") {
            return Done::Bad(format!("unknown STORE operation {op}"));
        }
        let targets = match self.resolve_set(&set, uid) {
            Ok(t) => t,
            Err(e) => return Done::Bad(e),
        };
        let sel = self.sel.as_mut().expect("selected");
        if sel.read_only {
            return Done::No("[READ-ONLY] folder is read-only (EXAMINE)".into());
        }
        let mut st = sel.folder.state.lock().expect("folder");
        for (seq, u) in targets {
            let Some(m) = st.by_uid_mut(u) else { continue };
            match mode {
                "FLAGS" => m.flags = flags.clone(),
                "+FLAGS" => m.flags.extend(flags.iter().cloned()),
                _ => m.flags.retain(|f| !flags.contains(f)),
            }
            sel.flags.insert(u, m.flags.clone());
            if !silent {
                let mut f: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                if sel.recent.contains(&u) {
                    f.push("\\Recent");
                }
                let uid_part = if uid {
                    format!("UID {u} ")
                } else {
                    String::new()
                };
                out.extend_from_slice(
                    format!("* {seq} FETCH ({uid_part}FLAGS ({}))\r\n", f.join(" ")).as_bytes(),
                );
            }
        }
        st.touch_flags();
        Done::Ok(format!("{}STORE completed", if uid { "UID " } else { "" }))
    }

    fn search(&mut self, args: &[Token], uid: bool, out: &mut Vec<u8>) -> Done {
        let sel = self.sel.as_ref().expect("selected");
        let max_uid = sel.view.last().copied().unwrap_or(0);
        let key = match search::parse(args, sel.view.len() as u32, max_uid) {
            Ok(k) => k,
            Err(e) if e.starts_with('[') => return Done::No(e),
            Err(e) => return Done::Bad(e),
        };
        let mut st = sel.folder.state.lock().expect("folder");
        let mut hits = Vec::new();
        let headers = search::needs_header(&key);
        for (i, u) in sel.view.iter().enumerate() {
            let Some(m) = st.by_uid_mut(*u) else { continue };
            // Header keys read the cached header section, not the file.
            let header = headers.then(|| m.header());
            let mut ctx = search::Ctx::new(m, i as u32 + 1, sel.recent.contains(u));
            ctx.header = header;
            if search::eval(&key, &mut ctx) {
                hits.push(if uid { *u } else { i as u32 + 1 });
            }
        }
        let list: Vec<String> = hits.iter().map(u32::to_string).collect();
        let sep = if list.is_empty() { "" } else { " " };
        out.extend_from_slice(format!("* SEARCH{sep}{}\r\n", list.join(" ")).as_bytes());
        Done::Ok(format!("{}SEARCH completed", if uid { "UID " } else { "" }))
    }

    fn copy(&mut self, user: &str, args: &[Token], uid: bool, mv: bool, out: &mut Vec<u8>) -> Done {
        let word = if mv { "MOVE" } else { "COPY" };
        let (Some(set), Some(dest)) = (
            args.first().and_then(Token::as_text),
            args.get(1).and_then(Token::as_text),
        ) else {
            return Done::Bad(format!("usage: {word} set folder"));
        };
        let targets = match self.resolve_set(&set, uid) {
            Ok(t) => t,
            Err(e) => return Done::Bad(e),
        };
        let Some(dst) = self.s.mailstore.folder(user, &dest) else {
            return Done::No("[TRYCREATE] no such folder".into());
        };
        let sel = self.sel.as_ref().expect("selected");
        if mv && sel.read_only {
            return Done::No("[READ-ONLY] folder is read-only (EXAMINE)".into());
        }
        let same = Arc::ptr_eq(&dst, &sel.folder);
        // Read the sources first; never hold two folder locks at once.
        let mut copies = Vec::new();
        {
            let st = sel.folder.state.lock().expect("folder");
            for (_, u) in &targets {
                if let Some(m) = st.by_uid(*u) {
                    match std::fs::read(&m.path) {
                        Ok(d) => copies.push((*u, d, m.flags.clone(), m.internal)),
                        Err(e) => {
                            return Done::No(format!("[SERVERBUG] cannot read message {u}: {e}"))
                        }
                    }
                }
            }
        }
        let mut src_uids = Vec::new();
        let mut dst_uids = Vec::new();
        let uidvalidity;
        {
            let mut d = dst.state.lock().expect("folder");
            uidvalidity = d.uidvalidity;
            for (u, data, flags, internal) in copies {
                match d.add(&data, flags, internal) {
                    Ok(n) => {
                        src_uids.push(u);
                        dst_uids.push(n);
                    }
                    Err(e) => return Done::No(format!("[SERVERBUG] copy failed: {e}")),
                }
            }
        }
        let code = if src_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {uidvalidity} {} {}] ",
                src_uids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                dst_uids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        if mv && !same {
            let only: BTreeSet<u32> = src_uids.iter().copied().collect();
            {
                let mut st = sel.folder.state.lock().expect("folder");
                for u in &only {
                    if let Some(m) = st.by_uid_mut(*u) {
                        m.flags.insert("\\Deleted".into());
                    }
                }
                st.expunge(Some(&only));
            }
            // RFC 6851: COPYUID comes untagged, before the EXPUNGEs.
            if !code.is_empty() {
                out.extend_from_slice(format!("* OK {}moved\r\n", code).as_bytes());
            }
            let sel = self.sel.as_mut().expect("selected");
            sel.updates(true, uid, out);
            return Done::Ok(format!("{}MOVE completed", if uid { "UID " } else { "" }));
        }
        Done::Ok(format!(
            "{code}{}{word} completed",
            if uid { "UID " } else { "" }
        ))
    }

    fn expunge(&mut self, only: Option<&BTreeSet<u32>>, out: &mut Vec<u8>) -> Done {
        let sel = self.sel.as_mut().expect("selected");
        if sel.read_only {
            return Done::No("[READ-ONLY] folder is read-only (EXAMINE)".into());
        }
        sel.folder.state.lock().expect("folder").expunge(only);
        sel.updates(true, false, out);
        Done::Ok("EXPUNGE completed".into())
    }

    /// IDLE (RFC 2177): report changes as they happen until DONE.
    async fn idle<R: In, W: Out>(
        &mut self,
        _tag: &str,
        wr: &mut Connection<R, W>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<Done> {
        wr.send(b"+ idling\r\n").await?;
        let mut delivered = self.s.store.delivered.subscribe();
        let deadline = tokio::time::Instant::now() + self.s.idle;
        loop {
            if let Some(sel) = self.sel.as_mut() {
                let mut updates = Vec::new();
                sel.updates(true, false, &mut updates);
                if !updates.is_empty() {
                    wr.send(&updates).await?;
                }
            }
            match wr.buffered_line(MAX_LINE) {
                Some(Line::Complete(l)) if l.eq_ignore_ascii_case(b"DONE") => {
                    return Ok(Done::Ok("IDLE terminated".into()))
                }
                Some(_) => return Ok(Done::Bad("expected DONE".into())),
                None => {}
            }
            tokio::select! {
                r = wr.read_some() => if !r? {
                    return Ok(Done::Bad("connection closed while idling".into()));
                },
                _ = delivered.changed() => {}
                // Other sessions' changes: looked at every second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    out.extend_from_slice(b"* BYE idle too long\r\n");
                    return Ok(Done::Ok("IDLE terminated".into()));
                }
            }
        }
    }
}

/// APPEND's date-time: `27-Nov-2026 20:00:00 +0100` → unix seconds.
fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim_matches('"').trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = search::parse_date(date)?;
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    Some(days * 86400 + h * 3600 + m * 60 + sec - sign * (zh * 3600 + zm * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expunge_numbers_count_after_each_removal() {
        // RFC 3501 §7.4.1's example: messages 3, 4, 7 and 11 of 11 deleted.
        let mut view: Vec<u32> = (1..=11).map(|n| n * 10).collect();
        let current: HashSet<u32> = view
            .iter()
            .copied()
            .filter(|u| ![30, 40, 70, 110].contains(u))
            .collect();
        let gone = expunge_numbers(&mut view, &current);
        assert_eq!(gone, [(3, 30), (3, 40), (5, 70), (8, 110)]);
        assert_eq!(view, [10, 20, 50, 60, 80, 90, 100]);
        // Nothing gone: nothing sent, the view kept.
        assert!(expunge_numbers(&mut view, &current).is_empty());
        // Everything gone: 1, 1, 1, ...
        let gone = expunge_numbers(&mut view, &HashSet::new());
        assert!(gone.iter().all(|(n, _)| *n == 1) && view.is_empty());
    }

    #[test]
    fn flag_lists_are_canonical_and_recent_is_refused() {
        let list = |s: &[&str]| Token::List(s.iter().map(|a| Token::Atom(a.to_string())).collect());
        let f = flag_list(Some(&list(&["\\seen", "\\FLAGGED", "$Label"]))).unwrap();
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            ["$Label", "\\Flagged", "\\Seen"]
        );
        assert!(flag_list(Some(&list(&["\\Recent"]))).is_err());
        assert!(flag_list(Some(&list(&["\\Bogus"]))).is_err());
        assert!(flag_list(Some(&Token::Atom("\\Seen".into()))).is_ok());
        assert!(flag_list(None).is_err());
    }

    #[test]
    fn append_dates() {
        assert_eq!(parse_datetime("\"01-Jan-1970 00:00:00 +0000\""), Some(0));
        assert_eq!(parse_datetime("01-Jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(parse_datetime("01-Jan-1970 00:00:00 -0030"), Some(1800));
        assert_eq!(parse_datetime("01-Jan-1970 00:00:00 0000"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
