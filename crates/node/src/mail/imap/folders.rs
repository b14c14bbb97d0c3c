//! A user's IMAP folders over Maildir, with what IMAP adds to it: unique
//! identifiers (UIDs, strictly ascending in a folder, never reused, valid
//! while UIDVALIDITY stays the same), flags, and the \Recent claim.
//!
//! INBOX is the user's Maildir (`mailboxes/USER`); a folder `Work.2024` is
//! the Maildir++ sub-folder `mailboxes/USER/.Work.2024` (the hierarchy
//! delimiter is "."). Each folder keeps its UIDs and keywords in
//! `applab-imap.json` beside its `cur/` and `new/`; the system flags are in
//! the file names, as every Maildir reader expects (`cur/BASE:2,FS` is
//! flagged and seen), renamed before a STORE is answered. Messages arrive by SMTP
//! delivery or APPEND and leave by EXPUNGE or POP3; `sync` reconciles the
//! index with the files. All sessions of the server share one `Folder` per
//! folder (behind a lock), so what one session changes, the others see;
//! `version` grows with every change so they can tell.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const DELIMITER: char = '.';
const INDEX: &str = "applab-imap.json";
const SUBSCRIPTIONS: &str = "applab-subscriptions";

#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    pub base: String,
    pub path: PathBuf,
    pub size: u64,
    pub flags: BTreeSet<String>,
    /// INTERNALDATE, unix seconds.
    pub internal: i64,
    /// The header section, kept once read (SEARCH on header fields).
    pub header: Option<Arc<[u8]>>,
}

/// Largest header section kept in memory.
const MAX_CACHED_HEADER: usize = 16 << 10;

impl Msg {
    /// The header section (read from the file the first time).
    pub fn header(&mut self) -> Arc<[u8]> {
        if let Some(h) = &self.header {
            return h.clone();
        }
        let raw = std::fs::read(&self.path).unwrap_or_default();
        let end = applab_proto::message::header_end(&raw).unwrap_or(raw.len());
        let h: Arc<[u8]> = Arc::from(&raw[..end]);
        if h.len() <= MAX_CACHED_HEADER {
            self.header = Some(h.clone());
        }
        h
    }
}

#[derive(Serialize, Deserialize, Default)]
struct IndexFile {
    uidvalidity: u32,
    uidnext: u32,
    recent_upto: u32,
    msgs: BTreeMap<String, IndexEntry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct IndexEntry {
    uid: u32,
    flags: BTreeSet<String>,
    internal: i64,
}

pub struct FolderState {
    pub dir: PathBuf,
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// Messages up to this UID have been announced as \Recent to a session.
    pub recent_upto: u32,
    pub msgs: Vec<Msg>,
    pub version: u64,
    /// Modification times of new/ and cur/ at the last listing: while they
    /// hold, no file came or went and the listing is skipped.
    stamp: Option<(SystemTime, SystemTime)>,
    last_listing: std::time::Instant,
    /// \\Recent bookkeeping not yet written to the index (within a second:
    /// lost in a crash, a message is only announced as recent again).
    dirty: bool,
    /// Keywords changed since the index was written (written before the
    /// command that changed them is answered).
    keywords_changed: bool,
    last_save: std::time::Instant,
}

pub struct Folder {
    pub state: Mutex<FolderState>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The Maildir info letters of the IMAP system flags, in the ASCII order
/// the convention writes them.
const LETTERS: [(char, &str); 5] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// IMAP system flags to Maildir info letters.
fn info_letters(flags: &BTreeSet<String>) -> String {
    LETTERS
        .iter()
        .filter(|(_, f)| flags.contains(*f))
        .map(|(c, _)| c)
        .collect()
}

fn is_system(flag: &str) -> bool {
    flag.starts_with('\\')
}

fn keywords(flags: &BTreeSet<String>) -> impl Iterator<Item = &String> {
    flags.iter().filter(|f| !is_system(f))
}

/// Maildir info letters to IMAP system flags.
fn maildir_flags(info: &str) -> BTreeSet<String> {
    LETTERS
        .iter()
        .filter(|(c, _)| info.contains(*c))
        .map(|(_, f)| f.to_string())
        .collect()
}

impl FolderState {
    fn load(dir: &Path) -> FolderState {
        let idx: IndexFile = std::fs::read(dir.join(INDEX))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let uidvalidity = if idx.uidvalidity == 0 {
            // New folder: a fresh UIDVALIDITY (seconds are fine, RFC 3501 §2.3.1.1).
            (now() as u32).max(1)
        } else {
            idx.uidvalidity
        };
        let mut st = FolderState {
            dir: dir.to_path_buf(),
            uidvalidity,
            uidnext: idx.uidnext.max(1),
            recent_upto: idx.recent_upto,
            msgs: Vec::new(),
            version: 0,
            stamp: None,
            last_listing: std::time::Instant::now(),
            dirty: false,
            keywords_changed: false,
            last_save: std::time::Instant::now(),
        };
        for (base, e) in idx.msgs {
            st.msgs.push(Msg {
                uid: e.uid,
                path: dir.join("cur").join(&base),
                base,
                size: 0,
                flags: e.flags,
                internal: e.internal,
                header: None,
            });
        }
        st.msgs.sort_by_key(|m| m.uid);
        st
    }

