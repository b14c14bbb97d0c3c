//! Errors the API answers with their own status: what was asked for does
//! not exist (404), conflicts with what exists (409), or cannot be done as
//! asked (400). They travel inside `anyhow::Error` and are found again by
//! `status_of`, with the engine's own kinds (404, 409, and 503 for an
//! engine that failed or did not answer); the store failing is a 500.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotFound(String),
    Conflict(String),
    Invalid(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotFound(m) | Problem::Conflict(m) | Problem::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Problem {}

/// The HTTP status an error deserves, from the first typed cause in its
/// chain. Untyped errors are the request's (a lab file, a roster, a value
/// that does not parse): 400.
pub fn status_of(e: &anyhow::Error) -> u16 {
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<Problem>() {
            return match p {
                Problem::NotFound(_) => 404,
                Problem::Conflict(_) => 409,
                Problem::Invalid(_) => 400,
            };
        }
        if let Some(r) = cause.downcast_ref::<applab_runtime::Error>() {
            return match r {
                applab_runtime::Error::NotFound(_) => 404,
                applab_runtime::Error::Conflict(_) => 409,
                applab_runtime::Error::Engine(_) => 503,
            };
        }
        if cause.downcast_ref::<sqlx::Error>().is_some() {
            return 500;
        }
    }
    400
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_first_typed_cause_decides() {
        let e = anyhow::Error::new(Problem::NotFound("no run named \"x\"".into()));
        assert_eq!(status_of(&e), 404);
        let wrapped: anyhow::Result<()> = Err(e);
        let e = wrapped.context("resetting s1").unwrap_err();
        assert_eq!(status_of(&e), 404, "context does not hide it");
        assert_eq!(e.to_string(), "resetting s1");
        let engine = anyhow::Error::new(applab_runtime::Error::Engine("connection refused".into()));
        assert_eq!(status_of(&engine), 503);
        let taken = anyhow::Error::new(applab_runtime::Error::Conflict("name taken".into()));
        assert_eq!(status_of(&taken), 409);
        assert_eq!(status_of(&anyhow::anyhow!("roster line 3: no id")), 400);
        let store = anyhow::Error::new(sqlx::Error::PoolTimedOut);
        assert_eq!(status_of(&store), 500);
    }
}
