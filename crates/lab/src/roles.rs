//! The `[nodes.config]` tables of the roles that read one.
//!
//! A lab file gives a node's configuration inline; the controller renders it
//! (parameters filled in) to `/data/node.toml` and the role reads it with
//! `--config`. The schema lives here, once, so `applab lab validate` and the
//! node agree on it.

use crate::{parse_duration_us, parse_size};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The origin role's configuration (`applab-node origin --config FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// The lab folder whose files the node serves (read by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Writable area under the root for PUT and DELETE; "" turns them off.
    #[serde(default = "default_uploads")]
    pub uploads: String,
    /// Largest request body accepted ("1M").
    #[serde(default = "default_max_body")]
    pub max_body: String,
    /// Path of the form-echo page, the lecture's search engine.
    #[serde(default = "default_search")]
    pub search: String,
    /// Moved objects: old path = new path, answered with 301 and `Location`.
    #[serde(default)]
    pub moved: BTreeMap<String, String>,
    /// Caching headers per path prefix; the longest matching prefix wins.
    #[serde(default)]
    pub headers: Vec<PathHeaders>,
    /// A generated base page that references N objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageConfig>,
    /// The cookie shop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<ShopConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathHeaders {
    /// Applies to every path starting with this.
    pub prefix: String,
    /// Sent as `Cache-Control` verbatim ("max-age=30", "no-cache").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Expires` this long after the response ("30s"; "0s" means already stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    /// Where the base page is served.
    #[serde(default = "default_page_path")]
    pub path: String,
    /// How many objects it references (the lecture's ten JPEG images).
    #[serde(default = "default_objects")]
    pub objects: u32,
    /// Size of every object ("100K"), unless `sizes` lists each one.
    #[serde(default = "default_object_size")]
    pub size: String,
    /// Sizes one by one; the last repeats if there are fewer than `objects`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<String>,
    /// Extra text placed in the page (a per-student word, say).
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// Where the shop lives; the cart's forms post under it.
    #[serde(default = "default_shop_path")]
    pub path: String,
    /// Items for sale.
    pub items: Vec<String>,
}

fn default_uploads() -> String {
    "uploads".into()
}
fn default_max_body() -> String {
    "1M".into()
}
fn default_search() -> String {
    "/search".into()
}
fn default_page_path() -> String {
    "/page.html".into()
}
fn default_objects() -> u32 {
    10
}
fn default_object_size() -> String {
    "10K".into()
}
fn default_shop_path() -> String {
    "/shop".into()
}

impl Default for OriginConfig {
    fn default() -> Self {
        // The same defaults as an empty file.
        toml::from_str("").expect("empty origin config parses")
    }
}

/// Largest generated object: the page is a teaching aid, not a disk filler.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

impl OriginConfig {
    /// Read and check a config file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<OriginConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: OriginConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// From a lab file's `[nodes.config]` table.
    pub fn from_table(table: &BTreeMap<String, serde_json::Value>) -> Result<OriginConfig, String> {
        let v = serde_json::to_value(table).map_err(|e| e.to_string())?;
        let cfg: OriginConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The values serde cannot judge: sizes, durations, paths.
    pub fn check(&self) -> Result<(), String> {
        self.max_body_bytes()?;
        let abs = |field: &str, p: &str| {
            if p.starts_with('/') {
                Ok(())
            } else {
                Err(format!("{field}: {p:?} must start with /"))
            }
        };
        abs("search", &self.search)?;
        for (from, to) in &self.moved {
            abs("moved", from)?;
            if !to.starts_with('/') && !to.starts_with("http://") && !to.starts_with("https://") {
                return Err(format!(
                    "moved.{from:?}: {to:?} must be a path or an http URL"
                ));
            }
        }
        for (i, h) in self.headers.iter().enumerate() {
            abs(&format!("headers[{i}].prefix"), &h.prefix)?;
            if let Some(e) = &h.expires {
                parse_duration_us(e)
                    .ok_or_else(|| format!("headers[{i}].expires: {e:?} is not a duration"))?;
            }
        }
        if let Some(p) = &self.page {
            abs("page.path", &p.path)?;
            p.object_sizes()?;
        }
        if let Some(s) = &self.shop {
            abs("shop.path", &s.path)?;
            if s.items.is_empty() {
                return Err("shop.items: list at least one item".into());
            }
        }
        if self.uploads.contains("..") || self.uploads.starts_with('/') {
            return Err(format!(
                "uploads: {:?} must be a folder under the root",
                self.uploads
            ));
        }
        Ok(())
    }

    pub fn max_body_bytes(&self) -> Result<u64, String> {
        parse_size(&self.max_body)
            .ok_or_else(|| format!("max_body: {:?} is not a size", self.max_body))
    }
}

impl PageConfig {
    /// The size of each object, in order.
    pub fn object_sizes(&self) -> Result<Vec<u64>, String> {
        let parse = |s: &String| {
            parse_size(s)
                .filter(|&n| n <= MAX_OBJECT_BYTES)
                .ok_or_else(|| format!("page: {s:?} is not a size up to 64M"))
        };
        if self.objects > 1000 {
            return Err("page.objects: at most 1000".into());
        }
        let listed: Vec<u64> = self.sizes.iter().map(parse).collect::<Result<_, _>>()?;
        let default = parse(&self.size)?;
        Ok((0..self.objects as usize)
            .map(|i| listed.get(i).or(listed.last()).copied().unwrap_or(default))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let d = OriginConfig::default();
        assert_eq!(
            (d.uploads.as_str(), d.search.as_str()),
            ("uploads", "/search")
        );
        assert_eq!(d.max_body_bytes(), Ok(1 << 20));
        let e = toml::from_str::<OriginConfig>("uplods = \"x\"").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let bad: OriginConfig = toml::from_str("[page]\nsizes = [\"1K\", \"lots\"]").unwrap();
        assert!(bad.check().unwrap_err().contains("lots"));
        let p: OriginConfig =
            toml::from_str("[page]\nobjects = 4\nsizes = [\"1K\", \"2K\"]").unwrap();
        assert_eq!(
            p.page.unwrap().object_sizes().unwrap(),
            vec![1024, 2048, 2048, 2048]
        );
    }
}