    fn save(&mut self) {
        self.dirty = false;
        self.keywords_changed = false;
        self.last_save = std::time::Instant::now();
        let idx = IndexFile {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            recent_upto: self.recent_upto,
            msgs: self
                .msgs
                .iter()
                .map(|m| {
                    (
                        m.base.clone(),
                        IndexEntry {
                            uid: m.uid,
                            flags: m.flags.clone(),
                            internal: m.internal,
                        },
                    )
                })
                .collect(),
        };
        let tmp = self.dir.join(format!("{INDEX}.tmp"));
        let ok = serde_json::to_vec(&idx)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|_| std::fs::rename(&tmp, self.dir.join(INDEX)).ok());
        if ok.is_none() {
            tracing::error!(dir = %self.dir.display(), "cannot save the IMAP index");
        }
    }

    /// The modification times of `new/` and `cur/`.
    fn mtimes(&self) -> Option<(SystemTime, SystemTime)> {
        let mtime = |d: &str| {
            std::fs::metadata(self.dir.join(d))
                .and_then(|m| m.modified())
                .ok()
        };
        mtime("new").zip(mtime("cur"))
    }

    /// Bring the index in line with the files: new files get the next UIDs
    /// (in delivery order), vanished ones are dropped. True if anything changed.
    pub fn sync(&mut self) -> bool {
        let stamp = self.mtimes();
        // A listing at least every 2 s all the same: mtimes have a granularity.
        if stamp.is_some()
            && stamp == self.stamp
            && self.last_listing.elapsed() < std::time::Duration::from_secs(2)
        {
            self.flush_if_due();
            return false;
        }
        self.stamp = stamp;
        self.last_listing = std::time::Instant::now();
        let files = match super::super::maildir::list(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot list a folder: {e}");
                return false;
            }
        };
        let by_base: HashMap<&str, &super::super::maildir::Entry> =
            files.iter().map(|e| (e.base.as_str(), e)).collect();
        let before = self.msgs.len();
        self.msgs.retain(|m| by_base.contains_key(m.base.as_str()));
        let mut changed = self.msgs.len() != before;
        let known: BTreeSet<String> = self.msgs.iter().map(|m| m.base.clone()).collect();
        for m in &mut self.msgs {
            if let Some(e) = by_base.get(m.base.as_str()) {
                m.path = e.path.clone();
                m.size = e.size;
                // The name holds the system flags (ours, renamed before each
                // answer, or another Maildir reader's); the index, keywords.
                let mut flags = maildir_flags(&e.flags);
                flags.extend(keywords(&m.flags).cloned());
                if flags != m.flags {
                    m.flags = flags;
                    changed = true;
                }
            }
        }
        for e in &files {
            if known.contains(&e.base) {
                continue;
            }
            let internal = std::fs::metadata(&e.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(now(), |d| d.as_secs() as i64);
            self.msgs.push(Msg {
                uid: self.uidnext,
                base: e.base.clone(),
                path: e.path.clone(),
                size: e.size,
                flags: maildir_flags(&e.flags),
                internal,
                header: None,
            });
            self.uidnext += 1;
            changed = true;
        }
        if changed {
            self.version += 1;
            self.save();
        }
        changed
    }

    /// A change of UIDs or messages: saved at once (a UID must never be
    /// given out twice, even after a crash).
    pub fn touch(&mut self) {
        self.version += 1;
        self.save();
    }

