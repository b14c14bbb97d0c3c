//! IMAP4rev1 (RFC 3501) command syntax, sans IO.
//!
//! A command is a tag, a name and arguments on one line — except that any
//! argument may be a *literal*: `{n}` at the end of a line announces n raw
//! octets that follow the CRLF (after the server's `+` continuation; `{n+}`,
//! LITERAL+ of RFC 7888, needs none), and the command goes on after them.
//! So a command is read as a sequence of line pieces and literals; this
//! module says where a piece ends in a literal, and turns the whole into
//! tokens: atoms, quoted strings (with `\"` and `\\` escapes), literals,
//! NIL and parenthesized lists (FETCH items, flags). Bracketed sections like
//! `BODY[HEADER.FIELDS (FROM TO)]<0.100>` stay one atom, so that FETCH can
//! parse them itself. Sequence sets (`1:3,7,10:*`) are parsed here too.

/// Longest line piece of a command we accept (RFC 7162 §4 suggests 8192).
pub const MAX_LINE: usize = 8192;
/// Largest literal in a command (APPEND carries whole messages).
pub const MAX_LITERAL: usize = 32 << 20;
/// Deepest list nesting accepted.
const MAX_DEPTH: usize = 8;

use crate::line::{Line, LineReader};

/// If a line piece ends in a literal announcement, its size and whether it
/// is non-synchronizing (`{n+}`: no continuation request).
pub fn literal_at_end(line: &[u8]) -> Option<(usize, bool)> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let mut digits = &body[open + 1..];
    let plus = digits.last() == Some(&b'+');
    if plus {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom (or a number, a flag like `\Seen`, a section like `BODY[1]`).
    Atom(String),
    /// A quoted string or a literal: both are strings to the grammar.
    Str(Vec<u8>),
    Nil,
    List(Vec<Token>),
}

