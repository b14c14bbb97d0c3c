//! FETCH (RFC 3501 §6.4.5, §7.4.2): the data items a client may ask of a
//! message, from its flags and dates to its structure and any part of it.
//! A message's MIME structure comes from the mail-parser crate; sections
//! are cut from the raw message by the offsets it reports, so a client gets
//! exactly the octets that are stored.

use super::folders::Msg;
use applab_proto::imap::{astring, nstring, Token};
use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Full,
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    BodyStructure,
    /// BODY without a section: BODYSTRUCTURE without extension data.
    Body,
    Section {
        peek: bool,
        path: Vec<u32>,
        kind: Kind,
        partial: Option<(u32, u32)>,
    },
    Rfc822,
    Rfc822Header,
    Rfc822Text,
}

impl Item {
    /// Whether fetching it sets \Seen (RFC 3501 §6.4.5).
    pub fn sets_seen(&self) -> bool {
        matches!(
            self,
            Item::Section { peek: false, .. } | Item::Rfc822 | Item::Rfc822Text
        )
    }

    fn needs_message(&self) -> bool {
        !matches!(
            self,
            Item::Uid | Item::Flags | Item::InternalDate | Item::Size
        )
    }
}

/// Parse the items of FETCH: one atom or a parenthesized list; macros expanded.
pub fn parse_items(t: &Token) -> Result<Vec<Item>, String> {
    let atoms: Vec<String> = match t {
        Token::Atom(a) => match a.to_ascii_uppercase().as_str() {
            "ALL" => {
                return Ok(vec![
                    Item::Flags,
                    Item::InternalDate,
                    Item::Size,
                    Item::Envelope,
                ])
            }
            "FAST" => return Ok(vec![Item::Flags, Item::InternalDate, Item::Size]),
            "FULL" => {
                return Ok(vec![
                    Item::Flags,
                    Item::InternalDate,
                    Item::Size,
                    Item::Envelope,
                    Item::Body,
                ])
            }
            _ => vec![a.clone()],
        },
        Token::List(l) => l
            .iter()
            .map(|t| {
                t.as_text()
                    .filter(|_| matches!(t, Token::Atom(_)))
                    .ok_or("bad fetch item")
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("bad fetch items".into()),
    };
    atoms.iter().map(|a| parse_item(a)).collect()
}

fn parse_item(a: &str) -> Result<Item, String> {
    let up = a.to_ascii_uppercase();
    Ok(match up.as_str() {
        "UID" => Item::Uid,
        "FLAGS" => Item::Flags,
        "INTERNALDATE" => Item::InternalDate,
        "RFC822.SIZE" => Item::Size,
        "ENVELOPE" => Item::Envelope,
        "BODYSTRUCTURE" => Item::BodyStructure,
        "BODY" => Item::Body,
        "RFC822" => Item::Rfc822,
        "RFC822.HEADER" => Item::Rfc822Header,
        "RFC822.TEXT" => Item::Rfc822Text,
        _ => {
            let (peek, rest) = if let Some(r) = up.strip_prefix("BODY.PEEK[") {
                (true, r)
            } else if let Some(r) = up.strip_prefix("BODY[") {
                (false, r)
            } else {
                return Err(format!("unknown fetch item {a}"));
            };
            let close = rest.rfind(']').ok_or("missing ]")?;
            let (spec, after) = (&rest[..close], &rest[close + 1..]);
            let partial = if after.is_empty() {
                None
            } else {
                let inner = after
                    .strip_prefix('<')
                    .and_then(|x| x.strip_suffix('>'))
                    .ok_or("bad partial")?;
                let (s, n) = inner
                    .split_once('.')
                    .ok_or("partial needs <start.length>")?;
                let n: u32 = n.parse().map_err(|_| "bad partial length")?;
                if n == 0 {
                    return Err("partial length 0".into());
                }
                Some((s.parse().map_err(|_| "bad partial start")?, n))
            };
            let (path, kind) = parse_section(spec)?;
            Item::Section {
                peek,
                path,
                kind,
                partial,
            }
        }
    })
}

fn parse_section(spec: &str) -> Result<(Vec<u32>, Kind), String> {
    let mut path = Vec::new();
    let mut rest = spec;
    while let Some(c) = rest.chars().next() {
        if !c.is_ascii_digit() {
            break;
        }
        let end = rest.find('.').unwrap_or(rest.len());
        let n: u32 = rest[..end].parse().map_err(|_| "bad part number")?;
        if n == 0 {
            return Err("part numbers start at 1".into());
        }
        path.push(n);
        rest = rest.get(end + 1..).unwrap_or("");
        if end == spec.len() {
            break;
        }
    }
    let fields = |s: &str| -> Result<Vec<String>, String> {
        let inner = s
            .trim()
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .ok_or("HEADER.FIELDS needs a list")?;
        let v: Vec<String> = inner
            .split_whitespace()
            .map(|f| f.trim_matches('"').to_ascii_uppercase())
            .collect();
        if v.is_empty() {
            return Err("empty field list".into());
        }
        Ok(v)
    };
    let kind = if rest.is_empty() {
        Kind::Full
    } else if rest == "HEADER" {
        Kind::Header
    } else if rest == "TEXT" {
        Kind::Text
    } else if rest == "MIME" {
        if path.is_empty() {
            return Err("MIME needs a part number".into());
        }
        Kind::Mime
    } else if let Some(f) = rest.strip_prefix("HEADER.FIELDS.NOT") {
        Kind::HeaderFieldsNot(fields(f)?)
    } else if let Some(f) = rest.strip_prefix("HEADER.FIELDS") {
        Kind::HeaderFields(fields(f)?)
    } else {
        return Err(format!("bad section {spec}"));
    };
    Ok((path, kind))
}

/// The section as the response names it.
fn section_label(path: &[u32], kind: &Kind) -> String {
    let mut s: Vec<String> = path.iter().map(u32::to_string).collect();
    let k = match kind {
        Kind::Full => None,
        Kind::Header => Some("HEADER".to_string()),
        Kind::Text => Some("TEXT".to_string()),
        Kind::Mime => Some("MIME".to_string()),
        Kind::HeaderFields(f) => Some(format!("HEADER.FIELDS ({})", f.join(" "))),
        Kind::HeaderFieldsNot(f) => Some(format!("HEADER.FIELDS.NOT ({})", f.join(" "))),
    };
    s.extend(k);
    s.join(".")
}

/// INTERNALDATE's format: `17-Jul-1996 02:44:25 +0000`.
pub fn imap_date(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    // httpdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    let h = httpdate::fmt_http_date(t);
    let p: Vec<&str> = h.split(' ').collect();
    if p.len() < 5 {
        return h;
    }
    format!("{}-{}-{} {} +0000", p[1], p[2], p[3], p[4])
}

fn flags_list(m: &Msg, recent: bool) -> String {
    let mut v: Vec<&str> = m.flags.iter().map(String::as_str).collect();
    if recent {
        v.push("\\Recent");
    }
    format!("({})", v.join(" "))
}

fn q(s: Option<&str>) -> String {
    String::from_utf8_lossy(&nstring(s.map(str::as_bytes))).into_owned()
}

fn unfold(s: &str) -> String {
    applab_proto::message::collapse_spaces(s)
}

fn addresses(a: Option<&Address>) -> String {
    let list: Vec<(Option<String>, Option<String>)> = match a {
        None => return "NIL".into(),
        Some(Address::List(l)) => l
            .iter()
            .map(|x| {
                (
                    x.name.as_ref().map(|n| n.to_string()),
                    x.address.as_ref().map(|n| n.to_string()),
                )
            })
            .collect(),
        Some(Address::Group(g)) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .map(|x| {
                (
                    x.name.as_ref().map(|n| n.to_string()),
                    x.address.as_ref().map(|n| n.to_string()),
                )
            })
            .collect(),
    };
    if list.is_empty() {
        return "NIL".into();
    }
    let mut out = String::from("(");
    for (name, addr) in list {
        let (mbox, host) = match addr.as_deref().and_then(|a| a.rsplit_once('@')) {
            Some((m, h)) => (Some(m.to_string()), Some(h.to_string())),
            None => (addr.clone(), None),
        };
        out.push_str(&format!(
            "({} NIL {} {})",
            q(name.as_deref()),
            q(mbox.as_deref()),
            q(host.as_deref())
        ));
    }
    out.push(')');
    out
}

pub fn envelope(m: &Message) -> String {
    let raw = |h: &str| m.header_raw(h).map(unfold);
    let from = addresses(m.from());
    let sender = match m.sender() {
        Some(s) => addresses(Some(s)),
        None => from.clone(),
    };
    let reply_to = match m.reply_to() {
        Some(s) => addresses(Some(s)),
        None => from.clone(),
    };
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        q(raw("Date").as_deref()),
        q(raw("Subject").as_deref()),
        from,
        sender,
        reply_to,
        addresses(m.to()),
        addresses(m.cc()),
        addresses(m.bcc()),
        q(raw("In-Reply-To").as_deref()),
        q(raw("Message-ID").as_deref()),
    )
}

fn params(p: &MessagePart) -> String {
    let attrs = p
        .content_type()
        .and_then(|c| c.attributes.as_ref())
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        q(Some(&x.name.to_ascii_uppercase())),
                        q(Some(&x.value))
                    )
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if attrs.is_empty() {
        if p.content_type().is_none() {
            return "(\"CHARSET\" \"US-ASCII\")".into();
        }
        return "NIL".into();
    }
    format!("({})", attrs.join(" "))
}

