//! SEARCH and UID SEARCH (RFC 3501 §6.4.4): keys are parsed and evaluated
//! in `search`; here they run over this session's view.

use crate::mail::imap::search;
use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::Token;

impl Session<'_> {
    pub(in crate::mail::imap) fn search(
        &mut self,
        args: &[Token],
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        let sel = self.sel.as_ref().expect("selected");
        let max_uid = sel.view.last().copied().unwrap_or(0);
        let key = match search::parse(args, sel.view.len() as u32, max_uid) {
            Ok(k) => k,
            Err(e) if e.starts_with('[') => return Done::No(e),
            Err(e) => return Done::Bad(e),
        };
        let mut st = sel.folder.state.lock().expect("folder");
        let mut hits = Vec::new();
        let headers = search::needs_header(&key);
        for (i, u) in sel.view.iter().enumerate() {
            let Some(m) = st.by_uid_mut(*u) else { continue };
            // Header keys read the cached header section, not the file.
            let header = headers.then(|| m.header());
            let mut ctx = search::Ctx::new(m, i as u32 + 1, sel.recent.contains(u));
            ctx.header = header;
            if search::eval(&key, &mut ctx) {
                hits.push(if uid { *u } else { i as u32 + 1 });
            }
        }
        let list: Vec<String> = hits.iter().map(u32::to_string).collect();
        let sep = if list.is_empty() { "" } else { " " };
        out.extend_from_slice(format!("* SEARCH{sep}{}\r\n", list.join(" ")).as_bytes());
        Done::Ok(format!("{}SEARCH completed", if uid { "UID " } else { "" }))
    }
}
