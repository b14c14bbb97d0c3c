//! Lab images, FROM scratch, built from applab's own static binary.
//!
//! No registry can be reached, so every image is assembled here: the build
//! context is an in-memory tar of `images/<role>/` plus the binaries, and the
//! engine builds it (classic builder; `FROM scratch` needs nothing pulled).
//! Images are tagged by the SHA-256 of their context, so a changed binary
//! always yields a new tag and containers can never run a stale one; an
//! unchanged context is found by tag and not rebuilt.
//!
//! Conventions in `images/<role>/`: a `Dockerfile` that copies `rootfs/`;
//! `busybox.applets` lists busybox applets to link into `/bin` (with the
//! busybox binary); `node.applets` lists workstation tools linked to
//! `applab-node`. The `controller` image (for docker-compose) carries
//! `applab`, the labs and a manifest of the lab images built with it,
//! instead of their ingredients.

use anyhow::{bail, Context, Result};
use applab_runtime::{Labels, Runtime};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the pieces of the images come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The `images/` folder (one sub-folder per role).
    pub images_dir: PathBuf,
    /// The static `applab-node` binary.
    pub node_binary: PathBuf,
    /// A static busybox (Debian's busybox-static) for the workstation's shell.
    pub busybox: PathBuf,
    /// The static `applab` binary (controller image only).
    pub applab_binary: Option<PathBuf>,
    /// The `labs/` folder (controller image only).
    pub labs_dir: Option<PathBuf>,
    /// A list of already-built lab images (role → image), used instead of
    /// building: the controller image carries the one written when it was
    /// built, so it needs neither applab-node nor busybox inside.
    pub manifest: Option<PathBuf>,
}

/// Where the controller image keeps its manifest of lab images.
pub const MANIFEST_IN_IMAGE: &str = "usr/share/applab/images.json";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Image {
    pub role: String,
    /// `applab/<role>:<digest>`: what containers run.
    pub tag: String,
    /// `applab/<role>:<version>`.
    pub version_tag: String,
    pub digest: String,
    /// Uncompressed size of the context (≈ the image's size).
    pub bytes: u64,
    /// False when an image with this digest already existed.
    pub built: bool,
}

/// A deterministic tar: fixed mtimes, owners and modes, sorted entries, so
/// the digest depends only on content.
struct BuildContext {
    builder: tar::Builder<Vec<u8>>,
    bytes: u64,
}

impl BuildContext {
    fn new() -> BuildContext {
        BuildContext {
            builder: tar::Builder::new(Vec::new()),
            bytes: 0,
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.builder.append_data(&mut h, path, data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, path, std::io::empty())?;
        Ok(())
    }

    fn link(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target)?;
        Ok(())
    }

    fn host_file(&mut self, path: &str, src: &Path) -> Result<()> {
        let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        let exec = is_executable(src);
        self.file(path, &data, if exec { 0o755 } else { 0o644 })
    }

