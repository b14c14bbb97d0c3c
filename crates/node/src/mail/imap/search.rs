//! SEARCH (RFC 3501 §6.4.4): the keys, parsed into a tree and evaluated per
//! message. Header and text keys match case-insensitively on the raw
//! octets (a substring, as the RFC asks); dates compare by day.

use super::folders::Msg;
use applab_proto::imap::{in_set, sequence_set, Range, Token};
use mail_parser::MessageParser;

#[derive(Debug, Clone)]
pub enum Key {
    All,
    Flag(String, bool),
    Recent(bool),
    New,
    Header(String, String),
    Body(String),
    Text(String),
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    Seq(Vec<Range>),
    Uid(Vec<Range>),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

/// Days since 1970-01-01 of `d-Mon-yyyy`.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim_matches('"').split('-');
    let d: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?.to_ascii_lowercase();
    let y: i64 = it.next()?.parse().ok()?;
    const M: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = M.iter().position(|x| *x == mon)? as i64 + 1;
    if !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

struct P<'a> {
    toks: &'a [Token],
    i: usize,
    max_seq: u32,
    max_uid: u32,
}

impl P<'_> {
    fn next(&mut self) -> Option<&Token> {
        let t = self.toks.get(self.i);
        self.i += 1;
        t
    }

    fn text(&mut self) -> Result<String, String> {
        self.next()
            .and_then(Token::as_text)
            .ok_or_else(|| "search key needs an argument".to_string())
    }

    fn date(&mut self) -> Result<i64, String> {
        let t = self.text()?;
        parse_date(&t).ok_or_else(|| format!("bad date {t:?} (use 1-Feb-2026)"))
    }

    fn key(&mut self, depth: usize) -> Result<Key, String> {
        if depth > 20 {
            return Err("search keys nested too deeply".into());
        }
        let t = self.next().ok_or("missing search key")?.clone();
        if let Token::List(l) = t {
            let mut p = P {
                toks: &l,
                i: 0,
                max_seq: self.max_seq,
                max_uid: self.max_uid,
            };
            let mut keys = Vec::new();
            while p.i < l.len() {
                keys.push(p.key(depth + 1)?);
            }
            return Ok(Key::And(keys));
        }
        let a = t.as_text().ok_or("bad search key")?;
        let up = a.to_ascii_uppercase();
        let flag = |f: &str, on: bool| Ok(Key::Flag(f.to_string(), on));
        match up.as_str() {
            "ALL" => Ok(Key::All),
            "ANSWERED" => flag("\\Answered", true),
            "UNANSWERED" => flag("\\Answered", false),
            "DELETED" => flag("\\Deleted", true),
            "UNDELETED" => flag("\\Deleted", false),
            "DRAFT" => flag("\\Draft", true),
            "UNDRAFT" => flag("\\Draft", false),
            "FLAGGED" => flag("\\Flagged", true),
            "UNFLAGGED" => flag("\\Flagged", false),
            "SEEN" => flag("\\Seen", true),
            "UNSEEN" => flag("\\Seen", false),
            "KEYWORD" => Ok(Key::Flag(self.text()?, true)),
            "UNKEYWORD" => Ok(Key::Flag(self.text()?, false)),
            "RECENT" => Ok(Key::Recent(true)),
            "OLD" => Ok(Key::Recent(false)),
            "NEW" => Ok(Key::New),
            "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => Ok(Key::Header(up.clone(), self.text()?)),
            "HEADER" => {
                let h = self.text()?.to_ascii_uppercase();
                Ok(Key::Header(h, self.text()?))
            }
            "BODY" => Ok(Key::Body(self.text()?)),
            "TEXT" => Ok(Key::Text(self.text()?)),
            "BEFORE" => Ok(Key::Before(self.date()?)),
            "ON" => Ok(Key::On(self.date()?)),
            "SINCE" => Ok(Key::Since(self.date()?)),
            "SENTBEFORE" => Ok(Key::SentBefore(self.date()?)),
            "SENTON" => Ok(Key::SentOn(self.date()?)),
            "SENTSINCE" => Ok(Key::SentSince(self.date()?)),
            "LARGER" => Ok(Key::Larger(
                self.text()?.parse().map_err(|_| "LARGER needs a number")?,
            )),
            "SMALLER" => Ok(Key::Smaller(
                self.text()?.parse().map_err(|_| "SMALLER needs a number")?,
            )),
            "UID" => {
                let s = self.text()?;
                Ok(Key::Uid(
                    sequence_set(&s, self.max_uid).ok_or("bad UID set")?,
                ))
            }
            "NOT" => Ok(Key::Not(Box::new(self.key(depth + 1)?))),
            "OR" => {
                let a = self.key(depth + 1)?;
                let b = self.key(depth + 1)?;
                Ok(Key::Or(Box::new(a), Box::new(b)))
            }
            _ => match sequence_set(&a, self.max_seq) {
                Some(s) => Ok(Key::Seq(s)),
                None => Err(format!("unknown search key {a}")),
            },
        }
    }
}

