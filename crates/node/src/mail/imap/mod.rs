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
//!
//! Where each part is: `session` (the states and the command loop), `view`
//! (one session's sequence numbers and what it is told), `op/` (one file per
//! command family), `folders` (folders, UIDs, flags on disk), `fetch` (FETCH
//! items), `search` (SEARCH keys). The command grammar and the literal
//! receiver are in `applab_proto::imap`.

mod fetch;
mod folders;
mod op;
mod search;
mod session;
mod view;

use super::conn::TcpConnection;
use super::store::Store;
use super::users::Users;
use folders::Mailstore;
use session::Session;
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
