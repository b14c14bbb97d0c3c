//! EXPUNGE, UID EXPUNGE, CLOSE and UNSELECT (RFC 3501 §6.4.2–3, RFC 4315,
//! RFC 3691): removing `\\Deleted` messages, and leaving the selected state.

use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::Token;
use std::collections::BTreeSet;

impl Session<'_> {
    pub(in crate::mail::imap) fn expunge(
        &mut self,
        only: Option<&BTreeSet<u32>>,
        out: &mut Vec<u8>,
    ) -> Done {
        let sel = self.sel.as_mut().expect("selected");
        if sel.read_only {
            return Done::No("[READ-ONLY] folder is read-only (EXAMINE)".into());
        }
        sel.folder.state.lock().expect("folder").expunge(only);
        sel.updates(true, false, out);
        Done::Ok("EXPUNGE completed".into())
    }

    /// UID EXPUNGE (RFC 4315 §2.1): only the `\\Deleted` messages named.
    pub(in crate::mail::imap) fn uid_expunge(&mut self, args: &[Token], out: &mut Vec<u8>) -> Done {
        let Some(set) = args.first().and_then(Token::as_text) else {
            return Done::Bad("usage: UID EXPUNGE set".into());
        };
        let sel = self.sel.as_ref().expect("selected");
        match sel.resolve(&set, true) {
            Ok(named) => {
                let only: BTreeSet<u32> = named.into_iter().map(|(_, u)| u).collect();
                self.expunge(Some(&only), out)
            }
            Err(e) => Done::Bad(e),
        }
    }

    /// CLOSE expunges silently (no EXPUNGE responses, RFC 3501 §6.4.2)
    /// where the folder is writable; UNSELECT (RFC 3691) does not.
    pub(in crate::mail::imap) fn close(&mut self, expunge: bool) -> Done {
        let sel = self.sel.take().expect("selected");
        if expunge && !sel.read_only {
            sel.folder.state.lock().expect("folder").expunge(None);
        }
        Done::Ok(format!(
            "{} completed",
            if expunge { "CLOSE" } else { "UNSELECT" }
        ))
    }
}
