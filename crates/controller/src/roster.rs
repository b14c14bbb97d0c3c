//! Class rosters: CSV with the columns `id,name,email`.
//!
//! Bad rows are reported with their line so the instructor can fix the
//! file; nothing is launched from a roster with errors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// A student id becomes part of container and network names.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id.as_bytes()[0].is_ascii_alphanumeric()
}

/// Parse a roster; errors are `file:line: message`, all of them.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let at = |line: u64| format!("{}:{line}", path.display());
    match rdr.headers() {
        Ok(h) => {
            let cols: Vec<String> = h.iter().map(|c| c.to_ascii_lowercase()).collect();
            if cols != ["id", "name", "email"] {
                errors.push(format!(
                    "{}: header must be id,name,email, found {}",
                    at(1),
                    cols.join(",")
                ));
                return Err(errors);
            }
        }
        Err(e) => return Err(vec![format!("{}: {e}", at(1))]),
    }
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(format!("{}: {e}", at(line)));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        if rec.len() != 3 {
            errors.push(format!(
                "{}: expected 3 fields (id,name,email), found {}",
                at(line),
                rec.len()
            ));
            continue;
        }
        let (id, name, email) = (&rec[0], &rec[1], &rec[2]);
        if !valid_id(id) {
            errors.push(format!(
                "{}: bad id {id:?}: 1-32 of letters, digits, '-', '_', '.', starting with a letter or digit",
                at(line)
            ));
            continue;
        }
        if name.is_empty() {
            errors.push(format!("{}: student {id} has no name", at(line)));
            continue;
        }
        if !email.contains('@') || email.contains(char::is_whitespace) {
            errors.push(format!(
                "{}: bad email {email:?} for student {id}",
                at(line)
            ));
            continue;
        }
        if !seen.insert(id.to_string()) {
            errors.push(format!("{}: duplicate id {id:?}", at(line)));
            continue;
        }
        out.push(Entry {
            id: id.into(),
            name: name.into(),
            email: email.into(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_rows() {
        let p = Path::new("roster.csv");
        let ok = parse(
            p,
            "id,name,email\ns001,Ada Lovelace,ada@uni.edu\n\ns002, Alan Turing ,alan@uni.edu\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].name, "Alan Turing");
        let errs = parse(
            p,
            "id,name,email\ns001,Ada,ada@uni.edu\ns 2,Bob,bob@uni.edu\ns003,Cy,nomail\ns001,Ada again,a@b\ns004,Dee\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with("roster.csv:3: bad id"), "{errs:?}");
        assert!(errs[1].starts_with("roster.csv:4: bad email"), "{errs:?}");
        assert!(
            errs[2].starts_with("roster.csv:5: duplicate id"),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("roster.csv:6: expected 3 fields"),
            "{errs:?}"
        );
        assert!(parse(p, "student,name\n").unwrap_err()[0].contains("header"));
    }
}
