//! The `[nodes.config]` tables of the roles that read one.
//!
//! A lab file gives a node's configuration inline; the controller renders it
//! (parameters filled in) to `/data/node.toml` and the role reads it with
//! `--config`. The schema lives here, once, so `applab lab validate` and the
//! node agree on it.

pub mod units;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
pub use units::{parse_duration_us, parse_rate_bps, parse_size, Size, Span};

/// A role's config from a lab file's table; an error names the field
/// (`retry[1]: "soon" is not a duration`), as the TOML reader does.
fn from_table<T: serde::de::DeserializeOwned>(
    table: &BTreeMap<String, serde_json::Value>,
) -> Result<T, String> {
    let v = serde_json::to_value(table).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

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
    pub max_body: Size,
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
    /// Generated objects for load tests under this prefix ("/load/"):
    /// `/load/ID-SIZE.jpg` is a JPEG of SIZE bytes, the same for one ID,
    /// so a load tool controls both object size and repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<String>,
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
    pub expires: Option<Span>,
    /// Sent as `Vary` verbatim ("Accept-Language"): caches keep one copy
    /// per value of the named request fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vary: Option<String>,
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
    pub size: Size,
    /// Sizes one by one; the last repeats if there are fewer than `objects`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<Size>,
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
fn default_max_body() -> Size {
    Size(1 << 20)
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
fn default_object_size() -> Size {
    Size(10 << 10)
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
        let cfg: OriginConfig = from_table(table)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The values serde cannot judge: sizes, durations, paths.
    pub fn check(&self) -> Result<(), String> {
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
}

impl PageConfig {
    /// The size of each object, in order.
    pub fn object_sizes(&self) -> Result<Vec<u64>, String> {
        if self.objects > 1000 {
            return Err("page.objects: at most 1000".into());
        }
        if let Some(s) = self
            .sizes
            .iter()
            .chain([&self.size])
            .find(|s| s.0 > MAX_OBJECT_BYTES)
        {
            return Err(format!("page: {s} is more than 64M"));
        }
        let listed: Vec<u64> = self.sizes.iter().map(|s| s.0).collect();
        Ok((0..self.objects as usize)
            .map(|i| {
                listed
                    .get(i)
                    .or(listed.last())
                    .copied()
                    .unwrap_or(self.size.0)
            })
            .collect())
    }
}

/// The mail role's configuration (`applab-node mail --config FILE`); the
/// command-line flags of the same names override it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The mail domain this server receives for (`crepes.lab`).
    #[serde(default)]
    pub domain: String,
    /// The name it greets with and puts in Received lines (default `mail.DOMAIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The domain's users (mailboxes), with their passwords for SMTP AUTH.
    #[serde(default)]
    pub users: Vec<MailUser>,
    /// Networks trusted to relay without AUTH (CIDR, `10.0.0.0/24`).
    #[serde(default)]
    pub relay_from: Vec<String>,
    /// DNS server for MX lookups (`HOST:PORT`; default the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Largest message accepted ("10M").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<Size>,
    /// Waits between delivery attempts, the last one repeating (the
    /// lecture's "after a while, e.g. 30 minutes", scaled down).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<Span>,
    /// Give up and bounce a message still undelivered after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire: Option<Span>,
    /// Messages put in the users' mailboxes when the node first starts
    /// (the mail-access lab's mailboxes "already holding" mail).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed: Vec<SeedMessage>,
}

/// A message a mailbox holds from the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedMessage {
    /// The local user whose mailbox gets it.
    pub to: String,
    /// The From: line.
    pub from: String,
    pub subject: String,
    #[serde(default)]
    pub body: String,
}

/// One mailbox of a mail domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailUser {
    pub name: String,
    /// The password in clear (a lab's per-student parameter)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// ...or an argon2 PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// A `--users` file: `[[users]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: Vec<MailUser>,
}

