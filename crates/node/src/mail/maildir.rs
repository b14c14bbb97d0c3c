//! Reading a Maildir (the format `store` delivers into): each message is
//! one file in `new/` (not yet seen by a reader) or `cur/` (seen; the name
//! carries `:2,FLAGS` after the unique part). POP3 and IMAP read mailboxes
//! through this; removing a message is removing its file.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Entry {
    /// The unique part of the file name (before `:2,`): stable across renames.
    pub base: String,
    pub path: PathBuf,
    pub size: u64,
    /// Maildir flags (`S` seen, `R` replied, `T` trashed, `D` draft, `F` flagged).
    pub flags: String,
}

/// Every message, oldest first (names begin with the delivery time).
pub fn list(md: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let rd = match std::fs::read_dir(md.join(sub)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let (base, flags) = match name.split_once(":2,") {
                Some((b, f)) => (b.to_string(), f.to_string()),
                None => (name.clone(), String::new()),
            };
            out.push(Entry {
                base,
                path: e.path(),
                size: meta.len(),
                flags,
            });
        }
    }
    out.sort_by(|a, b| a.base.cmp(&b.base));
    Ok(out)
}
