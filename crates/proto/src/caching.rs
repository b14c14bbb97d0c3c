//! The fields a cache reads (RFC 9111 §5), made to mean what the RFC says
//! before the cache's rules (http-cache-semantics, in the proxy) read them.
//! Each rule of how a sender may write them is applied here, once:
//!
//! - `Cache-Control` directive names are case-insensitive (§5.2):
//!   `No-CaChE` is `no-cache`.
//! - `Age` is a singleton; a list is read as its first member and an
//!   invalid value is ignored (§5.1): `Age: 7200, 0` is 7200.
//! - An `Expires` that is not an HTTP-date means already expired (§5.3);
//!   the obsolete RFC 850 and asctime forms are dates (RFC 9110 §5.6.7).
//! - `CDN-Cache-Control` (RFC 9213) is a Structured Field dictionary; an
//!   invalid one is ignored, never taken over `Cache-Control`.

use std::borrow::Cow;

/// The epoch as an HTTP-date: "already expired".
const EXPIRED: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

/// A field's value as the cache's rules should read it; `None` to drop
/// the field (an `Age` that is not a number).
pub fn normalize<'a>(name: &str, value: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    if name.eq_ignore_ascii_case("cache-control") {
        return Some(lowercase_directive_names(value));
    }
    if name.eq_ignore_ascii_case("age") {
        let first = value
            .split(|&b| b == b',')
            .next()
            .unwrap_or(b"")
            .trim_ascii();
        let ok = !first.is_empty() && first.len() <= 19 && first.iter().all(u8::is_ascii_digit);
        return ok.then(|| Cow::Owned(first.to_vec()));
    }
    if name.eq_ignore_ascii_case("expires") {
        return Some(match crate::conditional::http_date(value) {
            Some(t) => Cow::Owned(httpdate::fmt_http_date(t).into_bytes()),
            None => Cow::Borrowed(EXPIRED),
        });
    }
    Some(Cow::Borrowed(value))
}

/// `Max-Age=60, No-Cache="Set-Cookie"` → `max-age=60, no-cache="Set-Cookie"`:
/// names lowered, arguments (quoted strings above all) left alone.
fn lowercase_directive_names(value: &[u8]) -> Cow<'_, [u8]> {
    // The common case, all lowercase already, costs no copy.
    if !value.iter().any(u8::is_ascii_uppercase) {
        return Cow::Borrowed(value);
    }
    let mut out = value.to_vec();
    let (mut in_name, mut quoted, mut escaped) = (true, false, false);
    for b in out.iter_mut() {
        if quoted {
            match *b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match *b {
            b',' => in_name = true,
            b'=' => in_name = false,
            b'"' => quoted = true,
            _ if in_name => b.make_ascii_lowercase(),
            _ => {}
        }
    }
    if out == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(out)
    }
}

/// Whether `value` is a Structured Field dictionary (RFC 8941 §3.2), the
/// syntax of `CDN-Cache-Control`: lowercase keys, each with an optional
/// `=item` and `;parameters`.
pub fn valid_dictionary(value: &[u8]) -> bool {
    let mut p = Sf { s: value, i: 0 };
    p.ows();
    if p.done() {
        return false;
    }
    loop {
        if !p.key() {
            return false;
        }
        if p.eat(b'=') && !p.bare_item() {
            return false;
        }
        if !p.params() {
            return false;
        }
        p.ows();
        if p.done() {
            return true;
        }
        if !p.eat(b',') {
            return false;
        }
        p.ows();
        if p.done() {
            return false; // a trailing comma
        }
    }
}

struct Sf<'a> {
    s: &'a [u8],
    i: usize,
}

impl Sf<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }
    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.i - start
    }
    fn key(&mut self) -> bool {
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return false;
        }
        self.take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'));
        true
    }
    fn params(&mut self) -> bool {
        while self.eat(b';') {
            while self.eat(b' ') {}
            if !self.key() || (self.eat(b'=') && !self.bare_item()) {
                return false;
            }
        }
        true
    }
    fn bare_item(&mut self) -> bool {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                self.eat(b'-');
                let int = self.take_while(|b| b.is_ascii_digit());
                if int == 0 || int > 15 {
                    return false;
                }
                if self.eat(b'.') {
                    let frac = self.take_while(|b| b.is_ascii_digit());
                    return int <= 12 && (1..=3).contains(&frac);
                }
                true
            }
            Some(b'"') => {
                self.i += 1;
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            self.i += 1;
                            return true;
                        }
                        Some(b'\\') => {
                            self.i += 1;
                            if !matches!(self.peek(), Some(b'"' | b'\\')) {
                                return false;
                            }
                            self.i += 1;
                        }
                        Some(0x20..=0x7e) => self.i += 1,
                        _ => return false,
                    }
                }
            }
            Some(b'?') => {
                self.i += 1;
                self.eat(b'0') || self.eat(b'1')
            }
            Some(b':') => {
                self.i += 1;
                self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                self.eat(b':')
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                self.i += 1;
                self.take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(name: &str, v: &str) -> Option<String> {
        normalize(name, v.as_bytes()).map(|c| String::from_utf8(c.into_owned()).unwrap())
    }

    #[test]
    fn directive_names_are_lowered_arguments_kept() {
        assert_eq!(
            norm("Cache-Control", "No-CaChE").as_deref(),
            Some("no-cache")
        );
        assert_eq!(
            norm("cache-control", "Max-Age=60, Private=\"Set-Cookie, X\"").as_deref(),
            Some("max-age=60, private=\"Set-Cookie, X\"")
        );
        assert_eq!(norm("X-Other", "No-Cache").as_deref(), Some("No-Cache"));
    }

    #[test]
    fn age_is_its_first_member_and_garbage_is_dropped() {
        assert_eq!(norm("Age", "7200, 0").as_deref(), Some("7200"));
        assert_eq!(norm("age", " 5 ").as_deref(), Some("5"));
        assert_eq!(norm("Age", "-1"), None);
        assert_eq!(norm("Age", "soon"), None);
    }

    #[test]
    fn expires_valid_obsolete_and_invalid() {
        let imf = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(norm("Expires", imf).as_deref(), Some(imf));
        assert_eq!(
            norm("Expires", "Sunday, 06-Nov-94 08:49:37 GMT").as_deref(),
            Some(imf)
        );
        assert_eq!(
            norm("Expires", "Sun Nov  6 08:49:37 1994").as_deref(),
            Some(imf)
        );
        let expired = Some("Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            norm("Expires", "Sun, 06 Nov 1994  08:49:37 GMT").as_deref(),
            expired
        );
        assert_eq!(norm("Expires", "0").as_deref(), expired);
    }

    #[test]
    fn structured_dictionaries() {
        for ok in [
            "max-age=60",
            "no-store",
            "max-age=10, must-revalidate",
            "a=\"x\";p=1, b=?0",
        ] {
            assert!(valid_dictionary(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "No-Store",
            "max-age=",
            "max-age=60,",
            "a=\"open",
            "max-age=1.2345",
            "a b",
        ] {
            assert!(!valid_dictionary(bad.as_bytes()), "{bad}");
        }
    }
}
