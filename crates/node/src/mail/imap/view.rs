//! The per-session view of a selected folder (RFC 3501 §7.4.1): the
//! sequence numbers this client knows, the flags it was last told, and
//! what to tell it when other sessions or deliveries changed the folder.

use super::folders::Folder;
use applab_proto::imap::{in_set, sequence_set};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub(super) struct Selected {
    pub(super) name: String,
    pub(super) folder: Arc<Folder>,
    pub(super) read_only: bool,
    /// UIDs in sequence-number order, as this client knows them.
    pub(super) view: Vec<u32>,
    pub(super) flags: HashMap<u32, BTreeSet<String>>,
    pub(super) recent: HashSet<u32>,
    /// The folder's version this view last caught up with.
    pub(super) version: u64,
}

/// What SELECT reports besides the counts (RFC 3501 §6.3.1).
pub(super) struct Opened {
    pub(super) uidvalidity: u32,
    pub(super) uidnext: u32,
    /// The sequence number of the first message without `\\Seen`.
    pub(super) first_unseen: Option<usize>,
}

impl Selected {
    /// A new view of `folder`: every message in it, and (unless read-only)
    /// this session takes `\\Recent` for the ones no session has seen yet.
    pub(super) fn open(name: String, folder: Arc<Folder>, read_only: bool) -> (Selected, Opened) {
        let mut sel = Selected {
            name,
            folder: folder.clone(),
            read_only,
            view: Vec::new(),
            flags: HashMap::new(),
            recent: HashSet::new(),
            version: 0,
        };
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
                    st.touch_recent();
                }
            }
        }
        let first_unseen = st
            .msgs
            .iter()
            .position(|m| !m.flags.contains("\\Seen"))
            .map(|i| i + 1);
        sel.version = st.version;
        let opened = Opened {
            uidvalidity: st.uidvalidity,
            uidnext: st.uidnext,
            first_unseen,
        };
        drop(st);
        (sel, opened)
    }

    /// Tell this client what changed in the folder since it last looked.
    pub(super) fn updates(&mut self, allow_expunge: bool, uid_form: bool, out: &mut Vec<u8>) {
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
                    st.touch_recent();
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
                flags_line(
                    i + 1,
                    uid_form.then_some(*uid),
                    &m.flags,
                    self.recent.contains(uid),
                    out,
                );
            }
        }
        // Caught up, unless expunges were held back for later.
        if allow_expunge {
            self.version = st.version;
        }
    }

    /// The messages a set names, as (sequence number, UID), in order.
    pub(super) fn resolve(&self, set: &str, uid: bool) -> Result<Vec<(usize, u32)>, String> {
        if uid {
            let max = self.view.last().copied().unwrap_or(0);
            let r = sequence_set(set, max).ok_or("bad UID set")?;
            Ok(self
                .view
                .iter()
                .enumerate()
                .filter(|(_, u)| in_set(&r, **u))
                .map(|(i, u)| (i + 1, *u))
                .collect())
        } else {
            let max = self.view.len() as u32;
            let r = sequence_set(set, max).ok_or("bad sequence set")?;
            if r.iter().any(|&(_, b)| b > max) {
                return Err("no such message (sequence number beyond the last)".into());
            }
            Ok(self
                .view
                .iter()
                .enumerate()
                .filter(|(i, _)| in_set(&r, *i as u32 + 1))
                .map(|(i, u)| (i + 1, *u))
                .collect())
        }
    }
}

