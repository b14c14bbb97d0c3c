//! Student credentials for the panel: generated, shown once, stored hashed.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::Rng;

/// Unambiguous characters: passwords are read off paper and typed.
const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Argon2id PHC string.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_then_verify() {
        let p = super::generate();
        assert_eq!(p.len(), 12);
        let h = super::hash(&p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(&p, &h));
        assert!(!super::verify("wrong", &h));
        // A student whose hash is not stored yet matches nothing.
        assert!(!super::verify("", ""));
        assert!(!super::verify(&p, ""));
    }
}