/// Parse the arguments of SEARCH (after an optional `CHARSET x`).
pub fn parse(args: &[Token], max_seq: u32, max_uid: u32) -> Result<Key, String> {
    let mut start = 0;
    if args.first().and_then(Token::atom_upper).as_deref() == Some("CHARSET") {
        let cs = args
            .get(1)
            .and_then(Token::as_text)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
        }
        start = 2;
    }
    let mut p = P {
        toks: &args[start..],
        i: 0,
        max_seq,
        max_uid,
    };
    let mut keys = Vec::new();
    while p.i < p.toks.len() {
        keys.push(p.key(0)?);
    }
    if keys.is_empty() {
        return Err("SEARCH needs a key".into());
    }
    Ok(Key::And(keys))
}

/// What evaluation may need of a message, loaded lazily.
pub struct Ctx<'a> {
    pub msg: &'a Msg,
    pub seq: u32,
    pub recent: bool,
    raw: Option<Vec<u8>>,
    /// The header section, when the caller has it cached.
    pub header: Option<std::sync::Arc<[u8]>>,
}

/// Whether a key looks at header fields (worth the header cache).
pub fn needs_header(k: &Key) -> bool {
    match k {
        Key::Header(..) | Key::SentBefore(_) | Key::SentOn(_) | Key::SentSince(_) => true,
        Key::Not(k) => needs_header(k),
        Key::Or(a, b) => needs_header(a) || needs_header(b),
        Key::And(ks) => ks.iter().any(needs_header),
        _ => false,
    }
}

impl<'a> Ctx<'a> {
    pub fn new(msg: &'a Msg, seq: u32, recent: bool) -> Self {
        Ctx {
            msg,
            seq,
            recent,
            raw: None,
            header: None,
        }
    }

    /// The header section: cached, or cut from the file.
    fn head(&mut self) -> Vec<u8> {
        if let Some(h) = &self.header {
            return h.to_vec();
        }
        let h = self.split();
        self.raw()[..h].to_vec()
    }

    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            self.raw = Some(std::fs::read(&self.msg.path).unwrap_or_default());
        }
        self.raw.as_deref().unwrap_or(b"")
    }

    fn split(&mut self) -> usize {
        let r = self.raw();
        applab_proto::message::header_end(r).unwrap_or(r.len())
    }
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn header_values(head: &[u8], name: &str) -> Vec<Vec<u8>> {
    applab_proto::message::field_values(head, name)
}

fn sent_day(ctx: &mut Ctx) -> Option<i64> {
    let raw = ctx.head();
    let m = MessageParser::default().parse_headers(&raw[..])?;
    let d = m.date()?;
    Some(days_from_civil(d.year as i64, d.month as i64, d.day as i64))
}

pub fn eval(k: &Key, ctx: &mut Ctx) -> bool {
    let internal_day = ctx.msg.internal.div_euclid(86400);
    match k {
        Key::All => true,
        Key::Flag(f, on) => ctx.msg.flags.iter().any(|x| x.eq_ignore_ascii_case(f)) == *on,
        Key::Recent(on) => ctx.recent == *on,
        Key::New => ctx.recent && !ctx.msg.flags.contains("\\Seen"),
        Key::Header(name, v) => {
            let head = ctx.head();
            header_values(&head, name).iter().any(|x| contains_ci(x, v))
        }
        Key::Body(v) => {
            let h = ctx.split();
            contains_ci(&ctx.raw()[h..], v)
        }
        Key::Text(v) => contains_ci(ctx.raw(), v),
        Key::Before(d) => internal_day < *d,
        Key::On(d) => internal_day == *d,
        Key::Since(d) => internal_day >= *d,
        Key::SentBefore(d) => sent_day(ctx).is_some_and(|x| x < *d),
        Key::SentOn(d) => sent_day(ctx).is_some_and(|x| x == *d),
        Key::SentSince(d) => sent_day(ctx).is_some_and(|x| x >= *d),
        Key::Larger(n) => ctx.msg.size > *n,
        Key::Smaller(n) => ctx.msg.size < *n,
        Key::Seq(s) => in_set(s, ctx.seq),
        Key::Uid(s) => in_set(s, ctx.msg.uid),
        Key::Not(k) => !eval(k, ctx),
        Key::Or(a, b) => eval(a, ctx) || eval(b, ctx),
        Key::And(ks) => ks.iter().all(|k| eval(k, ctx)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_keys() {
        assert_eq!(parse_date("1-Jan-1970"), Some(0));
        assert_eq!(parse_date("27-Nov-2026"), Some(20784));
        assert!(parse_date("31-Foo-2026").is_none());
        let toks = vec![
            Token::Atom("OR".into()),
            Token::Atom("SEEN".into()),
            Token::List(vec![
                Token::Atom("FROM".into()),
                Token::Str(b"alice".to_vec()),
            ]),
            Token::Atom("NOT".into()),
            Token::Atom("1:3".into()),
        ];
        assert!(parse(&toks, 5, 9).is_ok());
        assert!(parse(&[Token::Atom("FROB".into())], 5, 9).is_err());
        assert!(parse(
            &[
                Token::Atom("CHARSET".into()),
                Token::Atom("KOI8".into()),
                Token::Atom("ALL".into())
            ],
            1,
            1
        )
        .unwrap_err()
        .contains("BADCHARSET"));
    }
}
