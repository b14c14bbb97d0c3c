//! Where mail rests: the queue (spool) and the users' Maildirs.
//!
//! A server may answer 250 to a message only once it cannot lose it
//! (RFC 5321 §4.1.1.4, §6.1), so every step here is write to a temporary
//! name, fsync the file, rename it into place, fsync the folder. A queued
//! message is two files: `ID.eml` (the message as it will be delivered) and
//! `ID.json` (its envelope and each recipient's state). The `.json` is the
//! commit point: written last, after the `.eml` is safe. At start-up an
//! `.eml` without its `.json` is a message never acknowledged, and removed.
//!
//! Local delivery goes to Maildir (`mailboxes/USER/{tmp,new,cur}`), the
//! format POP3 and IMAP read: each message its own file, written in `tmp/`
//! and renamed into `new/`. The file name is derived from the queue id and
//! recipient, so a delivery repeated after a crash finds it already there
//! instead of delivering it twice.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// State of one recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptState {
    Pending,
    Delivered,
    /// Permanently failed (a bounce was sent or is due).
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rcpt {
    pub address: String,
    pub state: RcptState,
    /// The last reply or error, for the log and the bounce.
    #[serde(default)]
    pub last: String,
    /// Where it went (`mailbox bob`, `mail.b.lab[10.0.0.3]`).
    #[serde(default)]
    pub relay: String,
}

/// A queued message's envelope and delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// Reverse path; empty for bounces (`MAIL FROM:<>`).
    pub from: String,
    pub rcpts: Vec<Rcpt>,
    /// Unix seconds when accepted.
    pub received: u64,
    pub attempts: u32,
    /// Unix seconds (fractional) of the next attempt.
    pub next_attempt: f64,
    /// The client that handed it to us, for the log.
    #[serde(default)]
    pub client: String,
    pub size: u64,
    /// What a retransmission of it would hash to (messages with a
    /// Message-ID only): a message sent again because our 250 was lost is
    /// recognised, even after a crash right after the queue file was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Envelope {
    pub fn pending(&self) -> impl Iterator<Item = &Rcpt> {
        self.rcpts.iter().filter(|r| r.state == RcptState::Pending)
    }
}

