//! Files under `--root`: lookup, validators, conditional GET, uploads.
//!
//! Every file answer carries the validators a cache needs (RFC 9110 §8.8):
//! `Last-Modified` from the file's mtime and an `ETag` from its mtime and
//! size. A conditional request whose validator still matches gets
//! `304 Not Modified` and no body; that is the exchange the web-caching lab
//! makes students find in their trace.
//!
//! Small files are kept in memory and re-checked against the disk at most
//! once a second, so a busy page costs no file system calls per request;
//! a change made through PUT or DELETE is seen at once.

use super::response::{Body, Response};
use bytes::Bytes;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Files up to this size are served from memory.
const CACHE_FILE_MAX: u64 = 256 * 1024;
/// How long a cached file is trusted before its metadata is read again.
const RECHECK: Duration = Duration::from_secs(1);

pub struct Meta {
    pub len: u64,
    pub mtime: SystemTime,
    pub last_modified: Arc<str>,
    pub etag: Arc<str>,
    pub content_type: &'static str,
}

impl Meta {
    fn of(path: &Path, md: &std::fs::Metadata) -> Meta {
        let mtime = md.modified().unwrap_or(UNIX_EPOCH);
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        Meta {
            len: md.len(),
            mtime,
            last_modified: httpdate::fmt_http_date(mtime).into(),
            // Like nginx's: changes when the file's mtime or size does.
            etag: format!(
                "\"{:x}.{:x}-{:x}\"",
                since.as_secs(),
                since.subsec_nanos(),
                md.len()
            )
            .into(),
            content_type: content_type(path),
        }
    }
}

struct Cached {
    meta: Arc<Meta>,
    body: Bytes,
    /// Milliseconds since the cache was made, when last checked against disk.
    checked: AtomicU64,
}

/// What a path under the root turned out to be.
pub enum Found {
    File(Arc<Meta>, Body),
    Dir,
    Missing,
}

pub struct Files {
    root: PathBuf,
    /// Keyed by the path's bytes: hashing a `Path` walks its components.
    cache: RwLock<HashMap<OsString, Arc<Cached>>>,
    cache_bytes: AtomicU64,
    cache_limit: u64,
    epoch: Instant,
}

impl Files {
    pub fn new(root: PathBuf, cache_limit: u64) -> Files {
        Files {
            // Normalised ("/srv/" is "/srv"), so the fast join in
            // `local_path` makes the same key as the component-wise one.
            root: root.components().collect(),
            cache: RwLock::new(HashMap::new()),
            cache_bytes: AtomicU64::new(0),
            cache_limit,
            epoch: Instant::now(),
        }
    }

    /// The file a decoded URL path names, refusing any escape from the root.
    pub fn local_path(&self, path: &str) -> Option<PathBuf> {
        // The common case, every segment a plain name: join as text.
        let plain = path.len() > 1
            && path.starts_with('/')
            && path[1..]
                .split('/')
                .all(|seg| !seg.is_empty() && !seg.starts_with('.'));
        if plain {
            let mut out = OsString::with_capacity(self.root.as_os_str().len() + path.len());
            out.push(self.root.as_os_str());
            if self.root.as_os_str() != "/" {
                out.push(path);
            } else {
                out.push(&path[1..]);
            }
            return Some(out.into());
        }
        let mut out = self.root.clone();
        for comp in Path::new(path).components() {
            match comp {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(c) => out.push(c),
                Component::ParentDir | Component::Prefix(_) => return None,
            }
        }
        Some(out)
    }

    pub fn lookup(&self, file: &Path) -> Found {
        let now = self.epoch.elapsed().as_millis() as u64;
        if let Some(c) = self
            .cache
            .read()
            .ok()
            .and_then(|m| m.get(file.as_os_str()).cloned())
        {
            if now.saturating_sub(c.checked.load(Ordering::Relaxed)) < RECHECK.as_millis() as u64 {
                return self.found_cached(&c);
            }
            if let Ok(md) = std::fs::metadata(file) {
                if md.is_file()
                    && md.len() == c.meta.len
                    && md.modified().ok() == Some(c.meta.mtime)
                {
                    c.checked.store(now, Ordering::Relaxed);
                    return self.found_cached(&c);
                }
            }
            self.forget(file);
        }
        let md = match std::fs::metadata(file) {
            Ok(md) => md,
            Err(_) => return Found::Missing,
        };
        if md.is_dir() {
            return Found::Dir;
        }
        if !md.is_file() {
            return Found::Missing;
        }
        let meta = Meta::of(file, &md);
        if meta.len > CACHE_FILE_MAX {
            let len = meta.len;
            return Found::File(Arc::new(meta), Body::File(file.to_path_buf(), len));
        }
        let Ok(data) = std::fs::read(file) else {
            return Found::Missing;
        };
        if data.len() as u64 != meta.len {
            // Changed under us: serve what was read, cache nothing.
            let meta = Meta {
                len: data.len() as u64,
                ..meta
            };
            return Found::File(Arc::new(meta), Body::Bytes(data.into()));
        }
        let c = Arc::new(Cached {
            meta: Arc::new(meta),
            body: data.into(),
            checked: AtomicU64::new(now),
        });
        self.remember(file, c.clone());
        self.found_cached(&c)
    }