impl Token {
    /// The token as text when it is an atom or a string (astring).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Token::Atom(a) => Some(a.clone()),
            Token::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    pub fn atom_upper(&self) -> Option<String> {
        match self {
            Token::Atom(a) => Some(a.to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// A whole command: pieces and literals joined back, then tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    /// Upper-cased (`FETCH`; `UID FETCH` is `UID` with `FETCH` as first arg).
    pub name: String,
    pub args: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// No usable tag: answered with an untagged BAD.
    NoTag,
    /// A tag but nothing valid after it: a tagged BAD with the reason.
    Bad(String, String),
}

/// One piece of a command as read: text up to a CRLF, or a literal's bytes.
#[derive(Debug, Clone)]
pub enum Piece {
    Line(Vec<u8>),
    Literal(Vec<u8>),
}

/// How a [`Receiver`] treats literals.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Longest line piece, CRLF counted.
    pub line: usize,
    /// Most literal octets in one command (`None`: no limit, for a decoder
    /// that skips them).
    pub literals: Option<usize>,
    /// Keep literal bytes (a server parsing them) or only count them (the
    /// capture decoder, which must not buffer a FETCHed message).
    pub keep: bool,
    /// Most pieces in one command.
    pub pieces: usize,
}

impl ReceiverLimits {
    /// A server reading commands.
    pub const SERVER: ReceiverLimits = ReceiverLimits {
        line: MAX_LINE,
        literals: Some(MAX_LITERAL),
        keep: true,
        pieces: 1000,
    };
    /// A client reading responses: literals hold whole messages.
    pub const CLIENT: ReceiverLimits = ReceiverLimits {
        line: 64 << 10,
        literals: None,
        keep: true,
        pieces: usize::MAX,
    };
    /// The capture decoder: long lines followed, literals skipped.
    pub const DECODER: ReceiverLimits = ReceiverLimits {
        line: 64 << 10,
        literals: None,
        keep: false,
        pieces: usize::MAX,
    };
}

/// One command (or response) put together from its line pieces and literals.
#[derive(Debug, Clone, Default)]
pub struct Assembled {
    pub pieces: Vec<Piece>,
    /// Octets in its literals (kept or skipped).
    pub literal_octets: u64,
}

/// What a [`Receiver`] has for its user.
#[derive(Debug, Clone)]
pub enum Received {
    Whole(Assembled),
    /// A synchronizing literal `{n}` was announced: a server now sends its
    /// `+` continuation request, then the client sends the octets.
    Continue,
    /// A line too long, or a synchronizing literal over the limit: the
    /// client sends nothing more of it; answer BAD and go on.
    TooLong,
    /// A non-synchronizing literal over the limit: its octets are on their
    /// way and cannot be told from commands; close the connection.
    Desync,
}

/// Commands (or responses) with literals out of CRLF lines, sans IO, the
/// way imap-proto's receiver does it: the caller feeds a [`LineReader`]
/// and asks again whenever this says it needs more.
#[derive(Debug)]
pub struct Receiver {
    limits: ReceiverLimits,
    cur: Assembled,
    /// Octets of an announced literal still to come.
    literal: Option<usize>,
}

impl Receiver {
    pub fn new(limits: ReceiverLimits) -> Receiver {
        Receiver {
            limits,
            cur: Assembled::default(),
            literal: None,
        }
    }

    /// The next item, or `None` when `lines` needs more input.
    pub fn next(&mut self, lines: &mut LineReader) -> Option<Received> {
        loop {
            if let Some(n) = self.literal {
                if self.limits.keep {
                    let data = lines.take(n)?;
                    self.cur.pieces.push(Piece::Literal(data));
                } else {
                    let left = n - lines.skip(n);
                    if left > 0 {
                        self.literal = Some(left);
                        return None;
                    }
                }
                self.literal = None;
            }
            let line = match lines.next_line(self.limits.line)? {
                Line::TooLong => {
                    self.cur = Assembled::default();
                    return Some(Received::TooLong);
                }
                Line::Complete(l) => l,
            };
            let lit = literal_at_end(&line);
            self.cur.pieces.push(Piece::Line(line));
            let Some((n, plus)) = lit else {
                return Some(Received::Whole(std::mem::take(&mut self.cur)));
            };
            self.cur.literal_octets += n as u64;
            let over = self
                .limits
                .literals
                .is_some_and(|max| self.cur.literal_octets > max as u64);
            if over || self.cur.pieces.len() >= self.limits.pieces {
                self.cur = Assembled::default();
                if plus {
                    return Some(Received::Desync);
                }
                return Some(Received::TooLong);
            }
            self.literal = Some(n);
            if !self.limits.keep {
                // Skipping: a marker piece stands where the literal was.
                self.cur.pieces.push(Piece::Literal(Vec::new()));
            }
            if !plus {
                return Some(Received::Continue);
            }
        }
    }
}

fn is_atom_char(b: u8) -> bool {
    // atom-specials: ( ) { SP CTL % * " \ ] — but we let `]` and `%`/`*`
    // through so sections and LIST patterns stay whole atoms.
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"' | b'\\')
}

struct Lexer<'a> {
    pieces: &'a [Piece],
    i: usize,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn cur(&self) -> Option<&'a [u8]> {
        match self.pieces.get(self.i)? {
            Piece::Line(l) => Some(&l[self.pos..]),
            Piece::Literal(_) => None,
        }
    }

    fn skip_spaces(&mut self) {
        if let Some(Piece::Line(l)) = self.pieces.get(self.i) {
            while self.pos < l.len() && l[self.pos] == b' ' {
                self.pos += 1;
            }
        }
    }

    fn at_end(&self) -> bool {
        match self.pieces.get(self.i) {
            None => true,
            Some(Piece::Line(l)) => self.pos >= l.len() && self.i + 1 >= self.pieces.len(),
            Some(Piece::Literal(_)) => false,
        }
    }

    /// Move past the `{n}` that ends a line piece into its literal.
    fn literal(&mut self) -> Option<Vec<u8>> {
        let rest = self.cur()?;
        if rest.first() != Some(&b'{') || literal_at_end(rest).is_none() {
            return None;
        }
        match self.pieces.get(self.i + 1)? {
            Piece::Literal(data) => {
                let data = data.clone();
                self.i += 2;
                self.pos = 0;
                Some(data)
            }
            Piece::Line(_) => None,
        }
    }

