//! The SASL responses the mail servers read in a lab: PLAIN (RFC 4616),
//! one base64 string of `authzid NUL user NUL password`, and LOGIN's two
//! base64 fields, as SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE (RFC 3501
//! §6.2.2) carry them. A client cancels an exchange with `*`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Who a PLAIN response says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as; empty means the user's own.
    pub authzid: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("cannot decode the response (base64)")]
    Base64,
    #[error("PLAIN needs authzid NUL user NUL password")]
    Shape,
}

/// `*`: the client gives the exchange up (RFC 4954 §4, RFC 3501 §6.2.2).
pub fn is_cancel(response: &str) -> bool {
    response.trim() == "*"
}

/// A PLAIN response.
pub fn plain(response: &str) -> Result<Credentials, SaslError> {
    let raw = STANDARD
        .decode(response.trim())
        .map_err(|_| SaslError::Base64)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Shape);
    };
    if user.is_empty() {
        return Err(SaslError::Shape);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(Credentials {
        authzid: text(authzid),
        user: text(user),
        password: text(password),
    })
}

/// The PLAIN response a client sends for `user` and `password`.
pub fn encode_plain(user: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{password}"))
}

/// One of LOGIN's fields (the user name, then the password).
pub fn login_field(response: &str) -> Result<String, SaslError> {
    let raw = STANDARD
        .decode(response.trim())
        .map_err(|_| SaslError::Base64)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_as_rfc_4616_writes_it() {
        // RFC 4616 §4's examples: without and with an authorization identity.
        let c = plain(&STANDARD.encode("\0tim\0tanstaaftanstaaf")).unwrap();
        assert_eq!((c.authzid.as_str(), c.user.as_str()), ("", "tim"));
        assert_eq!(c.password, "tanstaaftanstaaf");
        let c = plain(&STANDARD.encode("Ursel\0Kurt\0xipj3plmq")).unwrap();
        assert_eq!((c.authzid.as_str(), c.user.as_str()), ("Ursel", "Kurt"));
        let c = plain(&encode_plain("bob", "pw")).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("bob", "pw"));
    }

    #[test]
    fn malformed_responses_are_named() {
        assert_eq!(plain("%%%"), Err(SaslError::Base64));
        assert_eq!(plain(&STANDARD.encode("bob pw")), Err(SaslError::Shape));
        assert_eq!(plain(&STANDARD.encode("\0\0pw")), Err(SaslError::Shape));
        assert_eq!(plain(&STANDARD.encode("a\0b\0c\0d")), Err(SaslError::Shape));
        assert_eq!(login_field("Ym9i"), Ok("bob".into()));
        assert_eq!(login_field("Ym9i!"), Err(SaslError::Base64));
        assert!(is_cancel(" * ") && !is_cancel("Kg=="));
    }
}
