//! The console: a terminal on the student's workstation in the browser.
//!
//! The browser runs xterm.js; a WebSocket carries its keystrokes to a
//! Docker exec with a TTY (`/bin/sh -l` on the workstation) and the TTY's
//! output back. As in ttyd, each message starts with one type byte:
//!
//! | from | byte | rest |
//! |---|---|---|
//! | browser | `0` | keystrokes |
//! | browser | `1` | `{"cols":N,"rows":M}`: the window changed |
//! | browser | `2` | decimal count of output bytes the terminal has drawn |
//! | server | `0` | terminal output |
//! | server | `1` | a notice for the person (reconnected, ended, ...) |
//!
//! Flow control: the server sends at most [`Limits::window`] bytes the
//! browser has not acknowledged, then stops reading the TTY, so `cat` of a
//! large file pauses the shell instead of freezing the tab. A session
//! outlives its socket: a dropped connection that comes back within
//! [`Limits::grace`] finds its shell and the recent scrollback. A session
//! with no keystroke for [`Limits::idle`] is ended.
//!
//! Staff watch a student's console read-only: a watcher gets the
//! scrollback and then every output chunk (a broadcast, so a slow watcher
//! skips rather than holds the student's shell back), and nothing it sends
//! ever reaches the shell: the watch loop has no path to the TTY's input.

use super::auth::Subject;
use super::{render, Chrome, PanelError};
use crate::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Output bytes in flight to a browser before the TTY is paused.
    pub window: usize,
    /// Output kept for a reconnecting browser.
    pub scrollback: usize,
    /// A detached session waits this long for its browser to come back.
    pub grace: Duration,
    /// A session with no keystroke for this long is ended.
    pub idle: Duration,
    /// Sessions open at once, in the whole panel.
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: 256 * 1024,
            scrollback: 64 * 1024,
            grace: Duration::from_secs(300),
            idle: Duration::from_secs(30 * 60),
            max_sessions: 1000,
        }
    }
}

type Key = (String, String);

/// One student's shell, attached to at most one browser at a time.
struct Console {
    name: String,
    exec_id: String,
    input: tokio::sync::Mutex<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    state: Mutex<ConsoleState>,
    /// Output and the end, for watching staff.
    watch: tokio::sync::broadcast::Sender<Out>,
}

struct ConsoleState {
    scrollback: VecDeque<u8>,
    /// The attached browser's channel (None: detached).
    attached: Option<(u64, mpsc::Sender<Out>)>,
    next_attach: u64,
    last_input: Instant,
    detached_at: Option<Instant>,
    ended: Option<String>,
}

#[derive(Clone)]
enum Out {
    Data(Bytes),
    End(String),
}

/// Every open console of the panel.
pub struct Consoles {
    limits: Limits,
    open: Mutex<HashMap<Key, Arc<Console>>>,
}