impl MailConfig {
    pub fn load(path: &Path) -> Result<MailConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: MailConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn from_table(table: &BTreeMap<String, serde_json::Value>) -> Result<MailConfig, String> {
        let cfg: MailConfig = from_table(table)?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<(), String> {
        for (i, u) in self.users.iter().enumerate() {
            check_user(u).map_err(|e| format!("users[{i}]: {e}"))?;
        }
        for (i, m) in self.seed.iter().enumerate() {
            if !self
                .users
                .iter()
                .any(|u| u.name.eq_ignore_ascii_case(&m.to))
            {
                return Err(format!("seed[{i}].to: {:?} is not one of the users", m.to));
            }
        }
        Ok(())
    }
}

pub fn check_user(u: &MailUser) -> Result<(), String> {
    let ok = !u.name.is_empty()
        && u.name.len() <= 64
        && u.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        && !u.name.starts_with('.');
    if !ok {
        return Err(format!(
            "name {:?}: letters, digits and . _ - + only (it names a mailbox folder)",
            u.name
        ));
    }
    if u.password.is_some() == u.password_hash.is_some() {
        return Err(format!(
            "user {:?}: give exactly one of password and password_hash",
            u.name
        ));
    }
    Ok(())
}

/// The dns role's zones as a lab file declares them; the controller renders
/// each into an RFC 1035 master file the role reads with `--zones`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone's origin (`crepes.lab`).
    pub origin: String,
    /// Default TTL in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Master-file lines relative to the origin (`"@ MX 10 mail"`,
    /// `"mail A 10.0.0.3"`). A SOA is added when none is given.
    #[serde(default)]
    pub records: Vec<String>,
}

fn default_ttl() -> u32 {
    60
}

impl DnsConfig {
    pub fn from_table(table: &BTreeMap<String, serde_json::Value>) -> Result<DnsConfig, String> {
        let cfg: DnsConfig = from_table(table)?;
        for (i, z) in cfg.zones.iter().enumerate() {
            if z.origin.is_empty() || z.origin.contains(char::is_whitespace) {
                return Err(format!(
                    "zones[{i}].origin: {:?} is not a domain name",
                    z.origin
                ));
            }
            for (j, r) in z.records.iter().enumerate() {
                if r.contains('\n') || r.trim().is_empty() {
                    return Err(format!("zones[{i}].records[{j}]: one record per line"));
                }
            }
        }
        Ok(cfg)
    }
}

impl ZoneConfig {
    /// The zone as an RFC 1035 master file.
    pub fn master_file(&self) -> String {
        let origin = format!("{}.", self.origin.trim_end_matches('.'));
        let mut out = format!(
            "; zone {origin}, rendered by applab from the lab file\n$ORIGIN {origin}\n$TTL {}\n",
            self.ttl
        );
        let has_soa = self
            .records
            .iter()
            .any(|r| r.split_whitespace().any(|w| w.eq_ignore_ascii_case("SOA")));
        if !has_soa {
            // serial refresh retry expire minimum; short negative TTL for labs.
            out.push_str("@ IN SOA dns hostmaster 1 3600 600 86400 30\n");
        }
        for r in &self.records {
            out.push_str(r.trim());
            out.push('\n');
        }
        out
    }

    /// File name for the rendered zone.
    pub fn file_name(&self) -> String {
        format!("{}.zone", self.origin.trim_end_matches('.'))
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
        assert_eq!(d.max_body, Size(1 << 20));
        let e = toml::from_str::<OriginConfig>("uplods = \"x\"").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = toml::from_str::<OriginConfig>("[page]\nsizes = [\"1K\", \"lots\"]").unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("lots"),
            "{e}"
        );
        let table = |k: &str, v: serde_json::Value| BTreeMap::from([(k.to_string(), v)]);
        let e =
            MailConfig::from_table(&table("retry", serde_json::json!(["1s", "soon"]))).unwrap_err();
        assert_eq!(
            e,
            "retry[1]: \"soon\" is not a duration (\"50ms\", \"30s\", \"5m\")"
        );
        let e = ProxyConfig::from_table(&table("cache_size", "64Q".into())).unwrap_err();
        assert!(e.starts_with("cache_size: \"64Q\" is not a size"), "{e}");
        let big: OriginConfig = toml::from_str("[page]\nsize = \"1G\"").unwrap();
        assert!(big.check().unwrap_err().contains("more than 64M"));
        let p: OriginConfig =
            toml::from_str("[page]\nobjects = 4\nsizes = [\"1K\", \"2K\"]").unwrap();
        assert_eq!(
            p.page.unwrap().object_sizes().unwrap(),
            vec![1024, 2048, 2048, 2048]
        );
    }
}

/// The proxy role's `[nodes.config]`: every key optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Reverse (accelerator) mode in front of this origin ("http://origin").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<String>,
    /// Memory for cached responses ("64M").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<Size>,
    /// Largest response kept ("8M"); bigger ones are streamed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object: Option<Size>,
    /// The proxy's name in `Via`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ProxyConfig {
    pub fn load(path: &Path) -> Result<ProxyConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: ProxyConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn from_table(table: &BTreeMap<String, serde_json::Value>) -> Result<ProxyConfig, String> {
        let cfg: ProxyConfig = from_table(table)?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = &self.reverse {
            if !r.starts_with("http://") {
                return Err(format!("reverse: {r:?} must be an http:// origin"));
            }
        }
        Ok(())
    }
}
