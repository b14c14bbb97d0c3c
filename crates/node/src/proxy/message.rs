//! What a proxy does to messages on their way through (RFC 9110 §7.6,
//! RFC 9112 §3.2): where an absolute-form target points, which header
//! fields are hop-by-hop and stop here, `Via`, and the conversions to the
//! `http` crate's types that http-cache-semantics reads.

use applab_proto::http::ResponseHead;

/// Fields that describe one connection, not the message (RFC 9110 §7.6.1):
/// never forwarded, in either direction. `Proxy-Authorization` and
/// `Proxy-Authenticate` are for this proxy alone.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The header fields to pass on: hop-by-hop ones dropped, and so are the
/// fields the `Connection` header names.
pub fn end_to_end(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let named: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&n.as_str()) && !named.contains(&n)
        })
        .cloned()
        .collect()
}

/// An `http://` target split into the authority to connect to and the
/// origin-form path to send there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host` or `host:port`, lower case, as written (default port left out).
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Origin-form: path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// The cache key and the URI the cache policy sees.
    pub fn uri(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// Why a target cannot be forwarded; each becomes a status for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Not absolute-form (a forward proxy needs to know where to go).
    NotAbsolute,
    /// A scheme this proxy does not speak (https without CONNECT, ftp ...).
    Scheme(String),
    Malformed(&'static str),
}

/// Parse an absolute-form target (`http://host[:port]/path?query`).
pub fn absolute_target(target: &str) -> Result<Target, TargetError> {
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(TargetError::NotAbsolute);
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(TargetError::Scheme(scheme.to_ascii_lowercase()));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or("");
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let t = parse_authority(authority, 80)?;
    Ok(Target { path, ..t })
}

/// Parse `host[:port]` (no user information: it has no place in HTTP).
pub fn parse_authority(authority: &str, default_port: u16) -> Result<Target, TargetError> {
    if authority.is_empty() {
        return Err(TargetError::Malformed("no host"));
    }
    if authority.contains('@') {
        return Err(TargetError::Malformed("user information in the target"));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080
        let (h, after) = rest
            .split_once(']')
            .ok_or(TargetError::Malformed("unclosed IPv6 literal"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(TargetError::Malformed("bad port"))?,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(ok) {
        return Err(TargetError::Malformed("bad host"));
    }
    let host = host.to_ascii_lowercase();
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = if port == default_port {
        shown
    } else {
        format!("{shown}:{port}")
    };
    Ok(Target {
        authority,
        host,
        port,
        path: "/".into(),
    })
}

/// `Via` for a message passing here: what came with it, then us.
pub fn add_via(headers: &mut Vec<(String, Vec<u8>)>, minor: u8, pseudonym: &str) {
    let mine = format!("1.{minor} {pseudonym}");
    match headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case("via"))
    {
        Some((_, v)) => {
            v.extend_from_slice(b", ");
            v.extend_from_slice(mine.as_bytes());
        }
        None => headers.push(("Via".into(), mine.into_bytes())),
    }
}

/// Whether a message already passed through this proxy (a loop).
pub fn has_looped(headers: &[(String, Vec<u8>)], pseudonym: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("via"))
        .any(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .any(|hop| hop.split_whitespace().nth(1) == Some(pseudonym))
        })
}

/// Replace (or add) one header field.
pub fn set_header(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: Vec<u8>) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_string(), value));
}

pub fn remove_header(headers: &mut Vec<(String, Vec<u8>)>, name: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
}

/// A request as http-cache-semantics reads it. Header fields the `http`
/// crate refuses (they could not have come through httparse anyway) are
/// left out rather than failing the request.
pub fn request_parts(
    method: &str,
    uri: &str,
    headers: &[(String, Vec<u8>)],
) -> http::request::Parts {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET))
        .uri(http::Uri::try_from(uri).unwrap_or_else(|_| http::Uri::from_static("/")));
    if let Some(h) = b.headers_mut() {
        copy_into(h, headers);
    }
    b.body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| http::Request::new(()).into_parts().0)
}