    /// Copy a host folder's files under `prefix`, sorted.
    fn tree(&mut self, prefix: &str, src: &Path) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .with_context(|| format!("reading {}", src.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let dest = format!("{prefix}/{name}");
            if p.is_dir() {
                self.dir(&dest)?;
                self.tree(&dest, &p)?;
            } else {
                self.host_file(&dest, &p)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(Vec<u8>, u64)> {
        Ok((self.builder.into_inner()?, self.bytes))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn applets(dir: &Path, file: &str) -> Result<Vec<String>> {
    let p = dir.join(file);
    if !p.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The roles that have an image folder, sorted.
pub fn roles(images_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(images_dir)
        .with_context(|| format!("reading {}", images_dir.display()))?
    {
        let e = e?;
        if e.path().join("Dockerfile").is_file() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The build context of one role, and its digest. The controller's
/// context lists the lab images (`lab_images`) it will run.
pub fn context(
    role: &str,
    src: &Sources,
    lab_images: &BTreeMap<String, Image>,
) -> Result<(Vec<u8>, String, u64)> {
    let dir = src.images_dir.join(role);
    let mut cx = BuildContext::new();
    cx.host_file("Dockerfile", &dir.join("Dockerfile"))?;
    cx.dir("rootfs")?;
    for d in ["rootfs/bin", "rootfs/data", "rootfs/etc", "rootfs/tmp"] {
        cx.dir(d)?;
    }
    if role != "controller" {
        cx.host_file("rootfs/bin/applab-node", &src.node_binary)?;
    }
    let bb = applets(&dir, "busybox.applets")?;
    if !bb.is_empty() {
        cx.host_file("rootfs/bin/busybox", &src.busybox)?;
    }
    for a in &bb {
        cx.link(&format!("rootfs/bin/{a}"), "busybox")?;
    }
    for a in applets(&dir, "node.applets")? {
        cx.link(&format!("rootfs/bin/{a}"), "applab-node")?;
    }
    if dir.join("rootfs").is_dir() {
        cx.tree("rootfs", &dir.join("rootfs"))?;
    }
    if role == "controller" {
        let applab = src
            .applab_binary
            .as_ref()
            .context("the controller image needs the applab binary")?;
        cx.host_file("rootfs/bin/applab", applab)?;
        cx.dir("rootfs/usr")?;
        cx.dir("rootfs/usr/share")?;
        cx.dir("rootfs/usr/share/applab")?;
        let manifest = serde_json::to_vec_pretty(lab_images)?;
        cx.file(&format!("rootfs/{MANIFEST_IN_IMAGE}"), &manifest, 0o644)?;
        if let Some(labs) = &src.labs_dir {
            cx.dir("rootfs/usr/share/applab/labs")?;
            cx.tree("rootfs/usr/share/applab/labs", labs)?;
        }
    }
    let (tar, bytes) = cx.finish()?;
    let digest = hex::encode(Sha256::digest(&tar));
    Ok((tar, digest, bytes))
}

fn image_for(role: &str, digest: &str, bytes: u64, built: bool) -> Image {
    Image {
        role: role.to_string(),
        tag: format!("applab/{role}:{}", &digest[..16]),
        version_tag: format!("applab/{role}:{VERSION}"),
        digest: digest.to_string(),
        bytes,
        built,
    }
}

/// The lab images named by a manifest, each checked to exist in the engine.
pub async fn from_manifest(rt: &dyn Runtime, path: &Path) -> Result<BTreeMap<String, Image>> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading image manifest {}", path.display()))?;
    let images: BTreeMap<String, Image> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not an image manifest", path.display()))?;
    for i in images.values() {
        if !rt.image_exists(&i.tag).await? {
            bail!(
                "image {} (from {}) is missing: run `applab images build` on the engine's host",
                i.tag,
                path.display()
            );
        }
    }
    Ok(images)
}

/// What [`ensure`] reports as it goes.
pub enum Progress<'a> {
    Start { role: &'a str },
    Line { role: &'a str, line: &'a str },
    Done { image: &'a Image },
}

/// Make sure every listed role's image exists for the current sources,
/// building only those whose digest tag is missing.
pub async fn ensure(
    rt: &dyn Runtime,
    src: &Sources,
    roles: &[String],
    progress: &(dyn Fn(Progress<'_>) + Send + Sync),
) -> Result<BTreeMap<String, Image>> {
    let mut out = BTreeMap::new();
    // The controller's image lists the others, so it is built last.
    let mut ordered: Vec<&String> = roles.iter().filter(|r| *r != "controller").collect();
    ordered.extend(roles.iter().filter(|r| *r == "controller"));
    for role in ordered {
        progress(Progress::Start { role });
        let lab_images: BTreeMap<String, Image> = if role == "controller" {
            let all = self::roles(&src.images_dir)?;
            // The manifest names images, not whether this call built them:
            // the controller's digest must not change with that.
            let mut m: BTreeMap<String, Image> = out
                .iter()
                .map(|(k, v): (&String, &Image)| {
                    (
                        k.clone(),
                        Image {
                            built: false,
                            ..v.clone()
                        },
                    )
                })
                .collect();
            for r in all
                .iter()
                .filter(|r| *r != "controller" && !out.contains_key(*r))
            {
                let (_, digest, bytes) = context(r, src, &BTreeMap::new())?;
                m.insert(r.clone(), image_for(r, &digest, bytes, false));
            }
            m
        } else {
            BTreeMap::new()
        };
        let (tar, digest, bytes) =
            context(role, src, &lab_images).with_context(|| format!("assembling image {role}"))?;
        let image = image_for(role, &digest, bytes, false);
        let (tag, version_tag) = (image.tag.clone(), image.version_tag.clone());
        let exists = rt.image_exists(&tag).await?;
        if !exists {
            let labels = Labels::from([
                ("applab.image".to_string(), role.clone()),
                ("applab.digest".to_string(), digest.clone()),
                ("applab.version".to_string(), VERSION.to_string()),
            ]);
            let mut tags = vec![tag.clone(), version_tag.clone()];
            if role == "controller" {
                tags.push(format!("applab/{role}:latest"));
            }
            rt.build_image(tar, &tags, &labels, &|line: &str| {
                progress(Progress::Line { role, line })
            })
            .await
            .with_context(|| format!("building image {role}"))?;
        }
        let image = Image {
            built: !exists,
            ..image
        };
        progress(Progress::Done { image: &image });
        out.insert(role.clone(), image);
    }
    if out.is_empty() {
        bail!("no images to build");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_content_only() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        std::fs::create_dir_all(images.join("workstation")).unwrap();
        std::fs::write(
            images.join("workstation/Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\n",
        )
        .unwrap();
        std::fs::write(
            images.join("workstation/busybox.applets"),
            "sh\nls # list\n",
        )
        .unwrap();
        std::fs::write(images.join("workstation/node.applets"), "tcp\n").unwrap();
        let node = d.path().join("node");
        let bb = d.path().join("busybox");
        std::fs::write(&node, b"node v1").unwrap();
        std::fs::write(&bb, b"bb").unwrap();
        let src = Sources {
            images_dir: images,
            node_binary: node.clone(),
            busybox: bb,
            applab_binary: None,
            labs_dir: None,
            manifest: None,
        };
        let none = BTreeMap::new();
        let (tar, d1, _) = context("workstation", &src, &none).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (_, d2, _) = context("workstation", &src, &none).unwrap();
        assert_eq!(d1, d2, "same content, same digest");
        std::fs::write(&node, b"node v2").unwrap();
        let (_, d3, _) = context("workstation", &src, &none).unwrap();
        assert_ne!(d1, d3, "a changed binary changes the tag");
        let mut names = Vec::new();
        let mut links = Vec::new();
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            if let Some(t) = e.link_name().unwrap() {
                links.push((p.clone(), t.to_string_lossy().into_owned()));
            }
            names.push(p);
        }
        assert!(names.contains(&"rootfs/bin/applab-node".to_string()));
        assert!(links.contains(&("rootfs/bin/sh".into(), "busybox".into())));
        assert!(links.contains(&("rootfs/bin/ls".into(), "busybox".into())));
        assert!(links.contains(&("rootfs/bin/tcp".into(), "applab-node".into())));
    }
}
