//! The mail queue: accepted messages wait here until every recipient is
//! delivered or given up on.
//!
//! Local recipients go to their Maildir at once. For another domain the
//! queue does what the lecture tells: find that domain's mail server
//! through DNS (its MX, or its A when it has no MX), open a TCP connection
//! to port 25 and transfer the message; several messages for one server go
//! over one connection. When the other side is down or answers 4xx, the
//! message stays queued and is tried again "after a while" (the `retry`
//! schedule, seconds in a lab instead of the lecture's 30 minutes); a 5xx,
//! or still failing when it `expire`s, sends a bounce to the sender.

use super::client::{Client, Outcome};
use super::message;
use super::schedule::{AfterFailure, Schedule};
use super::store::{Envelope, Rcpt, RcptState, Store};
use super::users::Users;
use crate::dns::client::{self as dns, MxError};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Messages for one domain: each envelope with the indices of its
/// recipients there, and the message bytes.
type Work = Vec<(Envelope, Vec<usize>, Arc<Vec<u8>>)>;

/// The messages to try now, from the queue at time `t`. A message is due
/// at its `next_attempt`; a server about to be contacted also gets the
/// messages for it that are not yet due (one connection carries all), but
/// not a destination that is down (`dead`: domain → when to try it again).
/// A due message whose every pending recipient is at a destination down
/// until later waits until then, without counting an attempt.
fn select_due(
    entries: &mut BTreeMap<String, Envelope>,
    dead: &HashMap<String, f64>,
    local: &str,
    t: f64,
) -> Vec<Envelope> {
    let remote = |r: &Rcpt| Some(domain_of(&r.address)).filter(|d| d != local);
    for e in entries.values_mut().filter(|e| e.next_attempt <= t) {
        let waits: Option<Vec<f64>> = e
            .pending()
            .map(|r| remote(r).and_then(|d| dead.get(&d).copied().filter(|&u| u > t)))
            .collect();
        if let Some(until) = waits.and_then(|w| w.into_iter().reduce(f64::min)) {
            tracing::info!(id = %e.id, retry_in = format!("{:.1}s", until - t), "message deferred: its destination is down");
            e.next_attempt = until;
        }
    }
    let domains: std::collections::BTreeSet<String> = entries
        .values()
        .filter(|e| e.next_attempt <= t)
        .flat_map(|e| e.pending().filter_map(remote))
        .filter(|d| !dead.contains_key(d))
        .collect();
    entries
        .values()
        .filter(|e| {
            e.next_attempt <= t || e.pending().filter_map(remote).any(|d| domains.contains(&d))
        })
        .cloned()
        .collect()
}

fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or("", |x| x.1)
        .to_ascii_lowercase()
}

/// What one delivery attempt does to a message, without IO: each
/// recipient's outcome recorded (delivered, failed, or still pending with
/// the reason), the attempt counted, and, where recipients are still
/// pending, either the next try from the schedule or, once expired, giving
/// up. Returns the recipients that failed now, for the bounce.
fn settle(
    env: &mut Envelope,
    outcomes: &[(usize, &Outcome)],
    schedule: &Schedule,
    now: f64,
) -> Vec<(String, String)> {
    let mut failed_now = Vec::new();
    for &(i, o) in outcomes {
        let Some(r) = env.rcpts.get_mut(i) else {
            continue;
        };
        match o {
            Outcome::Delivered(t) => {
                r.state = RcptState::Delivered;
                r.relay = t.clone();
            }
            Outcome::Temporary(t) => r.last = t.clone(),
            Outcome::Permanent(t) => {
                r.state = RcptState::Failed;
                r.last = t.clone();
                failed_now.push((r.address.clone(), t.clone()));
            }
        }
        tracing::info!(
            id = %env.id, to = %r.address, status = ?r.state, attempt = env.attempts + 1,
            delay = format!("{:.1}s", now - env.received as f64),
            result = match o { Outcome::Delivered(x) | Outcome::Temporary(x) | Outcome::Permanent(x) => x.as_str() },
            "delivery attempt"
        );
    }
    env.attempts += 1;
    if env.pending().next().is_none() {
        return failed_now;
    }
    match schedule.after_failure(env.attempts, env.received as f64, now) {
        AfterFailure::GiveUp => {
            let attempts = env.attempts;
            for r in env
                .rcpts
                .iter_mut()
                .filter(|r| r.state == RcptState::Pending)
            {
                r.state = RcptState::Failed;
                failed_now.push((
                    r.address.clone(),
                    format!("gave up after {attempts} attempts; last: {}", r.last),
                ));
            }
        }
        AfterFailure::RetryAt { at, wait } => {
            env.next_attempt = at;
            tracing::info!(id = %env.id, retry_in = format!("{:.1}s", wait.as_secs_f64()), "message deferred");
        }
    }
    failed_now
}