impl Consoles {
    pub fn new(limits: Limits) -> Consoles {
        Consoles {
            limits,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn count(&self) -> usize {
        self.open.lock().expect("consoles").len()
    }
}

#[derive(askama::Template)]
#[template(path = "console.html")]
struct ConsolePage {
    c: Chrome,
    workstation: String,
    socket: String,
}

pub async fn page(s: Subject) -> Result<Response, PanelError> {
    let ws = applab_controller::Controller::workstation(&s.lab)
        .map(|n| n.name.clone())
        .ok_or_else(|| PanelError::not_found("This lab has no workstation."))?;
    render(&ConsolePage {
        c: Chrome::of(&s, "Console", "console"),
        workstation: ws,
        socket: format!("{}/console/ws", s.base),
    })
}

#[derive(Deserialize)]
pub struct Size {
    cols: Option<u16>,
    rows: Option<u16>,
}

/// The WebSocket. Cross-site pages cannot open it: the session cookie is
/// SameSite=Strict, and the Origin must be this panel's.
pub async fn socket(
    State(st): State<AppState>,
    s: Subject,
    headers: HeaderMap,
    Query(size): Query<Size>,
    ws: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin console refused\n").into_response();
    }
    let key = (s.run.name.clone(), s.student.id.clone());
    if s.read_only() {
        tracing::info!(
            run = key.0,
            student = key.1,
            by = s.session.subject,
            "console watched"
        );
        return ws
            .max_message_size(64 * 1024)
            .on_upgrade(move |sock| watch_socket(st, key, sock));
    }
    let cols = size.cols.unwrap_or(80).clamp(10, 500);
    let rows = size.rows.unwrap_or(24).clamp(4, 200);
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |sock| async move {
            run_socket(st, key, sock, cols, rows).await;
        })
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (a test client, a script with the cookie): allowed.
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// Terminal output as the browser takes it: the type byte `0`, then bytes.
fn output(bytes: &[u8]) -> Message {
    let mut m = Vec::with_capacity(bytes.len() + 1);
    m.push(b'0');
    m.extend_from_slice(bytes);
    Message::Binary(m.into())
}

/// A staff member watching: the student's output, never their input.
async fn watch_socket(st: AppState, key: Key, sock: WebSocket) {
    let (mut sink, mut stream) = sock.split();
    let mut told_waiting = false;
    loop {
        let console = st
            .panel
            .consoles
            .open
            .lock()
            .expect("consoles")
            .get(&key)
            .cloned()
            .filter(|c| c.state.lock().expect("console").ended.is_none());
        let Some(console) = console else {
            if !told_waiting {
                told_waiting = true;
                let m = "1The student has no console open; this page shows it when they open one.";
                if sink.send(Message::Text(m.into())).await.is_err() {
                    return;
                }
            }
            // Wait a second, or for the watcher to leave.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                msg = stream.next() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                },
            }
        };
        told_waiting = false;
        let (mut rx, replay) = {
            let s = console.state.lock().expect("console");
            (
                console.watch.subscribe(),
                s.scrollback.iter().copied().collect::<Vec<u8>>(),
            )
        };
        drop(console);
        let hello = format!(
            "1Watching {}'s console (read-only: nothing typed here reaches it).",
            key.1
        );
        if sink.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
        if !replay.is_empty() && sink.send(output(&replay)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Ok(Out::Data(b)) => {
                        if sink.send(output(&b)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Out::End(why)) => {
                        let m = format!("1The student's shell ended ({why}); waiting for a new one.");
                        if sink.send(Message::Text(m.into())).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let m = format!("1(output came faster than this page: {n} chunks skipped)");
                        let _ = sink.send(Message::Text(m.into())).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                // Keystrokes, sizes and acks from a watcher are read and
                // dropped: the student's shell is theirs.
                msg = stream.next() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// Find the student's console or open one.
async fn attach(
    st: &AppState,
    key: &Key,
    cols: u16,
    rows: u16,
) -> anyhow::Result<(Arc<Console>, bool)> {
    let consoles = &st.panel.consoles;
    if let Some(c) = consoles.open.lock().expect("consoles").get(key).cloned() {
        if c.state.lock().expect("console").ended.is_none() {
            return Ok((c, true));
        }
    }
    if consoles.count() >= consoles.limits.max_sessions {
        anyhow::bail!("too many consoles are open on this panel; try again in a minute");
    }
    let name = hex::encode(rand::random::<[u8; 8]>());
    let tty = st
        .ctrl
        .open_console(&key.0, &key.1, &name, cols, rows)
        .await?;
    let console = Arc::new(Console {
        name,
        exec_id: tty.id.clone(),
        input: tokio::sync::Mutex::new(tty.input),
        state: Mutex::new(ConsoleState {
            scrollback: VecDeque::new(),
            attached: None,
            next_attach: 0,
            last_input: Instant::now(),
            detached_at: None,
            ended: None,
        }),
        watch: tokio::sync::broadcast::channel(256).0,
    });
    consoles
        .open
        .lock()
        .expect("consoles")
        .insert(key.clone(), console.clone());
    tokio::spawn(pump(st.clone(), key.clone(), console.clone(), tty.output));
    tokio::spawn(reaper(st.clone(), key.clone(), console.clone()));
    tracing::info!(run = key.0, student = key.1, "console opened");
    Ok((console, false))
}

/// TTY output to the scrollback and the attached browser. Waiting on a
/// full browser channel is what pauses the shell.
async fn pump(
    st: AppState,
    key: Key,
    c: Arc<Console>,
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = applab_runtime::Result<Bytes>> + Send>,
    >,
) {
    let limit = st.panel.consoles.limits.scrollback;
    let reason = loop {
        let chunk = match output.next().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => break format!("the connection to your workstation broke: {e}"),
            None => break "the shell ended".to_string(),
        };
        let tx = {
            let mut s = c.state.lock().expect("console");
            s.scrollback.extend(chunk.iter());
            let extra = s.scrollback.len().saturating_sub(limit);
            s.scrollback.drain(..extra);
            // Under the lock: a watcher's scrollback copy and its
            // subscription then see each chunk exactly once.
            let _ = c.watch.send(Out::Data(chunk.clone()));
            s.attached.as_ref().map(|(_, tx)| tx.clone())
        };
        if let Some(tx) = tx {
            let _ = tx.send(Out::Data(chunk)).await;
        }
    };
    end(&st, &key, &c, reason).await;
}

/// Mark a console ended, tell its browser, forget it.
async fn end(st: &AppState, key: &Key, c: &Arc<Console>, reason: String) {
    let tx = {
        let mut s = c.state.lock().expect("console");
        if s.ended.is_some() {
            return;
        }
        s.ended = Some(reason.clone());
        let _ = c.watch.send(Out::End(reason.clone()));
        s.attached.take()
    };
    if let Some((_, tx)) = tx {
        let _ = tx.send(Out::End(reason.clone())).await;
    }
    {
        let mut open = st.panel.consoles.open.lock().expect("consoles");
        if open.get(key).is_some_and(|x| Arc::ptr_eq(x, c)) {
            open.remove(key);
        }
    }
    if let Err(e) = st.ctrl.close_console(&key.0, &key.1, &c.name).await {
        tracing::debug!("closing a console: {e:#}");
    }
    tracing::info!(run = key.0, student = key.1, reason, "console ended");
}

/// Ends sessions left idle or without a browser.
async fn reaper(st: AppState, key: Key, c: Arc<Console>) {
    let limits = st.panel.consoles.limits;
    let tick = (limits.idle.min(limits.grace) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(15));
    loop {
        tokio::time::sleep(tick).await;
        let why = {
            let s = c.state.lock().expect("console");
            if s.ended.is_some() {
                return;
            }
            if s.last_input.elapsed() > limits.idle {
                Some(format!(
                    "ended after {} minutes without a keystroke; reload to start a new shell",
                    limits.idle.as_secs() / 60
                ))
            } else if s.detached_at.is_some_and(|t| t.elapsed() > limits.grace) {
                Some("no browser came back".to_string())
            } else {
                None
            }
        };
        if let Some(reason) = why {
            end(&st, &key, &c, reason).await;
            return;
        }
    }
}

async fn run_socket(st: AppState, key: Key, sock: WebSocket, cols: u16, rows: u16) {
    let (mut sink, mut stream) = sock.split();
    let (console, resumed) = match attach(&st, &key, cols, rows).await {
        Ok(x) => x,
        Err(e) => {
            let _ = sink
                .send(Message::Text(format!("1Cannot open a shell: {e:#}").into()))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    let window = st.panel.consoles.limits.window;
    // Small: a full channel is what holds the TTY back.
    let (tx, mut rx) = mpsc::channel::<Out>(8);
    let (me, replay) = {
        let mut s = console.state.lock().expect("console");
        let me = s.next_attach;
        s.next_attach += 1;
        if let Some((_, old)) = s.attached.replace((me, tx)) {
            let _ = old.try_send(Out::End("opened in another tab".into()));
        }
        s.detached_at = None;
        let replay: Vec<u8> = if resumed {
            s.scrollback.iter().copied().collect()
        } else {
            Vec::new()
        };
        (me, replay)
    };
    if resumed {
        let _ = st.ctrl.resize_console(&console.exec_id, cols, rows).await;
        let _ = sink
            .send(Message::Text("1Reconnected to your shell.".into()))
            .await;
        if !replay.is_empty() {
            let _ = sink.send(output(&replay)).await;
        }
    }
    let mut unacked: usize = replay.len();
    let mut acked_total: usize = 0;
    let mut sent_total: usize = replay.len();
    let reason = loop {
        tokio::select! {
            // Output only while the browser keeps up.
            out = rx.recv(), if unacked < window => match out {
                Some(Out::Data(b)) => {
                    unacked += b.len();
                    sent_total += b.len();
                    if sink.send(output(&b)).await.is_err() {
                        break None;
                    }
                }
                Some(Out::End(why)) => break Some(why),
                None => break Some("the shell ended".into()),
            },
            msg = stream.next() => {
                let data: Vec<u8> = match msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(_)) => continue,
                };
                match data.split_first() {
                    Some((b'0', keys)) => {
                        console.state.lock().expect("console").last_input = Instant::now();
                        let mut input = console.input.lock().await;
                        if input.write_all(keys).await.is_err() || input.flush().await.is_err() {
                            break Some("the workstation stopped listening".into());
                        }
                    }
                    Some((b'1', json)) => {
                        #[derive(Deserialize)]
                        struct Resize { cols: u16, rows: u16 }
                        if let Ok(r) = serde_json::from_slice::<Resize>(json) {
                            let _ = st.ctrl.resize_console(
                                &console.exec_id,
                                r.cols.clamp(10, 500),
                                r.rows.clamp(4, 200),
                            ).await;
                        }
                    }
                    Some((b'2', n)) => {
                        // The browser's running total of bytes drawn.
                        if let Some(total) = std::str::from_utf8(n).ok().and_then(|s| s.trim().parse::<usize>().ok()) {
                            let total = total.min(sent_total);
                            if total > acked_total {
                                unacked = unacked.saturating_sub(total - acked_total);
                                acked_total = total;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    {
        let mut s = console.state.lock().expect("console");
        if s.attached.as_ref().is_some_and(|(id, _)| *id == me) {
            s.attached = None;
            s.detached_at = Some(Instant::now());
        }
    }
    if let Some(why) = reason {
        let _ = sink
            .send(Message::Text(format!("1Session {why}.").into()))
            .await;
    }
    let _ = sink.close().await;
}