    /// Give a message new flags, on disk when this returns: the system flags
    /// by renaming its file to `cur/BASE:2,LETTERS` (Dovecot does the same);
    /// keywords are noted for `flags_stored`, which writes the index. True if
    /// anything changed.
    pub fn set_flags(&mut self, uid: u32, flags: BTreeSet<String>) -> std::io::Result<bool> {
        let cur = self.dir.join("cur");
        let Some(m) = self.by_uid(uid) else {
            return Ok(false);
        };
        if m.flags == flags {
            return Ok(false);
        }
        let letters = info_letters(&flags);
        let kw_changed = keywords(&m.flags).ne(keywords(&flags));
        let rename = (letters != info_letters(&m.flags) || m.path.parent() != Some(&cur))
            .then(|| (m.path.clone(), cur.join(format!("{}:2,{letters}", m.base))));
        let mut path = None;
        if let Some((from, to)) = rename {
            // Our own rename is no news to the listing: where nothing else
            // changed since it, it stays valid (else the next sync lists).
            let unchanged = self.stamp.is_some() && self.mtimes() == self.stamp;
            match std::fs::rename(&from, &to) {
                Ok(()) => {
                    if unchanged {
                        self.stamp = self.mtimes();
                    }
                    path = Some(to);
                }
                // Gone meanwhile (POP3, another server): the next sync drops it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let m = self.by_uid_mut(uid).expect("looked up above");
        if let Some(p) = path {
            m.path = p;
        }
        m.flags = flags;
        self.keywords_changed |= kw_changed;
        self.version += 1;
        Ok(true)
    }

    /// After a command's `set_flags`: keywords written to the index before
    /// the command is answered.
    pub fn flags_stored(&mut self) {
        if self.keywords_changed {
            self.save();
        }
    }

    /// The \\Recent claim moved on: other sessions see it now, the index
    /// has it within a second.
    pub fn touch_recent(&mut self) {
        self.version += 1;
        self.dirty = true;
        self.flush_if_due();
    }

    pub fn flush_if_due(&mut self) {
        if self.dirty && self.last_save.elapsed() >= std::time::Duration::from_secs(1) {
            self.save();
        }
    }

    pub fn flush(&mut self) {
        if self.dirty {
            self.save();
        }
    }

    pub fn by_uid(&self, uid: u32) -> Option<&Msg> {
        self.msgs
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &self.msgs[i])
    }

    pub fn by_uid_mut(&mut self, uid: u32) -> Option<&mut Msg> {
        self.msgs
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &mut self.msgs[i])
    }

    /// Add a message (APPEND, COPY): written durably into `new/`.
    pub fn add(
        &mut self,
        data: &[u8],
        flags: BTreeSet<String>,
        internal: i64,
    ) -> std::io::Result<u32> {
        let base = format!("{}.I{}_{}.imap", now(), self.uidnext, rand::random::<u32>());
        let tmp = self.dir.join("tmp").join(&base);
        // Flags given (APPEND, COPY): in the name at once, in `cur/`.
        let letters = info_letters(&flags);
        let path = if letters.is_empty() {
            self.dir.join("new").join(&base)
        } else {
            self.dir.join("cur").join(format!("{base}:2,{letters}"))
        };
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let uid = self.uidnext;
        self.uidnext += 1;
        self.msgs.push(Msg {
            uid,
            base,
            path,
            size: data.len() as u64,
            flags,
            internal,
            header: None,
        });
        self.touch();
        Ok(uid)
    }

    /// Remove the messages flagged \Deleted (optionally only those in `only`);
    /// their UIDs, ascending.
    pub fn expunge(&mut self, only: Option<&BTreeSet<u32>>) -> Vec<u32> {
        let mut gone = Vec::new();
        self.msgs.retain(|m| {
            let del = m.flags.contains("\\Deleted") && only.is_none_or(|o| o.contains(&m.uid));
            if del {
                match std::fs::remove_file(&m.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %m.path.display(), "expunge: {e}");
                        return true;
                    }
                }
                gone.push(m.uid);
            }
            !del
        });
        if !gone.is_empty() {
            self.touch();
        }
        gone
    }

    pub fn unseen(&self) -> usize {
        self.msgs
            .iter()
            .filter(|m| !m.flags.contains("\\Seen"))
            .count()
    }
}

/// Where folders live on disk, and the folders in use.
pub struct Mailstore {
    root: PathBuf,
    open: Mutex<HashMap<PathBuf, Arc<Folder>>>,
}

/// A folder name is safe to become a path: no separators, no dot tricks.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c >= ' ' && c != '/' && c != '\\' && c != '\x7f' && c != '*' && c != '%')
        && name.split(DELIMITER).all(|p| !p.is_empty())
}

