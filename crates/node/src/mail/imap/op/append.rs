//! APPEND (RFC 3501 §6.3.11): a message the client stores into a folder,
//! with its flags and internal date; answered with its UID (UIDPLUS).

use super::store::flag_list;
use crate::mail::imap::search;
use crate::mail::imap::session::{Done, Session};
use applab_proto::imap::Token;
use std::collections::BTreeSet;

impl Session<'_> {
    pub(in crate::mail::imap) fn append(&self, user: &str, args: &[Token]) -> Done {
        let Some(name) = args.first().and_then(Token::as_text) else {
            return Done::Bad("usage: APPEND folder [(flags)] [date] message".into());
        };
        let mut i = 1;
        let mut flags = BTreeSet::new();
        if let Some(t @ Token::List(_)) = args.get(i) {
            match flag_list(Some(t)) {
                Ok(f) => flags = f,
                Err(e) => return Done::Bad(e),
            }
            i += 1;
        }
        let mut internal = None;
        if let (Some(Token::Str(d)), Some(_)) = (args.get(i), args.get(i + 1)) {
            match parse_datetime(&String::from_utf8_lossy(d)) {
                Some(t) => internal = Some(t),
                None => return Done::Bad("bad date-time (\"27-Nov-2026 20:00:00 +0000\")".into()),
            }
            i += 1;
        }
        let Some(Token::Str(data)) = args.get(i) else {
            return Done::Bad("APPEND needs the message as a literal".into());
        };
        if args.len() != i + 1 {
            return Done::Bad("too many arguments to APPEND".into());
        }
        let Some(folder) = self.s.mailstore.folder(user, &name) else {
            return Done::No("[TRYCREATE] no such folder".into());
        };
        let mut st = folder.state.lock().expect("folder");
        let when = internal.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        match st.add(data, flags, when) {
            Ok(uid) => Done::Ok(format!(
                "[APPENDUID {} {uid}] APPEND completed",
                st.uidvalidity
            )),
            Err(e) => Done::No(format!("[SERVERBUG] cannot store the message: {e}")),
        }
    }
}

/// APPEND's date-time: `27-Nov-2026 20:00:00 +0100` → unix seconds.
fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim_matches('"').trim();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = search::parse_date(date)?;
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    Some(days * 86400 + h * 3600 + m * 60 + sec - sign * (zh * 3600 + zm * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_dates() {
        assert_eq!(parse_datetime("\"01-Jan-1970 00:00:00 +0000\""), Some(0));
        assert_eq!(parse_datetime("01-Jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(parse_datetime("01-Jan-1970 00:00:00 -0030"), Some(1800));
        assert_eq!(parse_datetime("01-Jan-1970 00:00:00 0000"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