/// Take out of a session's `view` (UIDs in sequence order) the messages no
/// longer in the folder; the EXPUNGE numbers to send, with their UIDs. In
/// ascending order, each number counted after the removals before it
/// (RFC 3501 §7.4.1: deleting 3, 4, 7, 11 reads 3, 3, 5, 8), as Dovecot
/// sends them.
pub(super) fn expunge_numbers(view: &mut Vec<u32>, current: &HashSet<u32>) -> Vec<(usize, u32)> {
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

/// An untagged `FETCH (FLAGS ...)` line, `\\Recent` added where this
/// session holds it.
pub(super) fn flags_line(
    seq: usize,
    uid: Option<u32>,
    flags: &BTreeSet<String>,
    recent: bool,
    out: &mut Vec<u8>,
) {
    let mut f: Vec<&str> = flags.iter().map(String::as_str).collect();
    if recent {
        f.push("\\Recent");
    }
    let uid_part = uid.map(|u| format!("UID {u} ")).unwrap_or_default();
    out.extend_from_slice(
        format!("* {seq} FETCH ({uid_part}FLAGS ({}))\r\n", f.join(" ")).as_bytes(),
    );
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

    /// A folder in a fresh mail store, with `n` messages.
    fn folder(n: usize) -> (tempfile::TempDir, Arc<Folder>) {
        let dir = tempfile::tempdir().unwrap();
        let ms = super::super::folders::Mailstore::new(dir.path().join("mailboxes"));
        std::fs::create_dir_all(ms.user_dir("bob")).unwrap();
        let f = ms.folder("bob", "INBOX").unwrap();
        for i in 0..n {
            let body = format!("Subject: {i}\r\n\r\nbody\r\n");
            f.state
                .lock()
                .unwrap()
                .add(body.as_bytes(), BTreeSet::new(), 0)
                .unwrap();
        }
        (dir, f)
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn sets_name_messages_by_position_or_by_uid() {
        let (_dir, f) = folder(5);
        let (mut sel, opened) = Selected::open("INBOX".into(), f, false);
        assert_eq!((opened.uidnext, opened.first_unseen), (6, Some(1)));
        sel.view = vec![2, 4, 9]; // as if 1, 3 and 5 were expunged, 9 delivered
        assert_eq!(sel.resolve("2:*", false).unwrap(), [(2, 4), (3, 9)]);
        assert_eq!(sel.resolve("4:*", true).unwrap(), [(2, 4), (3, 9)]);
        // `*` is the largest UID: a range past it still names the last one.
        assert_eq!(sel.resolve("20:*", true).unwrap(), [(3, 9)]);
        assert!(sel.resolve("4", false).is_err(), "no fourth message");
        assert!(sel.resolve("x", true).is_err());
    }

    #[test]
    fn recent_goes_to_the_first_writable_session_only() {
        let (_dir, f) = folder(2);
        let (a, _) = Selected::open("INBOX".into(), f.clone(), false);
        let (b, _) = Selected::open("INBOX".into(), f.clone(), false);
        let (c, _) = Selected::open("INBOX".into(), f, true);
        assert_eq!(a.recent.len(), 2);
        assert!(b.recent.is_empty() && c.recent.is_empty());
    }

    #[test]
    fn a_session_is_told_what_others_changed() {
        let (_dir, f) = folder(3);
        let (mut a, _) = Selected::open("INBOX".into(), f.clone(), false);
        let (mut b, _) = Selected::open("INBOX".into(), f.clone(), false);
        let mut out = Vec::new();
        a.updates(true, false, &mut out);
        assert!(out.is_empty(), "nothing changed: {}", text(&out));

        // b flags message 2 deleted and expunges it; a delivery arrives.
        {
            let mut st = f.state.lock().unwrap();
            st.set_flags(2, BTreeSet::from(["\\Deleted".to_string()]))
                .unwrap();
            st.expunge(None);
            st.add(b"Subject: new\r\n\r\n", BTreeSet::new(), 0).unwrap();
            st.set_flags(3, BTreeSet::from(["\\Seen".to_string()]))
                .unwrap();
        }
        // Not during FETCH/STORE/SEARCH: no EXPUNGE, numbers stay put.
        a.updates(false, false, &mut out);
        let t = text(&out);
        assert!(!t.contains("EXPUNGE"), "{t}");
        assert!(t.contains("* 4 EXISTS\r\n"), "{t}");
        assert!(t.contains("* 3 FETCH (FLAGS (\\Seen \\Recent))\r\n"), "{t}");

        out.clear();
        a.updates(true, true, &mut out);
        assert_eq!(text(&out), "* 2 EXPUNGE\r\n");
        assert_eq!(a.view, [1, 3, 4]);
        out.clear();
        a.updates(true, false, &mut out);
        assert!(out.is_empty(), "told twice: {}", text(&out));

        // b, which saw nothing yet: the expunge, the new message (not
        // \\Recent: a has it), UID FETCH form.
        out.clear();
        b.updates(true, true, &mut out);
        let t = text(&out);
        assert!(
            t.starts_with("* 2 EXPUNGE\r\n* 3 EXISTS\r\n* 0 RECENT\r\n"),
            "{t}"
        );
        assert!(t.contains("* 2 FETCH (UID 3 FLAGS (\\Seen))\r\n"), "{t}");
    }
}
