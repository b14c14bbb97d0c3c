//! Folder commands of the authenticated state (RFC 3501 §6.3): SELECT,
//! EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, LIST, LSUB, STATUS.

use crate::mail::imap::fetch::quoted;
use crate::mail::imap::folders::{self, DELIMITER};
use crate::mail::imap::session::{Done, Session};
use crate::mail::imap::view::{Opened, Selected};
use crate::mail::imap::SYSTEM_FLAGS;
use applab_proto::imap::Token;

impl Session<'_> {
    pub(in crate::mail::imap) fn select(
        &mut self,
        user: &str,
        name: &str,
        read_only: bool,
        out: &mut Vec<u8>,
    ) -> Done {
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
        let (sel, opened) = Selected::open(canonical, folder, read_only);
        let Opened {
            uidvalidity,
            uidnext,
            first_unseen,
        } = opened;
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

    pub(in crate::mail::imap) fn list(
        &self,
        user: &str,
        reference: &str,
        pattern: &str,
        lsub: bool,
        out: &mut Vec<u8>,
    ) {
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

    pub(in crate::mail::imap) fn status(
        &self,
        user: &str,
        name: &str,
        items: &[Token],
        out: &mut Vec<u8>,
    ) -> Done {
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

    /// CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE: the folder tree.
    pub(in crate::mail::imap) fn manage(&mut self, user: &str, name: &str, args: &[Token]) -> Done {
        let arg = |i: usize| args.get(i).and_then(Token::as_text);
        let ms = &self.s.mailstore;
        let result = match (name, arg(0), arg(1)) {
            ("CREATE", Some(f), _) => ms.create(user, &f),
            ("DELETE", Some(f), _) => {
                if self.sel.as_ref().is_some_and(|s| s.name == f) {
                    self.sel = None;
                }
                ms.delete(user, &f)
            }
            ("RENAME", Some(a), Some(b)) => ms.rename(user, &a, &b),
            ("SUBSCRIBE" | "UNSUBSCRIBE", Some(f), _) => {
                ms.set_subscribed(user, &f, name == "SUBSCRIBE")
            }
            ("RENAME", _, _) => return Done::Bad("usage: RENAME old new".into()),
            _ => return Done::Bad(format!("usage: {name} folder")),
        };
        match result {
            Ok(()) => Done::Ok(format!("{name} completed")),
            Err(e) => Done::No(e),
        }
    }
}