    fn token(&mut self, depth: usize) -> Result<Option<Token>, String> {
        self.skip_spaces();
        let Some(rest) = self.cur() else {
            return Ok(None);
        };
        let Some(&c) = rest.first() else {
            return Ok(None);
        };
        match c {
            b'(' => {
                if depth >= MAX_DEPTH {
                    return Err("lists nested too deeply".into());
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.cur() {
                        Some([b')', ..]) => {
                            self.pos += 1;
                            return Ok(Some(Token::List(items)));
                        }
                        Some([]) | None if self.at_end() => return Err("unclosed (".into()),
                        _ => {}
                    }
                    match self.token(depth + 1)? {
                        Some(t) => items.push(t),
                        None => return Err("unclosed (".into()),
                    }
                }
            }
            b'"' => {
                let mut out = Vec::new();
                let mut j = 1;
                loop {
                    match rest.get(j) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'\\') => match rest.get(j + 1) {
                            Some(&e @ (b'"' | b'\\')) => {
                                out.push(e);
                                j += 2;
                            }
                            _ => return Err("bad escape in quoted string".into()),
                        },
                        Some(b'"') => {
                            self.pos += j + 1;
                            return Ok(Some(Token::Str(out)));
                        }
                        Some(&b) => {
                            out.push(b);
                            j += 1;
                        }
                    }
                }
            }
            b'{' => match self.literal() {
                Some(d) => Ok(Some(Token::Str(d))),
                None => Err("bad literal".into()),
            },
            b')' => Err("unexpected )".into()),
            _ => {
                // A flag is `\` and an atom (`\Seen`, and `\*` in PERMANENTFLAGS).
                let mut j = usize::from(c == b'\\');
                let mut bracket = 0i32;
                while let Some(&b) = rest.get(j) {
                    if b == b'[' {
                        bracket += 1;
                    } else if b == b']' {
                        bracket -= 1;
                    } else if bracket > 0 && (b == b' ' || b == b'(' || b == b')' || b == b'"') {
                        // Inside a section: `BODY[HEADER.FIELDS (A B)]`.
                    } else if !is_atom_char(b) {
                        break;
                    }
                    j += 1;
                }
                if j == 0 {
                    return Err(format!("unexpected character {:?}", c as char));
                }
                let text = String::from_utf8_lossy(&rest[..j]).into_owned();
                self.pos += j;
                if text.eq_ignore_ascii_case("NIL") {
                    return Ok(Some(Token::Nil));
                }
                Ok(Some(Token::Atom(text)))
            }
        }
    }
}

/// Tokenize a command from its pieces (the first a line starting with the tag).
pub fn parse(pieces: &[Piece]) -> Result<Command, ParseError> {
    let Some(Piece::Line(first)) = pieces.first() else {
        return Err(ParseError::NoTag);
    };
    let tag_len = first.iter().position(|&b| b == b' ').unwrap_or(first.len());
    let tag = &first[..tag_len];
    if tag.is_empty()
        || !tag
            .iter()
            .all(|&b| is_atom_char(b) && b != b'+' && b != b'*' && b != b'%')
    {
        return Err(ParseError::NoTag);
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let mut lx = Lexer {
        pieces,
        i: 0,
        pos: tag_len,
    };
    let bad = |tag: &str, why: String| ParseError::Bad(tag.to_string(), why);
    let name = match lx.token(0) {
        Ok(Some(Token::Atom(a))) => a.to_ascii_uppercase(),
        Ok(_) => return Err(bad(&tag, "missing command".into())),
        Err(e) => return Err(bad(&tag, e)),
    };
    let mut args = Vec::new();
    loop {
        match lx.token(0) {
            Ok(Some(t)) => args.push(t),
            Ok(None) => break,
            Err(e) => return Err(bad(&tag, e)),
        }
    }
    Ok(Command { tag, name, args })
}

/// One range of a sequence set; `u32::MAX` stands for `*`.
pub type Range = (u32, u32);

/// Parse a sequence set (`1:3,7,10:*`); `*` becomes `star`.
pub fn sequence_set(s: &str, star: u32) -> Option<Vec<Range>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let num = |x: &str| -> Option<u32> {
            if x == "*" {
                Some(star)
            } else if x.bytes().all(|b| b.is_ascii_digit()) && !x.is_empty() && !x.starts_with('0')
            {
                x.parse().ok()
            } else {
                None
            }
        };
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        out.push((a.min(b), a.max(b)));
    }
    (!out.is_empty()).then_some(out)
}

pub fn in_set(set: &[Range], n: u32) -> bool {
    set.iter().any(|&(a, b)| a <= n && n <= b)
}

