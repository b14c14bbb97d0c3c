//! Conditional GET (RFC 9110 §13): the client says which copy it holds
//! (`If-None-Match` with its entity tags, or `If-Modified-Since` with a
//! date) and the server answers `304 Not Modified` with no body when that
//! copy is still current. The origin answers for its files, the proxy for
//! what it has stored; both decide here.

use std::time::{SystemTime, UNIX_EPOCH};

/// An entity tag without its weakness mark: `W/"x"` and `"x"` compare equal
/// under the weak comparison GET uses (RFC 9110 §8.8.3.2).
fn opaque(tag: &[u8]) -> &[u8] {
    let t = tag.trim_ascii();
    t.strip_prefix(b"W/").unwrap_or(t)
}

/// Whether the client's copy is current (RFC 9110 §13.2.2): `If-None-Match`
/// is evaluated when present and `If-Modified-Since` is then ignored; an
/// invalid date is ignored; without a validator to compare, nothing matches.
pub fn not_modified(
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
    etag: Option<&[u8]>,
    last_modified: Option<SystemTime>,
) -> bool {
    if let Some(inm) = if_none_match {
        if inm.trim_ascii() == b"*" {
            return true;
        }
        let Some(ours) = etag else { return false };
        let ours = opaque(ours);
        return inm.split(|&b| b == b',').any(|t| opaque(t) == ours);
    }
    if let (Some(ims), Some(lm)) = (if_modified_since, last_modified) {
        let Some(since) = std::str::from_utf8(ims)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
        else {
            return false;
        };
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        return secs(lm) <= secs(since);
    }
    false
}

/// The date of a `Last-Modified` (or any HTTP-date) field value.
pub fn http_date(value: &[u8]) -> Option<SystemTime> {
    httpdate::parse_http_date(std::str::from_utf8(value).ok()?.trim()).ok()
}

/// The fields a 304 carries (RFC 9110 §15.4.5): those a 200 would, less
/// the ones describing its content.
pub fn fields_of_304(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    const CONTENT: [&str; 4] = [
        "content-length",
        "content-type",
        "content-encoding",
        "content-range",
    ];
    headers
        .iter()
        .filter(|(n, _)| !CONTENT.iter().any(|c| n.eq_ignore_ascii_case(c)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entity_tags_compare_weakly_and_star_matches() {
        let e = Some(&b"\"v1\""[..]);
        assert!(not_modified(Some(b"\"v1\""), None, e, None));
        assert!(not_modified(Some(b"W/\"v1\""), None, e, None));
        assert!(not_modified(Some(b"\"a\", \"v1\""), None, e, None));
        assert!(!not_modified(Some(b"\"v2\""), None, e, None));
        assert!(not_modified(Some(b" * "), None, None, None));
        assert!(!not_modified(Some(b"\"v1\""), None, None, None));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let lm = UNIX_EPOCH + Duration::from_secs(784111777);
        let ims = b"Sun, 06 Nov 1994 08:49:37 GMT";
        assert!(not_modified(None, Some(ims), None, Some(lm)));
        assert!(!not_modified(
            Some(b"\"x\""),
            Some(ims),
            Some(b"\"y\""),
            Some(lm)
        ));
        let later = lm + Duration::from_secs(1);
        assert!(!not_modified(None, Some(ims), None, Some(later)));
        // The obsolete forms are dates too; garbage is ignored.
        assert!(not_modified(
            None,
            Some(b"Sunday, 06-Nov-94 08:49:37 GMT"),
            None,
            Some(lm)
        ));
        assert!(not_modified(
            None,
            Some(b"Sun Nov  6 08:49:37 1994"),
            None,
            Some(lm)
        ));
        assert!(!not_modified(None, Some(b"yesterday"), None, Some(lm)));
    }

    #[test]
    fn a_304_drops_the_content_fields() {
        let h = vec![
            ("ETag".to_string(), b"\"1\"".to_vec()),
            ("Content-Length".to_string(), b"5".to_vec()),
            ("content-type".to_string(), b"text/plain".to_vec()),
        ];
        assert_eq!(
            fields_of_304(&h),
            vec![("ETag".to_string(), b"\"1\"".to_vec())]
        );
    }
}
