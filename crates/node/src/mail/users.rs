//! The domain's users: who has a mailbox, and their passwords for SMTP AUTH.

use applab_roles::{MailUser, UsersFile};
use std::collections::BTreeMap;

#[derive(Clone)]
enum Secret {
    Clear(String),
    Argon2(String),
}

#[derive(Clone, Default)]
pub struct Users {
    by_name: BTreeMap<String, Secret>,
}

/// Mailboxes every domain has (RFC 5321 §4.5.1), delivered like users.
pub const POSTMASTER: &str = "postmaster";

impl Users {
    pub fn from_list(list: &[MailUser]) -> Result<Users, String> {
        let mut by_name = BTreeMap::new();
        for u in list {
            applab_roles::check_user(u)?;
            let s = match (&u.password, &u.password_hash) {
                (Some(p), None) => Secret::Clear(p.clone()),
                (None, Some(h)) => {
                    argon2::PasswordHash::new(h)
                        .map_err(|e| format!("user {:?}: password_hash: {e}", u.name))?;
                    Secret::Argon2(h.clone())
                }
                _ => unreachable!("check_user requires exactly one"),
            };
            if by_name.insert(u.name.to_ascii_lowercase(), s).is_some() {
                return Err(format!("user {:?} listed twice", u.name));
            }
        }
        Ok(Users { by_name })
    }

    pub fn load(path: &std::path::Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: UsersFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Users::from_list(&f.users).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn merge(&mut self, other: Users) {
        self.by_name.extend(other.by_name);
    }

    /// The mailbox name for a local part, if there is one (case-insensitive).
    pub fn mailbox(&self, local: &str) -> Option<String> {
        let l = local.to_ascii_lowercase();
        (self.by_name.contains_key(&l) || l == POSTMASTER).then_some(l)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }

    /// `verify` on a blocking thread, for the servers' sessions: argon2
    /// takes tens of milliseconds of CPU, which must not stall the event loop.
    pub async fn verify_off_loop(
        &self,
        user: &str,
        domain: &str,
        password: &str,
    ) -> Option<String> {
        let (me, u, d, p) = (
            self.clone(),
            user.to_string(),
            domain.to_string(),
            password.to_string(),
        );
        tokio::task::spawn_blocking(move || me.verify(&u, &d, &p))
            .await
            .ok()
            .flatten()
    }

    /// Check a password; `user` may be `alice` or `alice@domain`. Slow for
    /// argon2 hashes: call from a blocking thread.
    pub fn verify(&self, user: &str, domain: &str, password: &str) -> Option<String> {
        let local = match user.rsplit_once('@') {
            Some((l, d)) if d.eq_ignore_ascii_case(domain) => l,
            Some(_) => return None,
            None => user,
        };
        let name = local.to_ascii_lowercase();
        let ok = match self.by_name.get(&name)? {
            Secret::Clear(p) => constant_eq(p.as_bytes(), password.as_bytes()),
            Secret::Argon2(h) => {
                use argon2::PasswordVerifier;
                let parsed = argon2::PasswordHash::new(h).ok()?;
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            }
        };
        ok.then_some(name)
    }
}

/// Compare without stopping at the first difference (no timing oracle).
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The servers' tests' one user: `bob`, password `pw`.
#[cfg(test)]
pub fn bob() -> Users {
    Users::from_list(&[applab_roles::MailUser {
        name: "bob".into(),
        password: Some("pw".into()),
        password_hash: None,
    }])
    .expect("bob is a valid user")
}
