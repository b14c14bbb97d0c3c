//! FETCH and UID FETCH (RFC 3501 §6.4.5): the items are parsed and
//! rendered in `fetch`; here the messages are found, `\\Seen` set where a
//! body is read, and the folder's lock held only for that.

use crate::mail::imap::fetch;
use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::Token;

impl Session<'_> {
    pub(in crate::mail::imap) fn fetch(
        &mut self,
        args: &[Token],
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Done {
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
        let targets = match self.sel.as_ref().expect("selected").resolve(&set, uid) {
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
            for (seq, u) in targets {
                let mut its = items.clone();
                if sets_seen && !sel.read_only {
                    if let Some(mut flags) = st.by_uid(u).map(|m| m.flags.clone()) {
                        if flags.insert("\\Seen".to_string()) {
                            if let Err(e) = st.set_flags(u, flags) {
                                return Done::No(format!("[SERVERBUG] cannot store \\Seen: {e}"));
                            }
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
            st.flags_stored();
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
}