pub struct Store {
    pub root: PathBuf,
    queue: PathBuf,
    tmp: PathBuf,
    mailboxes: PathBuf,
    host: String,
    /// Bumped after every local delivery: IMAP sessions in IDLE wake up.
    pub delivered: tokio::sync::watch::Sender<u64>,
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Write `data` to `path` atomically and durably (tmp, fsync, rename, fsync dir).
fn write_durable(tmp_dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().expect("a file path").to_string_lossy();
    let tmp = tmp_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        fsync_dir(path.parent().expect("a parent folder"))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

impl Store {
    /// The store at `root` as it is, creating and cleaning nothing.
    pub fn at(root: &Path, host: &str) -> Store {
        Store {
            root: root.to_path_buf(),
            queue: root.join("queue"),
            tmp: root.join("tmp"),
            mailboxes: root.join("mailboxes"),
            host: host.replace(['/', ':'], "_"),
            delivered: tokio::sync::watch::channel(0).0,
        }
    }

    /// Open for serving: create the folders, drop interrupted writes.
    pub fn open(root: &Path, host: &str) -> std::io::Result<Store> {
        let s = Store::at(root, host);
        for d in [&s.queue, &s.tmp, &s.mailboxes] {
            std::fs::create_dir_all(d)?;
        }
        // Leftovers of writes interrupted by a crash.
        for e in std::fs::read_dir(&s.tmp)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(s)
    }

    /// Bytes free on the queue's file system (statvfs).
    pub fn free_bytes(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(self.root.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid NUL-terminated path and a zeroed out-struct.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// Where finished messages are recorded, one JSON line each.
    pub fn done_log(&self) -> PathBuf {
        self.root.join("done.jsonl")
    }

    /// Record a message whose every recipient is settled (delivered or
    /// bounced), with its attempts: what the checks read to see that a
    /// message was retried and then delivered once. Bounded: past 256 KiB
    /// the older half is dropped.
    pub fn record_done(&self, env: &Envelope, message: &[u8]) -> std::io::Result<()> {
        const MAX: u64 = 256 << 10;
        let head = mail_parser::MessageParser::default().parse_headers(message);
        let line = serde_json::json!({
            "id": env.id,
            "from": env.from,
            "rcpts": env.rcpts,
            "attempts": env.attempts,
            "received": env.received,
            "done": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "subject": head.as_ref().and_then(|m| m.subject()),
            "message_id": head.as_ref().and_then(|m| m.message_id()),
        });
        let path = self.done_log();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let keep = text.lines().skip(text.lines().count() / 2);
            let mut out = String::new();
            for l in keep {
                out.push_str(l);
                out.push('\n');
            }
            write_durable(&self.tmp, &path, out.as_bytes())?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_data()
    }

    /// The finished messages recorded, oldest first.
    pub fn read_done(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.done_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Queue a message durably; returns only once both files are on disk.
    pub fn enqueue(&self, env: &Envelope, message: &[u8]) -> std::io::Result<()> {
        let eml = self.queue.join(format!("{}.eml", env.id));
        let json = self.queue.join(format!("{}.json", env.id));
        let r = write_durable(&self.tmp, &eml, message).and_then(|_| {
            write_durable(
                &self.tmp,
                &json,
                &serde_json::to_vec_pretty(env).map_err(std::io::Error::other)?,
            )
        });
        if r.is_err() {
            // Not acknowledged: leave nothing half-queued behind.
            let _ = std::fs::remove_file(&json);
            let _ = std::fs::remove_file(&eml);
        }
        r
    }

    /// Record a changed delivery state.
    pub fn update(&self, env: &Envelope) -> std::io::Result<()> {
        let json = self.queue.join(format!("{}.json", env.id));
        write_durable(
            &self.tmp,
            &json,
            &serde_json::to_vec_pretty(env).map_err(std::io::Error::other)?,
        )
    }

    /// Remove a message whose every recipient is done.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.queue.join(format!("{id}.json")))?;
        let _ = std::fs::remove_file(self.queue.join(format!("{id}.eml")));
        fsync_dir(&self.queue)
    }

    pub fn message_path(&self, id: &str) -> PathBuf {
        self.queue.join(format!("{id}.eml"))
    }

    /// Every queued envelope, and the `.eml` files without one.
    fn scan_queue(&self) -> std::io::Result<(Vec<Envelope>, Vec<PathBuf>)> {
        let mut out = Vec::new();
        let mut emls = Vec::new();
        for e in std::fs::read_dir(&self.queue)?.flatten() {
            let p = e.path();
            match p.extension().and_then(|x| x.to_str()) {
                Some("json") => match std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Envelope>(&b).ok())
                {
                    Some(env) => out.push(env),
                    None => {
                        tracing::error!(file = %p.display(), "unreadable queue entry kept aside")
                    }
                },
                Some("eml") => emls.push(p),
                _ => {}
            }
        }
        emls.retain(|p| {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            !out.iter().any(|e| e.id == stem)
        });
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((out, emls))
    }

    /// At start-up: the queue, after removing messages never acknowledged.
    pub fn recover_queue(&self) -> std::io::Result<Vec<Envelope>> {
        let (envs, orphans) = self.scan_queue()?;
        for p in orphans {
            tracing::info!(file = %p.display(), "removing a message that was never acknowledged");
            let _ = std::fs::remove_file(&p);
        }
        Ok(envs)
    }

    /// The queue as it is now, touching nothing (for `mailq`).
    pub fn read_queue(&self) -> std::io::Result<Vec<Envelope>> {
        Ok(self.scan_queue()?.0)
    }

    /// Put the seed messages in the users' mailboxes, once: a marker file
    /// remembers it, so a restart (or a student's deletions) do not refill them.
    pub fn seed(
        &self,
        domain: &str,
        seeds: &[applab_roles::SeedMessage],
    ) -> std::io::Result<usize> {
        let marker = self.root.join("seeded");
        if seeds.is_empty() || marker.exists() {
            return Ok(0);
        }
        let date = super::message::rfc5322_date(std::time::SystemTime::now());
        for (i, m) in seeds.iter().enumerate() {
            let user = m.to.to_ascii_lowercase();
            let mut body = String::new();
            for l in m.body.lines() {
                body.push_str(l);
                body.push_str("\r\n");
            }
            let text = format!(
                "Return-Path: <{from}>\r\nDelivered-To: {user}@{domain}\r\nFrom: {from}\r\nTo: {user}@{domain}\r\n\
                 Subject: {subject}\r\nDate: {date}\r\nMessage-ID: <seed-{i}@{domain}>\r\n\r\n{body}",
                from = m.from,
                subject = m.subject,
            );
            let received = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            self.deliver_local(&user, &format!("SEED{i:04}"), 0, received, text.as_bytes())?;
        }
        write_durable(&self.tmp, &marker, b"seeded\n")?;
        Ok(seeds.len())
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.mailboxes.join(user)
    }

    /// Deliver into a user's Maildir `new/`, once per (message, recipient).
    pub fn deliver_local(
        &self,
        user: &str,
        id: &str,
        rcpt_index: usize,
        received: u64,
        message: &[u8],
    ) -> std::io::Result<PathBuf> {
        let md = self.maildir(user);
        for d in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(md.join(d))?;
        }
        let base = format!("{received}.{id}_{rcpt_index}.{}", self.host);
        // Already delivered before a crash? (`cur/` names carry `:2,FLAGS`.)
        let new = md.join("new").join(&base);
        if new.exists() {
            return Ok(new);
        }
        let prefix = format!("{base}:");
        if let Some(p) = std::fs::read_dir(md.join("cur"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
        {
            return Ok(p);
        }
        let tmp = md.join("tmp").join(&base);
        let r = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(message)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &new)?;
            fsync_dir(&md.join("new"))
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        } else {
            self.delivered.send_modify(|n| *n += 1);
        }
        r.map(|_| new)
    }
}
