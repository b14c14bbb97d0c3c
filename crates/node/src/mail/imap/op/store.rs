//! STORE and UID STORE (RFC 3501 §6.4.6): set, add or remove flags; and
//! the flag-list syntax STORE and APPEND share.

use crate::mail::imap::session::{Done, Session};
use crate::mail::imap::view::flags_line;
use applab_proto::imap::Token;
use std::collections::BTreeSet;

impl Session<'_> {
    pub(in crate::mail::imap) fn store(
        &mut self,
        args: &[Token],
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Done {
        let (Some(set), Some(op)) = (
            args.first().and_then(Token::as_text),
            args.get(1).and_then(Token::atom_upper),
        ) else {
            return Done::Bad("usage: STORE set [+|-]FLAGS[.SILENT] (flags)".into());
        };
        let flags = if args.len() == 3 {
            flag_list(args.get(2))
        } else {
            // Flags given without parentheses: `+FLAGS \Seen \Deleted`.
            flag_list(Some(&Token::List(args[2.min(args.len())..].to_vec())))
        };
        let flags = match flags {
            Ok(f) => f,
            Err(e) => return Done::Bad(e),
        };
        let silent = op.ends_with(".SILENT");
        let mode = op.trim_end_matches(".SILENT");
        if !matches!(mode, "FLAGS" | "+FLAGS" | "-FLAGS") {
            return Done::Bad(format!("unknown STORE operation {op}"));
        }
        let targets = match self.sel.as_ref().expect("selected").resolve(&set, uid) {
            Ok(t) => t,
            Err(e) => return Done::Bad(e),
        };
        let sel = self.sel.as_mut().expect("selected");
        if sel.read_only {
            return Done::No("[READ-ONLY] folder is read-only (EXAMINE)".into());
        }
        let mut st = sel.folder.state.lock().expect("folder");
        // Each message's new flags are on disk before the answer (the
        // Maildir name renamed, keywords in the index).
        for (seq, u) in targets {
            let Some(mut new) = st.by_uid(u).map(|m| m.flags.clone()) else {
                continue;
            };
            match mode {
                "FLAGS" => new = flags.clone(),
                "+FLAGS" => new.extend(flags.iter().cloned()),
                _ => new.retain(|f| !flags.contains(f)),
            }
            if let Err(e) = st.set_flags(u, new.clone()) {
                st.flags_stored();
                return Done::No(format!("[SERVERBUG] cannot store the flags of {u}: {e}"));
            }
            if !silent {
                let recent = sel.recent.contains(&u);
                flags_line(seq, uid.then_some(u), &new, recent, out);
            }
            sel.flags.insert(u, new);
        }
        st.flags_stored();
        Done::Ok(format!("{}STORE completed", if uid { "UID " } else { "" }))
    }
}

pub(super) fn flag_list(t: Option<&Token>) -> Result<BTreeSet<String>, String> {
    let items: Vec<Token> = match t {
        Some(Token::List(l)) => l.clone(),
        Some(a @ Token::Atom(_)) => vec![a.clone()],
        _ => return Err("flags must be a list".into()),
    };
    let mut out = BTreeSet::new();
    for i in items {
        let Token::Atom(a) = i else {
            return Err("a flag is an atom".into());
        };
        let canon = match a.to_ascii_lowercase().as_str() {
            "\\seen" => "\\Seen".to_string(),
            "\\answered" => "\\Answered".to_string(),
            "\\flagged" => "\\Flagged".to_string(),
            "\\deleted" => "\\Deleted".to_string(),
            "\\draft" => "\\Draft".to_string(),
            "\\recent" => return Err("\\Recent cannot be stored".into()),
            _ if a.starts_with('\\') => return Err(format!("unknown system flag {a}")),
            _ => a,
        };
        out.insert(canon);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_lists_are_canonical_and_recent_is_refused() {
        let list = |s: &[&str]| Token::List(s.iter().map(|a| Token::Atom(a.to_string())).collect());
        let f = flag_list(Some(&list(&["\\seen", "\\FLAGGED", "$Label"]))).unwrap();
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            ["$Label", "\\Flagged", "\\Seen"]
        );
        assert!(flag_list(Some(&list(&["\\Recent"]))).is_err());
        assert!(flag_list(Some(&list(&["\\Bogus"]))).is_err());
        assert!(flag_list(Some(&Token::Atom("\\Seen".into()))).is_ok());
        assert!(flag_list(None).is_err());
    }
}