    fn found_cached(&self, c: &Cached) -> Found {
        Found::File(c.meta.clone(), Body::Bytes(c.body.clone()))
    }

    fn remember(&self, file: &Path, c: Arc<Cached>) {
        let add = c.meta.len;
        let Ok(mut m) = self.cache.write() else {
            return;
        };
        if self.cache_bytes.load(Ordering::Relaxed) + add > self.cache_limit {
            // Bounded memory, simply: start over rather than track recency.
            m.clear();
            self.cache_bytes.store(0, Ordering::Relaxed);
        }
        if add <= self.cache_limit {
            if let Some(old) = m.insert(file.as_os_str().to_owned(), c) {
                self.cache_bytes.fetch_sub(old.meta.len, Ordering::Relaxed);
            }
            self.cache_bytes.fetch_add(add, Ordering::Relaxed);
        }
    }

    pub fn forget(&self, file: &Path) {
        if let Ok(mut m) = self.cache.write() {
            if let Some(old) = m.remove(file.as_os_str()) {
                self.cache_bytes.fetch_sub(old.meta.len, Ordering::Relaxed);
            }
        }
    }

    /// PUT: store the body durably (temp file, fsync, rename). True if the
    /// file is new (201), false if it replaced one (204).
    pub fn put(&self, file: &Path, body: &[u8]) -> std::io::Result<bool> {
        use std::io::Write;
        let parent = file
            .parent()
            .ok_or_else(|| std::io::Error::other("no parent folder"))?;
        std::fs::create_dir_all(parent)?;
        let existed = file.is_file();
        if file.is_dir() {
            return Err(std::io::Error::other("a folder has that name"));
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)?;
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
        self.forget(file);
        Ok(!existed)
    }

    /// DELETE: false if there was no such file.
    pub fn delete(&self, file: &Path) -> std::io::Result<bool> {
        self.forget(file);
        match std::fs::remove_file(file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A 200 or 304 answer for file content with its validators.
pub fn answer(
    meta: &Meta,
    body: Body,
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
) -> Response {
    let fresh = applab_proto::conditional::not_modified(
        if_none_match,
        if_modified_since,
        Some(meta.etag.as_bytes()),
        Some(meta.mtime),
    );
    let r = Response::new(if fresh { 304 } else { 200 })
        .header("Content-Type", meta.content_type)
        .header("Last-Modified", meta.last_modified.clone())
        .header("ETag", meta.etag.clone());
    if fresh {
        r
    } else {
        r.body(body)
    }
}

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_never_leave_the_root() {
        let f = Files::new(PathBuf::from("/srv"), 1 << 20);
        assert_eq!(
            f.local_path("/a/b.html"),
            Some(PathBuf::from("/srv/a/b.html"))
        );
        assert_eq!(f.local_path("/a/./b"), Some(PathBuf::from("/srv/a/b")));
        assert_eq!(f.local_path("/a//b/"), Some(PathBuf::from("/srv/a/b")));
        assert_eq!(
            f.local_path("/.hidden"),
            Some(PathBuf::from("/srv/.hidden"))
        );
        // The plain join and the component walk name the same file alike.
        let slash = Files::new(PathBuf::from("/srv/"), 1 << 20);
        assert_eq!(
            slash.local_path("/a/b.html").unwrap().as_os_str(),
            slash.local_path("/a/./b.html").unwrap().as_os_str()
        );
        let top = Files::new(PathBuf::from("/"), 1 << 20);
        assert_eq!(top.local_path("/a/b").unwrap().as_os_str(), "/a/b");
        assert_eq!(f.local_path("/a/.."), None);
        assert_eq!(f.local_path("/../etc/passwd"), None);
        assert_eq!(f.local_path("/a/../../x"), None);
    }

    #[test]
    fn cache_sees_puts_and_deletes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::new(dir.path().to_path_buf(), 1 << 20);
        let p = dir.path().join("up/x.txt");
        assert!(matches!(f.lookup(&p), Found::Missing));
        assert!(f.put(&p, b"one").unwrap());
        let Found::File(m, Body::Bytes(b)) = f.lookup(&p) else {
            panic!()
        };
        assert_eq!(
            (&b[..], m.content_type),
            (&b"one"[..], "text/plain; charset=utf-8")
        );
        assert!(!f.put(&p, b"second").unwrap());
        let Found::File(_, Body::Bytes(b)) = f.lookup(&p) else {
            panic!()
        };
        assert_eq!(&b[..], b"second");
        assert!(f.delete(&p).unwrap());
        assert!(!f.delete(&p).unwrap());
        assert!(matches!(f.lookup(&p), Found::Missing));
    }
}
