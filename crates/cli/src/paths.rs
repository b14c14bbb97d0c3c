//! Where the images' ingredients and the shipped labs are found.
//!
//! In a checkout the binaries sit in `target/<triple>/release/`; in the
//! controller image everything is under `/usr/share/applab` and `/bin`.

use std::path::{Path, PathBuf};

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The first of: `./NAME`, the checkout that holds this binary, /usr/share/applab/NAME.
pub fn shared_dir(name: &str) -> PathBuf {
    let mut candidates = vec![PathBuf::from(name)];
    let mut d = exe_dir();
    for _ in 0..4 {
        candidates.push(d.join(name));
        if !d.pop() {
            break;
        }
    }
    candidates.push(Path::new("/usr/share/applab").join(name));
    candidates
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(name))
}

pub fn sibling_binary(name: &str) -> PathBuf {
    let p = exe_dir().join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from("/bin").join(name)
    }
}