impl Mailstore {
    pub fn new(root: PathBuf) -> Mailstore {
        Mailstore {
            root,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Write pending flag changes of every open folder (run every second).
    pub fn flush_all(&self) {
        let open: Vec<Arc<Folder>> = self
            .open
            .lock()
            .expect("folders")
            .values()
            .cloned()
            .collect();
        for f in open {
            f.state.lock().expect("folder").flush_if_due();
        }
    }

    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.root.join(user)
    }

    /// The folder's directory; INBOX is case-insensitive (RFC 3501 §5.1).
    pub fn dir(&self, user: &str, name: &str) -> Option<PathBuf> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Some(self.user_dir(user));
        }
        valid_name(name).then(|| self.user_dir(user).join(format!(".{name}")))
    }

    pub fn exists(&self, user: &str, name: &str) -> bool {
        if name.eq_ignore_ascii_case("INBOX") {
            return true;
        }
        self.dir(user, name).is_some_and(|d| d.join("cur").is_dir())
    }

    /// The shared state of a folder (which must exist), synced with its files.
    pub fn folder(&self, user: &str, name: &str) -> Option<Arc<Folder>> {
        if !self.exists(user, name) {
            return None;
        }
        let dir = self.dir(user, name)?;
        for sub in ["cur", "new", "tmp"] {
            let _ = std::fs::create_dir_all(dir.join(sub));
        }
        let f = self
            .open
            .lock()
            .expect("folders")
            .entry(dir.clone())
            .or_insert_with(|| {
                Arc::new(Folder {
                    state: Mutex::new(FolderState::load(&dir)),
                })
            })
            .clone();
        f.state.lock().expect("folder").sync();
        Some(f)
    }

    pub fn create(&self, user: &str, name: &str) -> Result<(), String> {
        let name = name.trim_end_matches(DELIMITER);
        if name.eq_ignore_ascii_case("INBOX") || self.exists(user, name) {
            return Err("[ALREADYEXISTS] folder exists".into());
        }
        let dir = self.dir(user, name).ok_or("[CANNOT] bad folder name")?;
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("[SERVERBUG] {e}"))?;
        }
        // Parents exist too (RFC 3501 §6.3.3: CREATE a.b makes a).
        let parts: Vec<&str> = name.split(DELIMITER).collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join(&DELIMITER.to_string());
            if let Some(d) = self.dir(user, &parent) {
                for sub in ["cur", "new", "tmp"] {
                    let _ = std::fs::create_dir_all(d.join(sub));
                }
            }
        }
        Ok(())
    }

    pub fn delete(&self, user: &str, name: &str) -> Result<(), String> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Err("[CANNOT] INBOX cannot be deleted".into());
        }
        if !self.exists(user, name) {
            return Err("[NONEXISTENT] no such folder".into());
        }
        let dir = self.dir(user, name).ok_or("[CANNOT] bad folder name")?;
        self.open.lock().expect("folders").remove(&dir);
        std::fs::remove_dir_all(&dir).map_err(|e| format!("[SERVERBUG] {e}"))
    }

    pub fn rename(&self, user: &str, from: &str, to: &str) -> Result<(), String> {
        if !self.exists(user, from) {
            return Err("[NONEXISTENT] no such folder".into());
        }
        if self.exists(user, to) || to.eq_ignore_ascii_case("INBOX") {
            return Err("[ALREADYEXISTS] the new name exists".into());
        }
        let to_dir = self.dir(user, to).ok_or("[CANNOT] bad folder name")?;
        if from.eq_ignore_ascii_case("INBOX") {
            // RFC 3501 §6.3.5: INBOX's messages move; INBOX stays, empty.
            self.create(user, to)?;
            let src = self.folder(user, "INBOX").ok_or("[SERVERBUG] no INBOX")?;
            let dst = self
                .folder(user, to)
                .ok_or("[SERVERBUG] new folder missing")?;
            let mut s = src.state.lock().expect("folder");
            let mut d = dst.state.lock().expect("folder");
            for m in std::mem::take(&mut s.msgs) {
                let data = std::fs::read(&m.path).map_err(|e| format!("[SERVERBUG] {e}"))?;
                d.add(&data, m.flags.clone(), m.internal)
                    .map_err(|e| format!("[SERVERBUG] {e}"))?;
                let _ = std::fs::remove_file(&m.path);
            }
            s.touch();
            return Ok(());
        }
        let from_dir = self.dir(user, from).ok_or("[CANNOT] bad folder name")?;
        // Children move with their parent.
        let prefix = format!(".{from}{DELIMITER}");
        let user_dir = self.user_dir(user);
        let mut moves = vec![(from_dir.clone(), to_dir)];
        if let Ok(rd) = std::fs::read_dir(&user_dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(rest) = n.strip_prefix(&prefix) {
                    moves.push((e.path(), user_dir.join(format!(".{to}{DELIMITER}{rest}"))));
                }
            }
        }
        let mut open = self.open.lock().expect("folders");
        for (a, b) in moves {
            open.remove(&a);
            std::fs::rename(&a, &b).map_err(|e| format!("[SERVERBUG] {e}"))?;
        }
        Ok(())
    }

    /// Every folder of the user, INBOX first.
    pub fn list(&self, user: &str) -> Vec<String> {
        let mut out = vec!["INBOX".to_string()];
        let mut rest: Vec<String> = std::fs::read_dir(self.user_dir(user))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("cur").is_dir())
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_prefix('.')
                    .map(str::to_string)
            })
            .filter(|n| valid_name(n))
            .collect();
        rest.sort();
        out.extend(rest);
        out
    }

    pub fn subscriptions(&self, user: &str) -> BTreeSet<String> {
        std::fs::read_to_string(self.user_dir(user).join(SUBSCRIPTIONS))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn set_subscribed(&self, user: &str, name: &str, on: bool) -> Result<(), String> {
        let mut subs = self.subscriptions(user);
        if on {
            subs.insert(name.to_string());
        } else {
            subs.remove(name);
        }
        let text: String = subs.iter().map(|s| format!("{s}\n")).collect();
        let _ = std::fs::create_dir_all(self.user_dir(user));
        std::fs::write(self.user_dir(user).join(SUBSCRIPTIONS), text)
            .map_err(|e| format!("[SERVERBUG] {e}"))
    }
}

