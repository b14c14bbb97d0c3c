//! Per-student parameters (DESIGN.md decision 8).
//!
//! Every value a student could copy from a classmate is derived as
//! HMAC-SHA256(run secret, student id, parameter name). Relaunching a run
//! reproduces the values, checks can recompute them, and they differ between
//! students.

use crate::{Lab, ParamKind};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The name under which the student's own id is available to templates.
pub const STUDENT_ID: &str = "student_id";

/// `addr.NODE`: the address the controller plans for a node on its first
/// network, available to node configs (zone records, resolvers).
pub const ADDR_PREFIX: &str = "addr.";

/// The derived bytes for one (student, parameter).
fn stream(secret: &[u8], student: &str, name: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    // NUL separators: no (student, name) pair can collide with another's bytes.
    mac.update(b"applab-param\0");
    mac.update(student.as_bytes());
    mac.update(b"\0");
    mac.update(name.as_bytes());
    mac.finalize().into_bytes().into()
}

const CONSONANTS: &[u8] = b"bcdfghjklmnprstvz";
const VOWELS: &[u8] = b"aeiou";
/// No 0/O, 1/l/I: passwords are read off a screen and typed.
const PASSWORD_CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Derive one parameter's value.
pub fn derive(secret: &[u8], student: &str, name: &str, kind: &ParamKind) -> String {
    let b = stream(secret, student, name);
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    match kind {
        ParamKind::Word { len, prefix } => {
            let mut s = prefix.clone();
            for i in 0..*len {
                let byte = b[i % 32] as usize + i / 32;
                let set = if i % 2 == 0 { CONSONANTS } else { VOWELS };
                s.push(set[byte % set.len()] as char);
            }
            s
        }
        ParamKind::Hex { len } => {
            let mut s = hex::encode(b);
            while s.len() < *len {
                s.push_str(&hex::encode(stream(
                    secret,
                    student,
                    &format!("{name}+{}", s.len()),
                )));
            }
            s.truncate(*len);
            s
        }
        ParamKind::Int { min, max } => {
            let span = (*max as i128 - *min as i128 + 1) as u128;
            (*min as i128 + (u64_at(0) as u128 % span) as i128).to_string()
        }
        ParamKind::Choice { choices } => {
            choices[(u64_at(0) % choices.len() as u64) as usize].clone()
        }
        ParamKind::Password { len } => (0..*len)
            .map(|i| PASSWORD_CHARS[b[i % 32] as usize % PASSWORD_CHARS.len()] as char)
            .collect(),
    }
}

/// All of a student's values, plus `student_id`.
pub fn for_student(lab: &Lab, secret: &[u8], student: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = lab
        .parameters
        .iter()
        .map(|(name, p)| (name.clone(), derive(secret, student, name, &p.kind)))
        .collect();
    out.insert(STUDENT_ID.to_string(), student.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_reproducible_and_differ_between_students() {
        let k = ParamKind::Word {
            len: 8,
            prefix: String::new(),
        };
        let a1 = derive(b"secret", "s001", "site", &k);
        let a2 = derive(b"secret", "s001", "site", &k);
        let b = derive(b"secret", "s002", "site", &k);
        let other_run = derive(b"other", "s001", "site", &k);
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, other_run);
        assert_eq!(a1.len(), 8);
        assert!(a1.bytes().all(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn kinds_respect_their_bounds() {
        for s in 0..200 {
            let id = format!("s{s}");
            let n: i64 = derive(b"k", &id, "n", &ParamKind::Int { min: 5, max: 9 })
                .parse()
                .unwrap();
            assert!((5..=9).contains(&n));
            let h = derive(b"k", &id, "h", &ParamKind::Hex { len: 70 });
            assert_eq!(h.len(), 70);
            assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
            let c = derive(
                b"k",
                &id,
                "c",
                &ParamKind::Choice {
                    choices: vec!["x".into(), "y".into()],
                },
            );
            assert!(c == "x" || c == "y");
            let p = derive(b"k", &id, "p", &ParamKind::Password { len: 12 });
            assert_eq!(p.len(), 12);
        }
    }
}