/// Quote a string for a response: a quoted string when it is short, plain
/// text, else a literal.
pub fn astring(s: &[u8]) -> Vec<u8> {
    if s.len() < 200 && s.iter().all(|b| (0x20..0x7f).contains(b)) {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        let mut out = format!("{{{}}}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        out
    }
}

/// `astring` or NIL.
pub fn nstring(s: Option<&[u8]>) -> Vec<u8> {
    match s {
        Some(s) => astring(s),
        None => b"NIL".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Vec<Piece> {
        vec![Piece::Line(s.as_bytes().to_vec())]
    }

    #[test]
    fn commands_atoms_strings_lists_and_sections() {
        let c = parse(&line(r#"a1 login bob "pa ss\"w""#)).unwrap();
        assert_eq!((c.tag.as_str(), c.name.as_str()), ("a1", "LOGIN"));
        assert_eq!(
            c.args,
            [
                Token::Atom("bob".into()),
                Token::Str(br#"pa ss"w"#.to_vec())
            ]
        );
        let c = parse(&line(
            "x FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)",
        ))
        .unwrap();
        assert_eq!(c.args[0], Token::Atom("1:*".into()));
        let Token::List(items) = &c.args[1] else {
            panic!()
        };
        assert_eq!(
            items[1],
            Token::Atom("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>".into())
        );
        let c = parse(&line(r#"t STORE 2 +FLAGS (\Seen \Deleted)"#)).unwrap();
        assert_eq!(
            c.args[2],
            Token::List(vec![
                Token::Atom("\\Seen".into()),
                Token::Atom("\\Deleted".into())
            ])
        );
        assert_eq!(
            parse(&line("t LIST \"\" *")).unwrap().args[1],
            Token::Atom("*".into())
        );
        assert!(matches!(
            parse(&line("t FETCH 1 (FLAGS")),
            Err(ParseError::Bad(..))
        ));
        assert!(matches!(
            parse(&line("t LOGIN \"open")),
            Err(ParseError::Bad(..))
        ));
        assert_eq!(parse(&line("")), Err(ParseError::NoTag));
        assert_eq!(parse(&line("* NOOP")), Err(ParseError::NoTag));
        assert!(matches!(parse(&line("t")), Err(ParseError::Bad(..))));
        assert_eq!(parse(&line("t SELECT nil")).unwrap().args, [Token::Nil]);
    }

    #[test]
    fn literals_join_pieces() {
        assert_eq!(literal_at_end(b"a APPEND INBOX {11}"), Some((11, false)));
        assert_eq!(literal_at_end(b"a LOGIN {3+}"), Some((3, true)));
        assert_eq!(literal_at_end(b"a LOGIN {x}"), None);
        let pieces = vec![
            Piece::Line(b"a LOGIN {3}".to_vec()),
            Piece::Literal(b"bob".to_vec()),
            Piece::Line(b" {4}".to_vec()),
            Piece::Literal(b"p w\"".to_vec()),
            Piece::Line(Vec::new()),
        ];
        let c = parse(&pieces).unwrap();
        assert_eq!(
            c.args,
            [Token::Str(b"bob".to_vec()), Token::Str(b"p w\"".to_vec())]
        );
        let pieces = vec![
            Piece::Line(b"a APPEND INBOX (\\Seen) {5}".to_vec()),
            Piece::Literal(b"hi\r\n\r".to_vec()),
            Piece::Line(Vec::new()),
        ];
        let c = parse(&pieces).unwrap();
        assert_eq!(c.args.len(), 3);
        assert_eq!(c.args[2], Token::Str(b"hi\r\n\r".to_vec()));
    }

    #[test]
    fn sequence_sets() {
        assert_eq!(
            sequence_set("1:3,7,10:*", 12),
            Some(vec![(1, 3), (7, 7), (10, 12)])
        );
        assert_eq!(sequence_set("*:4", 2), Some(vec![(2, 4)]));
        assert_eq!(sequence_set("0", 5), None);
        assert_eq!(sequence_set("1,,2", 5), None);
        assert_eq!(sequence_set("a", 5), None);
        assert!(in_set(&[(2, 4)], 3) && !in_set(&[(2, 4)], 5));
        assert_eq!(astring(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(astring(b"x\r\ny"), b"{4}\r\nx\r\ny");
    }
}