/// A message is recognised when it comes again only if it names itself
/// (a Message-ID, RFC 5322 §3.6.4): then the same sender, recipients and
/// bytes are the same message. Without one, two identical messages a
/// student types are two messages.
fn retransmission_key(from: &str, rcpts: &[String], msg: &[u8]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let head = &msg[..applab_proto::message::header_end(msg).unwrap_or(msg.len())];
    if applab_proto::message::field_values(head, "Message-ID").is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(from.as_bytes());
    for r in rcpts {
        h.update(b"\0");
        h.update(r.to_ascii_lowercase().as_bytes());
    }
    h.update(b"\0\0");
    h.update(msg);
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The recently accepted messages, in memory and in `accepted.log` (one
/// `digest id` line each, written before the 250, so a SIGKILL keeps it).
/// Bounded: past `MAX` lines the older half is dropped.
struct Accepted {
    path: PathBuf,
    /// Opened once for appending (a line per accepted message).
    file: Option<std::fs::File>,
    ids: HashMap<String, String>,
    order: std::collections::VecDeque<String>,
    /// Lines in the file: rewritten when twice what is remembered.
    lines: usize,
}

impl Accepted {
    const MAX: usize = 20_000;

    fn load(path: PathBuf) -> Accepted {
        let mut a = Accepted {
            path,
            file: None,
            ids: HashMap::new(),
            order: Default::default(),
            lines: 0,
        };
        let text = std::fs::read_to_string(&a.path).unwrap_or_default();
        for l in text.lines() {
            if let Some((k, id)) = l.split_once(' ') {
                a.remember(k.to_string(), id.to_string());
            }
        }
        a.lines = text.lines().count();
        if a.lines > 2 * Self::MAX {
            a.rewrite();
        }
        a
    }

    fn remember(&mut self, key: String, id: String) {
        if self.ids.insert(key.clone(), id).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.ids.get(key).cloned()
    }

    fn add(&mut self, key: String, id: &str) {
        use std::io::Write;
        let line = format!("{key} {id}\n");
        self.remember(key, id.to_string());
        if self.file.is_none() {
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
        let r = match &mut self.file {
            Some(f) => f.write_all(line.as_bytes()),
            None => Err(std::io::Error::other("cannot open it")),
        };
        if let Err(e) = r {
            self.file = None;
            tracing::warn!(file = %self.path.display(), "cannot record an accepted message: {e}");
        }
        self.lines += 1;
        if self.lines > 2 * Self::MAX {
            self.rewrite();
        }
    }

    /// The file cut down to what is remembered.
    fn rewrite(&mut self) {
        self.lines = self.order.len();
        let mut out = String::new();
        for k in &self.order {
            out.push_str(&format!("{k} {}\n", self.ids[k]));
        }
        let tmp = self.path.with_extension("tmp");
        // The appending handle would keep writing to the old file.
        self.file = None;
        if std::fs::write(&tmp, out)
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .is_err()
        {
            tracing::warn!(file = %self.path.display(), "cannot shorten the accepted log");
        }
    }
}

/// The envelopes of one attempt as delivered so far: each relayed
/// recipient's `250` is written down as it arrives (relays to several
/// domains run at once, so they share one copy of each envelope).
struct Progress {
    store: Arc<Store>,
    envs: Mutex<HashMap<String, Envelope>>,
}

impl Progress {
    /// Mark recipients delivered (index, the relay's answer) and write the
    /// envelope durably. The lock is held across the write so a later
    /// state never lands before an earlier one.
    fn delivered(&self, id: &str, marks: &[(usize, String)]) -> std::io::Result<()> {
        let mut envs = self.envs.lock().expect("progress lock");
        let Some(env) = envs.get_mut(id) else {
            return Ok(());
        };
        for (i, relay) in marks {
            if let Some(r) = env.rcpts.get_mut(*i) {
                r.state = RcptState::Delivered;
                r.relay = relay.clone();
            }
        }
        self.store.update(env)
    }
}

pub struct Settings {
    pub domain: String,
    pub hostname: String,
    /// DNS server for MX lookups (`HOST:PORT`); none: /etc/resolv.conf.
    pub resolver: Option<String>,
    /// Port of the other servers (25; tests use others).
    pub relay_port: u16,
    pub schedule: Schedule,
    pub connect_timeout: Duration,
}

pub struct Queue {
    pub store: Arc<Store>,
    s: Settings,
    users: Users,
    entries: Mutex<BTreeMap<String, Envelope>>,
    wake: tokio::sync::Notify,
    seq: AtomicU64,
    /// Destinations that did not answer, and when to try them again: as
    /// Postfix's dead-destination cache, new mail for them waits instead of
    /// knocking at once (and dragging every deferred message along).
    dead: Mutex<HashMap<String, f64>>,
    /// Messages accepted lately (their digest → queue id): a client or a
    /// relay that sends one again because our 250 never reached it gets
    /// the same 250, and the message is not queued twice.
    accepted: Mutex<Accepted>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Queue {
    pub fn open(store: Store, s: Settings, users: Users) -> std::io::Result<Arc<Queue>> {
        let entries: BTreeMap<String, Envelope> = store
            .recover_queue()?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        if !entries.is_empty() {
            tracing::info!(messages = entries.len(), "queue recovered from disk");
        }
        let mut accepted = Accepted::load(store.root.join("accepted.log"));
        // Queued but killed before the log line: the queue file has it.
        for e in entries.values() {
            if let Some(d) = &e.digest {
                accepted.remember(d.clone(), e.id.clone());
            }
        }
        Ok(Arc::new(Queue {
            store: Arc::new(store),
            s,
            users,
            entries: Mutex::new(entries),
            wake: tokio::sync::Notify::new(),
            seq: AtomicU64::new(0),
            dead: Mutex::new(HashMap::new()),
            accepted: Mutex::new(accepted),
        }))
    }

    fn new_id(&self) -> String {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08X}{:05X}{:04X}",
            t.as_secs() as u32,
            t.subsec_micros(),
            n & 0xFFFF
        )
    }

    fn is_local(&self, addr: &str) -> Option<String> {
        let (local, domain) = addr.rsplit_once('@')?;
        domain
            .eq_ignore_ascii_case(&self.s.domain)
            .then(|| local.to_string())
    }

    /// Stamp, queue durably, and only then return the id (for the 250 reply).
    pub async fn accept(
        &self,
        from: &str,
        rcpts: &[String],
        msg: &[u8],
        helo: &str,
        client_ip: &str,
        protocol: &str,
    ) -> std::io::Result<String> {
        let key = retransmission_key(from, rcpts, msg);
        if let Some(k) = &key {
            if let Some(id) = self.accepted.lock().expect("accepted lock").get(k) {
                tracing::info!(id = %id, from = %from, client = %client_ip, "message received again (its 250 was lost): not queued twice");
                return Ok(id);
            }
        }
        let id = self.new_id();
        let stamped = message::stamp(
            &message::Stamp {
                helo,
                client_ip,
                hostname: &self.s.hostname,
                protocol,
                id: &id,
                rcpt: (rcpts.len() == 1).then(|| rcpts[0].as_str()),
            },
            msg,
        );
        let id = self
            .enqueue(id, from, rcpts, stamped, client_ip, key.clone())
            .await?;
        if let Some(k) = key {
            self.accepted.lock().expect("accepted lock").add(k, &id);
        }
        Ok(id)
    }

    async fn enqueue(
        &self,
        id: String,
        from: &str,
        rcpts: &[String],
        msg: Vec<u8>,
        client: &str,
        digest: Option<String>,
    ) -> std::io::Result<String> {
        let env = Envelope {
            id: id.clone(),
            from: from.to_string(),
            rcpts: rcpts
                .iter()
                .map(|r| Rcpt {
                    address: r.clone(),
                    state: RcptState::Pending,
                    last: String::new(),
                    relay: String::new(),
                })
                .collect(),
            received: now() as u64,
            attempts: 0,
            next_attempt: 0.0,
            client: client.to_string(),
            size: msg.len() as u64,
            digest,
        };
        let store = self.store.clone();
        let e2 = env.clone();
        tokio::task::spawn_blocking(move || store.enqueue(&e2, &msg))
            .await
            .map_err(std::io::Error::other)??;
        tracing::info!(
            id = %id, from = %from, to = %rcpts.join(","), size = env.size, client = %client,
            "message queued"
        );
        self.entries
            .lock()
            .expect("queue lock")
            .insert(id.clone(), env);
        self.wake.notify_one();
        Ok(id)
    }

    /// Queue contents, for the `mailq`-like status.
    pub fn snapshot(&self) -> Vec<Envelope> {
        self.entries
            .lock()
            .expect("queue lock")
            .values()
            .cloned()
            .collect()
    }

    /// The delivery loop: runs forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let t = now();
            let due: Vec<Envelope> = {
                let mut e = self.entries.lock().expect("queue lock");
                let dead = self.dead.lock().expect("dead lock");
                select_due(&mut e, &dead, &self.s.domain, t)
            };
            if !due.is_empty() {
                self.attempt(due).await;
                continue;
            }
            let next = {
                let e = self.entries.lock().expect("queue lock");
                e.values()
                    .map(|e| e.next_attempt)
                    .fold(f64::INFINITY, f64::min)
            };
            let wait = (next - now()).clamp(0.01, 30.0);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            }
        }
    }

    async fn attempt(self: &Arc<Self>, due: Vec<Envelope>) {
        let mut messages: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
        for env in &due {
            match tokio::fs::read(self.store.message_path(&env.id)).await {
                Ok(m) => {
                    messages.insert(env.id.clone(), Arc::new(m));
                }
                Err(e) => tracing::error!(id = %env.id, "queued message unreadable: {e}"),
            }
        }
        let mut outcomes: Vec<(String, usize, Outcome)> = Vec::new();
        let mut remote: BTreeMap<String, Work> = BTreeMap::new();
        for env in &due {
            let Some(msg) = messages.get(&env.id) else {
                continue;
            };
            let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, r) in env.rcpts.iter().enumerate() {
                if r.state != RcptState::Pending {
                    continue;
                }
                if let Some(local) = self.is_local(&r.address) {
                    outcomes.push((
                        env.id.clone(),
                        i,
                        self.deliver_local(env, i, &local, msg).await,
                    ));
                } else {
                    by_domain.entry(domain_of(&r.address)).or_default().push(i);
                }
            }
            for (d, idx) in by_domain {
                let down = self.dead.lock().expect("dead lock").get(&d).copied();
                if let Some(until) = down.filter(|&u| u > now()) {
                    // Left alone until its time, even in a message tried for
                    // its other recipients.
                    let why = format!("{d} did not answer; next try in {:.0}s", until - now());
                    outcomes.extend(
                        idx.into_iter()
                            .map(|i| (env.id.clone(), i, Outcome::Temporary(why.clone()))),
                    );
                    continue;
                }
                remote
                    .entry(d)
                    .or_default()
                    .push((env.clone(), idx, msg.clone()));
            }
        }
        let progress = Arc::new(Progress {
            store: self.store.clone(),
            envs: Mutex::new(due.iter().map(|e| (e.id.clone(), e.clone())).collect()),
        });
        let relays = remote.into_iter().map(|(domain, work)| {
            let me = self.clone();
            let progress = progress.clone();
            async move { me.relay(&domain, work, &progress).await }
        });
        for r in futures_util::future::join_all(relays).await {
            outcomes.extend(r);
        }
        self.apply(due, outcomes, &messages).await;
    }

    async fn deliver_local(&self, env: &Envelope, i: usize, local: &str, msg: &[u8]) -> Outcome {
        let Some(user) = self.users.mailbox(local) else {
            return Outcome::Permanent(format!("550 5.1.1 no mailbox {local} here"));
        };
        let rcpt = env.rcpts[i].address.clone();
        let data = message::for_mailbox(&env.from, &rcpt, msg);
        let store = self.store.clone();
        let (id, received) = (env.id.clone(), env.received);
        let u = user.clone();
        let r =
            tokio::task::spawn_blocking(move || store.deliver_local(&u, &id, i, received, &data))
                .await;
        match r {
            Ok(Ok(_)) => Outcome::Delivered(format!("mailbox {user}")),
            Ok(Err(e)) => {
                Outcome::Temporary(format!("451 4.3.0 cannot write to mailbox {user}: {e}"))
            }
            Err(e) => Outcome::Temporary(format!("451 4.3.0 delivery task failed: {e}")),
        }
    }

    async fn resolver(&self) -> anyhow::Result<SocketAddr> {
        match &self.s.resolver {
            Some(r) => dns::server_addr(r, 53).await,
            None => dns::system_server().ok_or_else(|| anyhow::anyhow!("no DNS server configured")),
        }
    }

    /// Everything due for one domain, over one connection when possible.
    async fn relay(
        &self,
        domain: &str,
        work: Work,
        progress: &Arc<Progress>,
    ) -> Vec<(String, usize, Outcome)> {
        let all = |o: Outcome| -> Vec<(String, usize, Outcome)> {
            work.iter()
                .flat_map(|(e, idx, _)| idx.iter().map(move |&i| (e.id.clone(), i)))
                .map(|(id, i)| (id, i, o.clone()))
                .collect()
        };
        let resolver = match self.resolver().await {
            Ok(r) => r,
            Err(e) => return all(Outcome::Temporary(format!("DNS: {e}"))),
        };
        let hosts = match dns::mail_hosts(resolver, domain, Duration::from_secs(3)).await {
            Ok(h) => h,
            Err(MxError::Permanent(m)) => return all(Outcome::Permanent(format!("550 5.1.2 {m}"))),
            Err(MxError::Temporary(m)) => return all(Outcome::Temporary(m)),
        };
        let mut client = None;
        let mut last = String::new();
        'hosts: for h in &hosts {
            for a in &h.addrs {
                let addr = SocketAddr::new(*a, self.s.relay_port);
                let host = h.host.trim_end_matches('.').to_string();
                let trace: super::client::Trace = {
                    let host = host.clone();
                    Box::new(
                        move |sent, line| tracing::debug!(relay = %host, "{} {line}", if sent { "C:" } else { "S:" }),
                    )
                };
                match Client::connect(addr, &self.s.hostname, self.s.connect_timeout, Some(trace))
                    .await
                {
                    Ok(c) => {
                        client = Some((c, format!("{host}[{a}]")));
                        break 'hosts;
                    }
                    Err(e) => {
                        tracing::info!(domain, host = %host, %addr, "relay connection failed: {e}");
                        last = format!("{host}[{a}]: {e}");
                    }
                }
            }
        }
        let Some((mut c, relay)) = client else {
            let until = now() + self.s.schedule.first_wait().as_secs_f64();
            self.dead
                .lock()
                .expect("dead lock")
                .insert(domain.to_string(), until);
            tracing::info!(
                domain,
                "destination down: new mail for it waits until its next try"
            );
            return all(Outcome::Temporary(last));
        };
        if self
            .dead
            .lock()
            .expect("dead lock")
            .remove(domain)
            .is_some()
        {
            tracing::info!(domain, "destination up again");
        }
        let mut out = Vec::new();
        let mut broken: Option<String> = None;
        for (env, idx, msg) in &work {
            if let Some(why) = &broken {
                out.extend(
                    idx.iter()
                        .map(|&i| (env.id.clone(), i, Outcome::Temporary(why.clone()))),
                );
                continue;
            }
            let rcpts: Vec<String> = idx.iter().map(|&i| env.rcpts[i].address.clone()).collect();
            match c.transaction(&env.from, &rcpts, msg).await {
                Ok(res) => {
                    let mut delivered = Vec::new();
                    for (&i, o) in idx.iter().zip(res) {
                        let o = match o {
                            Outcome::Delivered(t) => {
                                delivered.push((i, format!("{relay}: {t}")));
                                Outcome::Delivered(format!("{relay}: {t}"))
                            }
                            Outcome::Temporary(t) => Outcome::Temporary(format!("{relay}: {t}")),
                            Outcome::Permanent(t) => Outcome::Permanent(format!("{relay}: {t}")),
                        };
                        out.push((env.id.clone(), i, o));
                    }
                    // On disk before the next message goes: killed now, the
                    // queue would otherwise send this one again.
                    if !delivered.is_empty() {
                        let (p, id) = (progress.clone(), env.id.clone());
                        let r = tokio::task::spawn_blocking(move || p.delivered(&id, &delivered))
                            .await
                            .map_err(std::io::Error::other)
                            .and_then(|r| r);
                        if let Err(e) = r {
                            tracing::error!(id = %env.id, "cannot record the delivery: {e}");
                        }
                    }
                }
                Err(e) => {
                    let why = format!("{relay}: {e}");
                    out.extend(
                        idx.iter()
                            .map(|&i| (env.id.clone(), i, Outcome::Temporary(why.clone()))),
                    );
                    broken = Some(why);
                }
            }
        }
        if broken.is_none() {
            c.quit().await;
        }
        out
    }

    async fn apply(
        &self,
        due: Vec<Envelope>,
        outcomes: Vec<(String, usize, Outcome)>,
        messages: &HashMap<String, Arc<Vec<u8>>>,
    ) {
        let t = now();
        for mut env in due {
            let mine: Vec<(usize, &Outcome)> = outcomes
                .iter()
                .filter(|(id, _, _)| *id == env.id)
                .map(|(_, i, o)| (*i, o))
                .collect();
            let failed_now = settle(&mut env, &mine, &self.s.schedule, t);
            if !failed_now.is_empty() {
                self.bounce(
                    &env,
                    &failed_now,
                    messages.get(&env.id).map(|m| &m[..]).unwrap_or(b""),
                )
                .await;
            }
            let store = self.store.clone();
            let done = env.pending().next().is_none();
            let e2 = env.clone();
            let message = messages.get(&env.id).cloned();
            let r = tokio::task::spawn_blocking(move || {
                if done {
                    if let Err(e) =
                        store.record_done(&e2, message.as_deref().map_or(&[][..], |m| &m[..]))
                    {
                        tracing::warn!(id = %e2.id, "cannot record the finished message: {e}");
                    }
                    store.remove(&e2.id)
                } else {
                    store.update(&e2)
                }
            })
            .await;
            if let Ok(Err(e)) | Err(e) = r.map_err(std::io::Error::other) {
                tracing::error!(id = %env.id, "cannot record delivery state: {e}");
            }
            let mut entries = self.entries.lock().expect("queue lock");
            if done {
                entries.remove(&env.id);
            } else {
                entries.insert(env.id.clone(), env);
            }
        }
    }

    /// Tell the sender (never for a bounce itself: its sender is `<>`).
    async fn bounce(&self, env: &Envelope, failed: &[(String, String)], original: &[u8]) {
        if env.from.is_empty() {
            tracing::warn!(id = %env.id, "undeliverable bounce dropped");
            return;
        }
        let id = self.new_id();
        let m = message::bounce(&message::Bounce {
            hostname: &self.s.hostname,
            domain: &self.s.domain,
            id: &env.id,
            sender: &env.from,
            failed,
            original,
        });
        match self
            .enqueue(
                id,
                "",
                std::slice::from_ref(&env.from),
                m,
                "localhost",
                None,
            )
            .await
        {
            Ok(b) => tracing::info!(id = %env.id, bounce = %b, to = %env.from, "bounce queued"),
            Err(e) => tracing::error!(id = %env.id, "cannot queue the bounce: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(rcpts: &[&str], received: u64) -> Envelope {
        Envelope {
            id: "Q1".into(),
            from: "alice@a.lab".into(),
            rcpts: rcpts
                .iter()
                .map(|a| Rcpt {
                    address: a.to_string(),
                    state: RcptState::Pending,
                    last: String::new(),
                    relay: String::new(),
                })
                .collect(),
            received,
            attempts: 0,
            next_attempt: 0.0,
            client: String::new(),
            size: 10,
            digest: None,
        }
    }

    fn schedule() -> Schedule {
        Schedule::new(
            vec![Duration::from_secs(1), Duration::from_secs(2)],
            Duration::from_secs(60),
        )
    }

    fn states(env: &Envelope) -> Vec<RcptState> {
        env.rcpts.iter().map(|r| r.state.clone()).collect()
    }

    #[test]
    fn delivered_to_all_is_finished_with_no_bounce() {
        let mut env = envelope(&["bob@b.lab", "carol@b.lab"], 100);
        let ok = Outcome::Delivered("250 ok".into());
        let failed = settle(&mut env, &[(0, &ok), (1, &ok)], &schedule(), 101.0);
        assert!(failed.is_empty());
        assert_eq!(states(&env), [RcptState::Delivered, RcptState::Delivered]);
        assert_eq!((env.attempts, env.pending().count()), (1, 0));
        assert_eq!(env.rcpts[0].relay, "250 ok");
    }

    #[test]
    fn a_temporary_failure_waits_as_the_schedule_says_then_gives_up() {
        let mut env = envelope(&["bob@b.lab"], 100);
        let later = Outcome::Temporary("451 try later".into());
        assert!(settle(&mut env, &[(0, &later)], &schedule(), 100.0).is_empty());
        assert_eq!((env.attempts, env.next_attempt), (1, 101.0));
        assert_eq!(env.rcpts[0].last, "451 try later");
        settle(&mut env, &[(0, &later)], &schedule(), 101.0);
        assert_eq!(env.next_attempt, 103.0, "second wait: 2 s");
        settle(&mut env, &[(0, &later)], &schedule(), 103.0);
        assert_eq!(env.next_attempt, 105.0, "the last wait repeats");
        // Expired: the pending recipient fails, with the last reason.
        let failed = settle(&mut env, &[(0, &later)], &schedule(), 160.0);
        assert_eq!(states(&env), [RcptState::Failed]);
        assert_eq!(failed.len(), 1);
        assert!(failed[0]
            .1
            .contains("gave up after 4 attempts; last: 451 try later"));
    }

    #[test]
    fn a_permanent_failure_bounces_that_recipient_only() {
        let mut env = envelope(&["bob@b.lab", "nobody@b.lab", "dave@c.lab"], 100);
        let ok = Outcome::Delivered("250 ok".into());
        let no = Outcome::Permanent("550 no such user".into());
        let later = Outcome::Temporary("connection refused".into());
        let failed = settle(
            &mut env,
            &[(0, &ok), (1, &no), (2, &later)],
            &schedule(),
            100.0,
        );
        assert_eq!(failed, [("nobody@b.lab".into(), "550 no such user".into())]);
        assert_eq!(
            states(&env),
            [RcptState::Delivered, RcptState::Failed, RcptState::Pending]
        );
        assert_eq!(env.next_attempt, 101.0, "the pending one is retried");
        // The next attempt concerns only the pending recipient.
        let failed = settle(&mut env, &[(2, &ok)], &schedule(), 101.0);
        assert!(failed.is_empty() && env.pending().next().is_none());
        assert_eq!(env.rcpts[1].state, RcptState::Failed, "a failure stays");
    }

    #[test]
    fn an_outcome_for_a_recipient_that_does_not_exist_is_ignored() {
        let mut env = envelope(&["bob@b.lab"], 100);
        let ok = Outcome::Delivered("250".into());
        settle(&mut env, &[(7, &ok)], &schedule(), 100.0);
        assert_eq!(states(&env), [RcptState::Pending]);
    }

    fn queue_of(list: &[(&str, &str, f64)]) -> BTreeMap<String, Envelope> {
        list.iter()
            .map(|(id, to, next)| {
                let mut e = envelope(&[to], 100);
                e.id = id.to_string();
                e.next_attempt = *next;
                (e.id.clone(), e)
            })
            .collect()
    }

    fn ids(v: &[Envelope]) -> Vec<&str> {
        v.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn a_due_message_brings_the_others_for_its_server_along() {
        let mut q = queue_of(&[
            ("new", "bob@b.lab", 0.0),
            ("later", "carol@b.lab", 500.0),
            ("elsewhere", "dave@c.lab", 500.0),
            ("local", "alice@a.lab", 500.0),
        ]);
        let due = select_due(&mut q, &HashMap::new(), "a.lab", 200.0);
        assert_eq!(ids(&due), ["later", "new"]);
    }

    #[test]
    fn new_mail_for_a_destination_that_is_down_waits_for_its_next_try() {
        let mut q = queue_of(&[
            ("new", "bob@b.lab", 0.0),
            ("deferred", "carol@b.lab", 500.0),
        ]);
        let dead = HashMap::from([("b.lab".to_string(), 300.0)]);
        let due = select_due(&mut q, &dead, "a.lab", 200.0);
        assert!(due.is_empty(), "nothing knocks at b.lab: {:?}", ids(&due));
        assert_eq!(q["new"].next_attempt, 300.0);
        assert_eq!(q["new"].attempts, 0, "waiting is not an attempt");
        // At b.lab's time the due message tries it alone: nothing dragged
        // along until b.lab answers again.
        let due = select_due(&mut q, &dead, "a.lab", 300.0);
        assert_eq!(ids(&due), ["new"]);
        let due = select_due(&mut q, &HashMap::new(), "a.lab", 300.0);
        assert_eq!(ids(&due), ["deferred", "new"]);
    }

    #[test]
    fn a_message_also_for_a_live_destination_is_tried() {
        let mut e = envelope(&["bob@b.lab", "dave@c.lab"], 100);
        e.id = "both".into();
        let mut q = BTreeMap::from([(e.id.clone(), e)]);
        let dead = HashMap::from([("b.lab".to_string(), 300.0)]);
        assert_eq!(ids(&select_due(&mut q, &dead, "a.lab", 200.0)), ["both"]);
    }

    #[test]
    fn a_message_sent_again_is_recognised_only_when_it_names_itself() {
        let to = ["bob@b.lab".to_string()];
        let with_id = b"Message-ID: <1@a.lab>\r\nSubject: x\r\n\r\nbody\r\n";
        let key = retransmission_key("a@a.lab", &to, with_id).unwrap();
        assert_eq!(
            retransmission_key("a@a.lab", &to, with_id),
            Some(key.clone())
        );
        let other = ["carol@b.lab".to_string()];
        assert_ne!(
            retransmission_key("a@a.lab", &other, with_id),
            Some(key.clone())
        );
        assert_ne!(retransmission_key("x@a.lab", &to, with_id), Some(key));
        // Typed twice by hand, without a Message-ID: two messages.
        assert_eq!(
            retransmission_key("a@a.lab", &to, b"Subject: x\r\n\r\nbody\r\n"),
            None
        );
        // A Message-ID in the body is not the message's.
        assert_eq!(
            retransmission_key("a@a.lab", &to, b"Subject: x\r\n\r\nMessage-ID: <2@a>\r\n"),
            None
        );
    }

    #[test]
    fn accepted_messages_are_remembered_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accepted.log");
        let mut a = Accepted::load(path.clone());
        a.add("k1".into(), "Q1");
        a.add("k2".into(), "Q2");
        let b = Accepted::load(path.clone());
        assert_eq!(
            (b.get("k1"), b.get("k2")),
            (Some("Q1".into()), Some("Q2".into()))
        );
        assert_eq!(b.get("k3"), None);
        // Bounded: the oldest are forgotten, the file is cut down.
        let mut c = Accepted::load(path.clone());
        for i in 0..(2 * Accepted::MAX + 10) {
            c.add(format!("n{i}"), "Q");
        }
        assert_eq!(c.ids.len(), Accepted::MAX);
        assert_eq!(c.get("k1"), None);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * Accepted::MAX, "{lines}");
    }
}
