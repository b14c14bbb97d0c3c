//! The validated lab model the controller plans topologies from.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Roles of `applab-node` a lab may use, with what each needs from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Origin,
    Workstation,
    Mail,
    Dns,
    Proxy,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Origin,
        Role::Workstation,
        Role::Mail,
        Role::Dns,
        Role::Proxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Workstation => "workstation",
            Role::Mail => "mail",
            Role::Dns => "dns",
            Role::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.name() == s)
    }

    /// The TCP port the role's service answers on; "healthy" means it accepts.
    pub fn service_port(self) -> u16 {
        match self {
            Role::Origin => 80,
            Role::Workstation => 7,
            Role::Mail => 25,
            Role::Dns => 53,
            Role::Proxy => 3128,
        }
    }

    /// Linux capabilities added back after dropping all.
    pub fn capabilities(self) -> &'static [&'static str] {
        match self {
            // All bind a port below 1024.
            Role::Origin | Role::Workstation | Role::Mail | Role::Dns => &["NET_BIND_SERVICE"],
            Role::Proxy => &[],
        }
    }

    /// Whether the role takes `--config /data/node.toml` (always written).
    pub fn reads_config(self) -> bool {
        matches!(self, Role::Origin | Role::Mail | Role::Proxy)
    }

    /// The command line the container runs (after the binary).
    pub fn command(self) -> Vec<String> {
        let v: &[&str] = match self {
            Role::Origin => &[
                "origin",
                "--listen",
                "0.0.0.0:80",
                "--root",
                "/data/content",
                "--config",
                "/data/node.toml",
                "--state",
                "/data/state",
            ],
            Role::Workstation => &["workstation", "--echo", "0.0.0.0:7"],
            Role::Mail => &[
                "mail",
                "--config",
                "/data/node.toml",
                "--data",
                "/data/mail",
                "--smtp",
                "0.0.0.0:25",
                "--pop3",
                "0.0.0.0:110",
                "--imap",
                "0.0.0.0:143",
            ],
            // The controller renders the lab's zones into /data/zones.
            Role::Dns => &["dns", "--listen", "0.0.0.0:53", "--zones", "/data/zones"],
            Role::Proxy => &[
                "proxy",
                "--listen",
                "0.0.0.0:3128",
                "--config",
                "/data/node.toml",
            ],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

/// A validated lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    /// The folder the lab was loaded from.
    pub dir: PathBuf,
    pub name: String,
    pub title: String,
    pub description: String,
    pub parameters: BTreeMap<String, Param>,
    pub networks: Vec<Network>,
    pub nodes: Vec<Node>,
    pub tasks: Vec<Task>,
    /// Numbers for the questions' expressions (`[constants]`).
    pub constants: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Param {
    pub kind: ParamKind,
    pub description: String,
}

/// How a parameter's value is derived from its HMAC bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ParamKind {
    /// A pronounceable lowercase word of `len` letters (domain labels, secrets).
    Word { len: usize, prefix: String },
    /// `len` hex digits.
    Hex { len: usize },
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// One of the given strings.
    Choice { choices: Vec<String> },
    /// A password of `len` characters a student can type.
    Password { len: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// Role configuration, passed to the role as written (templated).
    pub config: BTreeMap<String, serde_json::Value>,
    pub limits: Limits,
    pub attach: Vec<Attachment>,
    /// Students may stop and start it from their panel (the SMTP lab's
    /// `mail-b`, for the retry task).
    #[serde(default)]
    pub student_controls: bool,
}

/// Resource limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpus: 0.5,
            pids: 128,
        }
    }
}

/// A node's attachment to a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    /// Names others use to reach the node on this network (the node's own
    /// name always works); may use parameters (`www.{{site}}.lab`).
    pub aliases: Vec<String>,
    pub shaping: Shaping,
}

/// Link shaping on an attachment (applied by the link-shaping work).
/// `delay` is one-way and applies in both directions; `rate` limits each
/// direction; `loss` is a per-frame probability each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Shaping {
    pub delay_us: Option<u64>,
    pub rate_bps: Option<u64>,
    pub loss: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    /// Path relative to the lab folder.
    pub file: PathBuf,
    /// The Markdown source, parameters not yet filled in.
    pub text: String,
    /// Points when every check passes.
    pub points: f64,
    pub checks: Vec<crate::check::Check>,
    pub questions: Vec<crate::check::Question>,
}

impl Lab {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The folder of content served by a node (`config.content`, default
    /// `content` for an origin), if it exists.
    pub fn content_dir(&self, node: &Node) -> Option<PathBuf> {
        let rel = node
            .config
            .get("content")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| (node.role == Role::Origin).then(|| "content".to_string()))?;
        let p = self.dir.join(rel);
        p.is_dir().then_some(p)
    }
}
