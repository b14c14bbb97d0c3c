//! COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851, UIDPLUS's
//! COPYUID): the sources read first, then added to the destination; a MOVE
//! expunges its sources.

use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::Token;
use std::collections::BTreeSet;
use std::sync::Arc;

impl Session<'_> {
    pub(in crate::mail::imap) fn copy(
        &mut self,
        user: &str,
        args: &[Token],
        uid: bool,
        mv: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        let word = if mv { "MOVE" } else { "COPY" };
        let (Some(set), Some(dest)) = (
            args.first().and_then(Token::as_text),
            args.get(1).and_then(Token::as_text),
        ) else {
            return Done::Bad(format!("usage: {word} set folder"));
        };
        let targets = match self.sel.as_ref().expect("selected").resolve(&set, uid) {
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
                    if let Some(mut flags) = st.by_uid(*u).map(|m| m.flags.clone()) {
                        flags.insert("\\Deleted".into());
                        // The expunge below removes the file; a failure here
                        // only leaves the message in the source.
                        let _ = st.set_flags(*u, flags);
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
}
