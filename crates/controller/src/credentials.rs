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

/// Generate and hash a password for each item on low-priority threads, one
/// per core: Argon2 is slow on purpose, and during a launch the container
/// engine needs the CPU more than the credentials do.
pub async fn issue_in_background<T: Send + 'static>(
    items: Vec<T>,
) -> anyhow::Result<Vec<(T, String, String)>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per = items.len().div_ceil(cores).max(1);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    for item in items {
        match chunks.last_mut() {
            Some(c) if c.len() < per => c.push(item),
            _ => chunks.push(vec![item]),
        }
    }
    let mut waits = Vec::new();
    for chunk in chunks {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            // SAFETY: plain syscall; on Linux it lowers only this thread's priority.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            let out: anyhow::Result<Vec<_>> = chunk
                .into_iter()
                .map(|item| {
                    let password = generate();
                    hash(&password).map(|h| (item, password, h))
                })
                .collect();
            let _ = tx.send(out);
        });
        waits.push(rx);
    }
    let mut out = Vec::new();
    for w in waits {
        out.extend(
            w.await
                .map_err(|_| anyhow::anyhow!("credential thread died"))??,
        );
    }
    Ok(out)
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
    #[tokio::test]
    async fn background_issue_keeps_every_item_once() {
        let out = super::issue_in_background((0..7).collect::<Vec<u32>>())
            .await
            .unwrap();
        let mut ids: Vec<u32> = out.iter().map(|(i, _, _)| *i).collect();
        ids.sort();
        assert_eq!(ids, (0..7).collect::<Vec<_>>());
        assert!(out.iter().all(|(_, p, h)| super::verify(p, h)));
    }

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