/// A response as http-cache-semantics reads it.
pub fn response_parts(head: &ResponseHead) -> http::response::Parts {
    let mut r = http::Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::OK);
    copy_into(r.headers_mut(), &head.headers);
    r.into_parts().0
}

/// The fields as the cache's rules read them: every one goes through
/// `applab_proto::caching::normalize` here, the one way in.
fn copy_into(map: &mut http::HeaderMap, headers: &[(String, Vec<u8>)]) {
    for (n, v) in headers {
        let Some(v) = applab_proto::caching::normalize(n, v) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_bytes(&v),
        ) {
            map.append(n, v);
        }
    }
}

/// Header fields back from the `http` crate's map.
pub fn from_map(map: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (canonical(n.as_str()), v.as_bytes().to_vec()))
        .collect()
}

/// `content-type` → `Content-Type`: the map lowercases names, students
/// read the usual spelling.
fn canonical(name: &str) -> String {
    match name {
        "etag" => return "ETag".into(),
        "www-authenticate" => return "WWW-Authenticate".into(),
        "content-md5" => return "Content-MD5".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

/// Cache-Control directives of a message, lower case, without values.
pub fn directive(headers: &[(String, Vec<u8>)], name: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        .any(|(_, v)| {
            v.split(|&b| b == b',').any(|d| {
                let d = d.trim_ascii();
                let key = d.split(|&b| b == b'=').next().unwrap_or(b"").trim_ascii();
                key.eq_ignore_ascii_case(name.as_bytes())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn targets_split_into_authority_and_path() {
        let t = absolute_target("http://Example.LAB:8080/a/b?q=1#frag").unwrap();
        assert_eq!(t.authority, "example.lab:8080");
        assert_eq!((t.host.as_str(), t.port), ("example.lab", 8080));
        assert_eq!(t.path, "/a/b?q=1");
        let t = absolute_target("http://origin").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.port, t.path.as_str()),
            ("origin", 80, "/")
        );
        assert_eq!(absolute_target("http://origin:80?x").unwrap().path, "/?x");
        assert_eq!(
            absolute_target("http://[::1]:81/").unwrap().authority,
            "[::1]:81"
        );
        assert_eq!(
            absolute_target("/index.html"),
            Err(TargetError::NotAbsolute)
        );
        assert_eq!(
            absolute_target("https://x/"),
            Err(TargetError::Scheme("https".into()))
        );
        assert!(absolute_target("http://u:p@x/").is_err());
        assert!(absolute_target("http://x:99999/").is_err());
        assert!(absolute_target("http:///").is_err());
        assert!(absolute_target("http://a b/").is_err());
    }

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_stop_here() {
        let kept = end_to_end(&h(&[
            ("Connection", "close, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Transfer-Encoding", "chunked"),
            ("Accept", "*/*"),
            ("Host", "o"),
        ]));
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Accept", "Host"]);
    }

    #[test]
    fn via_is_appended_and_loops_are_seen() {
        let mut hs = h(&[("Via", "1.0 fred")]);
        assert!(!has_looped(&hs, "proxy"));
        add_via(&mut hs, 1, "proxy");
        assert_eq!(hs[0].1, b"1.0 fred, 1.1 proxy");
        assert!(has_looped(&hs, "proxy"));
        let mut hs = vec![];
        add_via(&mut hs, 0, "p");
        assert_eq!(hs, h(&[("Via", "1.0 p")]));
    }

    #[test]
    fn directives_and_names() {
        let hs = h(&[
            ("Cache-Control", "max-age=0, No-Cache"),
            ("cache-control", "only-if-cached"),
        ]);
        assert!(directive(&hs, "no-cache"));
        assert!(directive(&hs, "max-age"));
        assert!(directive(&hs, "only-if-cached"));
        assert!(!directive(&hs, "no-store"));
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("etag"), "ETag");
    }
}