fn part_body<'a>(m: &'a Message, p: &MessagePart) -> &'a [u8] {
    let raw = m.raw_message();
    let (s, e) = (p.offset_body as usize, p.offset_end as usize);
    raw.get(s.min(raw.len())..e.min(raw.len())).unwrap_or(b"")
}

fn part_header<'a>(m: &'a Message, p: &MessagePart) -> &'a [u8] {
    let raw = m.raw_message();
    let (s, e) = (p.offset_header as usize, p.offset_body as usize);
    raw.get(s.min(raw.len())..e.min(raw.len())).unwrap_or(b"")
}

/// BODYSTRUCTURE (`extended`) or BODY of part `idx` of `m`.
pub fn structure(m: &Message, idx: usize, extended: bool, depth: usize) -> String {
    let Some(p) = m.parts.get(idx) else {
        return "NIL".into();
    };
    let (ty, sub) = match p.content_type() {
        Some(c) => (
            c.c_type.to_ascii_uppercase(),
            c.c_subtype.as_deref().unwrap_or("").to_ascii_uppercase(),
        ),
        None => ("TEXT".into(), "PLAIN".into()),
    };
    if let PartType::Multipart(children) = &p.body {
        if depth > 20 {
            return "NIL".into();
        }
        let mut s = String::from("(");
        for &c in children {
            s.push_str(&structure(m, c as usize, extended, depth + 1));
        }
        if children.is_empty() {
            // A multipart with no parts: show an empty text part.
            s.push_str("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
        }
        s.push_str(&format!(" {}", q(Some(&sub))));
        if extended {
            s.push_str(&format!(" {} NIL NIL NIL", params(p)));
        }
        s.push(')');
        return s;
    }
    let body = part_body(m, p);
    let enc = p
        .content_transfer_encoding()
        .map(|e| e.to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".into());
    let mut s = format!(
        "({} {} {} {} {} {} {}",
        q(Some(&ty)),
        q(Some(&sub)),
        params(p),
        q(p.content_id()),
        q(p.content_description()),
        q(Some(&enc)),
        body.len()
    );
    // Text lines: a last line without its line end counts too.
    let lines = body.iter().filter(|&&b| b == b'\n').count()
        + usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    match &p.body {
        PartType::Message(inner) if depth < 20 => {
            s.push_str(&format!(
                " {} {} {lines}",
                envelope(inner),
                structure(inner, 0, extended, depth + 1)
            ));
        }
        _ if ty == "TEXT" => s.push_str(&format!(" {lines}")),
        _ => {}
    }
    if extended {
        s.push_str(" NIL NIL NIL NIL");
    }
    s.push(')');
    s
}

/// Find the part a section path names: the message it belongs to and its index.
fn resolve<'a>(mut m: &'a Message<'a>, path: &[u32]) -> Option<(&'a Message<'a>, usize)> {
    let mut idx = 0usize;
    for (depth, &k) in path.iter().enumerate() {
        let p = m.parts.get(idx)?;
        match &p.body {
            PartType::Multipart(ch) => idx = *ch.get(k as usize - 1)? as usize,
            PartType::Message(inner) if depth > 0 || idx != 0 => {
                m = inner;
                idx = 0;
                match &m.parts.first()?.body {
                    PartType::Multipart(ch) => idx = *ch.get(k as usize - 1)? as usize,
                    _ if k == 1 => {}
                    _ => return None,
                }
            }
            // A single-part message: its part 1 is its body.
            _ if k == 1 && idx == 0 && depth == 0 => {}
            _ => return None,
        }
    }
    Some((m, idx))
}

fn header_lines(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep_current = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line[0] != b' ' && line[0] != b'\t' {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|p| {
                    String::from_utf8_lossy(&line[..p])
                        .trim()
                        .to_ascii_uppercase()
                })
                .unwrap_or_default();
            keep_current = names.contains(&name) == keep;
        }
        if keep_current {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn section_bytes(raw: &[u8], m: Option<&Message>, path: &[u32], kind: &Kind) -> Vec<u8> {
    let split = |r: &[u8]| -> usize {
        applab_proto::message::header_end(r)
            .or_else(|| r.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
            .unwrap_or(r.len())
    };
    if path.is_empty() {
        let h = split(raw);
        return match kind {
            Kind::Full => raw.to_vec(),
            Kind::Header => raw[..h].to_vec(),
            Kind::Text => raw[h..].to_vec(),
            Kind::HeaderFields(f) => header_lines(&raw[..h], f, true),
            Kind::HeaderFieldsNot(f) => header_lines(&raw[..h], f, false),
            Kind::Mime => Vec::new(),
        };
    }
    let Some(m) = m else { return Vec::new() };
    let Some((pm, idx)) = resolve(m, path) else {
        return Vec::new();
    };
    let p = &pm.parts[idx];
    match kind {
        Kind::Full => part_body(pm, p).to_vec(),
        Kind::Mime => part_header(pm, p).to_vec(),
        // HEADER, TEXT of a part: of the message it encapsulates.
        _ => match &p.body {
            PartType::Message(inner) => section_bytes(inner.raw_message(), Some(inner), &[], kind),
            _ => Vec::new(),
        },
    }
}

/// Render one message's FETCH response items (without `* n FETCH (`...`)`).
pub fn render(msg: &Msg, recent: bool, items: &[Item], raw_cache: &mut Option<Vec<u8>>) -> Vec<u8> {
    let needs = items.iter().any(Item::needs_message);
    if needs && raw_cache.is_none() {
        *raw_cache = Some(std::fs::read(&msg.path).unwrap_or_default());
    }
    let raw = raw_cache.as_deref().unwrap_or(b"");
    let parsed = if items.iter().any(|i| {
        matches!(i, Item::Envelope | Item::BodyStructure | Item::Body)
            || matches!(i, Item::Section { path, .. } if !path.is_empty())
    }) {
        MessageParser::default().parse(raw)
    } else {
        None
    };
    let mut out: Vec<u8> = Vec::new();
    for (n, it) in items.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        let lit = |label: &str, data: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(label.as_bytes());
            out.push(b' ');
            out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
        };
        match it {
            Item::Uid => out.extend_from_slice(format!("UID {}", msg.uid).as_bytes()),
            Item::Flags => {
                out.extend_from_slice(format!("FLAGS {}", flags_list(msg, recent)).as_bytes())
            }
            Item::InternalDate => out.extend_from_slice(
                format!("INTERNALDATE \"{}\"", imap_date(msg.internal)).as_bytes(),
            ),
            Item::Size => {
                out.extend_from_slice(format!("RFC822.SIZE {}", raw_len(msg, raw)).as_bytes())
            }
            Item::Envelope => {
                let e = parsed
                    .as_ref()
                    .map(envelope)
                    .unwrap_or_else(|| "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)".into());
                out.extend_from_slice(format!("ENVELOPE {e}").as_bytes());
            }
            Item::BodyStructure | Item::Body => {
                let ext = matches!(it, Item::BodyStructure);
                let s = parsed
                    .as_ref()
                    .map(|m| structure(m, 0, ext, 0))
                    .unwrap_or_else(|| "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)".into());
                let name = if ext { "BODYSTRUCTURE" } else { "BODY" };
                out.extend_from_slice(format!("{name} {s}").as_bytes());
            }
            Item::Rfc822 => lit("RFC822", raw, &mut out),
            Item::Rfc822Header => lit(
                "RFC822.HEADER",
                &section_bytes(raw, None, &[], &Kind::Header),
                &mut out,
            ),
            Item::Rfc822Text => lit(
                "RFC822.TEXT",
                &section_bytes(raw, None, &[], &Kind::Text),
                &mut out,
            ),
            Item::Section {
                path,
                kind,
                partial,
                ..
            } => {
                let data = section_bytes(raw, parsed.as_ref(), path, kind);
                let mut label = format!("BODY[{}]", section_label(path, kind));
                let data = match partial {
                    Some((start, len)) => {
                        label.push_str(&format!("<{start}>"));
                        let s = (*start as usize).min(data.len());
                        let e = (s + *len as usize).min(data.len());
                        data[s..e].to_vec()
                    }
                    None => data,
                };
                lit(&label, &data, &mut out);
            }
        }
    }
    out
}

fn raw_len(msg: &Msg, raw: &[u8]) -> u64 {
    if raw.is_empty() {
        msg.size
    } else {
        raw.len() as u64
    }
}

/// A string for a response, as the proto crate quotes it.
pub fn quoted(s: &str) -> String {
    String::from_utf8_lossy(&astring(s.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Alice <alice@a.lab>\r\nTo: bob@b.lab\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 20:00:00 +0000\r\nMessage-ID: <1@a.lab>\r\n\
Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nthere\r\n--XX\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@c.lab\r\n\r\ninner body\r\n--XX--\r\n";

    #[test]
    fn items_parse() {
        let t = Token::List(vec![
            Token::Atom("UID".into()),
            Token::Atom("BODY.PEEK[HEADER.FIELDS (From Subject)]<0.10>".into()),
        ]);
        let items = parse_items(&t).unwrap();
        assert_eq!(
            items[1],
            Item::Section {
                peek: true,
                path: vec![],
                kind: Kind::HeaderFields(vec!["FROM".into(), "SUBJECT".into()]),
                partial: Some((0, 10))
            }
        );
        assert_eq!(parse_items(&Token::Atom("fast".into())).unwrap().len(), 3);
        assert!(parse_items(&Token::Atom("BODY[1.X]".into())).is_err());
        assert!(parse_items(&Token::Atom("FROB".into())).is_err());
    }

    #[test]
    fn sections_and_structure() {
        let m = MessageParser::default().parse(MSG).unwrap();
        let b = |path: &[u32], k: Kind| {
            String::from_utf8(section_bytes(MSG, Some(&m), path, &k)).unwrap()
        };
        assert_eq!(b(&[1], Kind::Full), "hello\r\nthere");
        assert!(b(&[1], Kind::Mime).starts_with("Content-Type: text/plain"));
        assert!(b(&[2], Kind::Header).starts_with("Subject: inner"));
        assert_eq!(b(&[2], Kind::Text).trim_end(), "inner body");
        assert_eq!(
            b(&[], Kind::HeaderFields(vec!["SUBJECT".into()])),
            "Subject: hi\r\n\r\n"
        );
        let s = structure(&m, 0, true, 0);
        assert!(
            s.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\""),
            "{s}"
        );
        assert!(s.contains("\"MESSAGE\" \"RFC822\""), "{s}");
        assert!(s.contains(" \"MIXED\" (\"BOUNDARY\" \"XX\")"), "{s}");
        let e = envelope(&m);
        assert!(
            e.starts_with(
                "(\"Fri, 27 Nov 2026 20:00:00 +0000\" \"hi\" ((\"Alice\" NIL \"alice\" \"a.lab\"))"
            ),
            "{e}"
        );
        assert_eq!(imap_date(0), "01-Jan-1970 00:00:00 +0000");
    }
}