/// IMAP LIST pattern match: `*` matches anything, `%` anything but the delimiter.
pub fn pattern_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('%') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != DELIMITER)
                .any(|i| go(&p[1..], &n[i..])),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // INBOX matches case-insensitively.
    if name == "INBOX" {
        let up: Vec<char> = pattern.to_ascii_uppercase().chars().collect();
        return go(&up, &n);
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(pattern_match("*", "Work.2024"));
        assert!(pattern_match("%", "Work"));
        assert!(!pattern_match("%", "Work.2024"));
        assert!(pattern_match("Work.%", "Work.2024"));
        assert!(pattern_match("inbox", "INBOX"));
        assert!(!pattern_match("W", "Work"));
    }

    #[test]
    fn names() {
        assert!(valid_name("Work.2024"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("a..b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn stored_flags_are_on_disk_when_set_flags_returns() {
        let dir = tempfile::tempdir().unwrap();
        let ms = Mailstore::new(dir.path().join("mailboxes"));
        std::fs::create_dir_all(ms.user_dir("bob")).unwrap();
        let folder_dir = ms.dir("bob", "INBOX").unwrap();
        let f = ms.folder("bob", "INBOX").unwrap();
        let (a, b) = {
            let mut st = f.state.lock().unwrap();
            let a = st.add(b"Subject: a\r\n\r\n", BTreeSet::new(), 0).unwrap();
            let seen = BTreeSet::from(["\\Seen".to_string()]);
            let b = st.add(b"Subject: b\r\n\r\n", seen, 0).unwrap();
            let flags: BTreeSet<String> = ["\\Flagged", "\\Seen", "$Work"].map(String::from).into();
            assert!(st.set_flags(a, flags.clone()).unwrap());
            assert!(!st.set_flags(a, flags).unwrap(), "no change, no rename");
            st.set_flags(b, BTreeSet::new()).unwrap();
            st.flags_stored();
            (a, b)
        };
        // As Maildir readers see it: a in cur/ as flagged and seen.
        let names: Vec<String> = std::fs::read_dir(folder_dir.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.ends_with(":2,FS")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with(":2,")), "{names:?}");
        // Read afresh, as after a SIGKILL: nothing flushed, all there.
        let mut st = FolderState::load(&folder_dir);
        st.sync();
        let flags = |u| {
            st.by_uid(u)
                .unwrap()
                .flags
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(flags(a), ["$Work", "\\Flagged", "\\Seen"]);
        assert!(flags(b).is_empty());
    }
}
