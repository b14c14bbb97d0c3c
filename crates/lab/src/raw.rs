//! The lab file as written, with source spans, before validation.
//!
//! Values that can be wrong in ways serde cannot express (a role name, a
//! limit such as "64M") are kept as spanned strings so validation can point
//! at them and report them all at once, not just the first.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    pub lab: RawMeta,
    #[serde(default)]
    pub parameters: BTreeMap<Spanned<String>, RawParam>,
    #[serde(default)]
    pub networks: Vec<RawNetwork>,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    #[serde(default)]
    pub tasks: Vec<RawTask>,
    /// Numbers the questions' expressions may use (`rtt_ms = 100`).
    #[serde(default)]
    pub constants: BTreeMap<Spanned<String>, Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: Spanned<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub kind: Spanned<String>,
    pub len: Option<Spanned<i64>>,
    pub min: Option<Spanned<i64>>,
    pub max: Option<Spanned<i64>>,
    pub choices: Option<Spanned<Vec<String>>>,
    pub prefix: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Spanned<String>,
    pub role: Spanned<String>,
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub attach: Vec<RawAttach>,
    /// Students may stop and start this node from their panel.
    #[serde(default)]
    pub student_controls: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory: Option<Spanned<String>>,
    pub cpus: Option<Spanned<f64>>,
    pub pids: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttach {
    pub network: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
    pub delay: Option<Spanned<String>>,
    pub rate: Option<Spanned<String>>,
    pub loss: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub id: Spanned<String>,
    pub title: String,
    pub file: Spanned<String>,
    /// Points for the task when every check passes (default 1).
    pub points: Option<Spanned<f64>>,
    #[serde(default)]
    pub checks: Vec<RawCheck>,
    #[serde(default)]
    pub questions: Vec<RawQuestion>,
}

/// Field → matcher, as written (matchers are checked by hand, so each
/// error points at its own value).
pub type RawPattern = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub id: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub events: Option<Spanned<RawEvents>>,
    pub sequence: Option<Spanned<RawSequence>>,
    pub probe: Option<Spanned<RawProbe>>,
    pub answer: Option<Spanned<String>>,
    pub all: Option<Spanned<Vec<RawCheck>>>,
    pub any: Option<Spanned<Vec<RawCheck>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    #[serde(rename = "match")]
    pub pattern: RawPattern,
    pub count: Option<Spanned<toml::Value>>,
    pub connections: Option<Spanned<toml::Value>>,
    pub per_connection: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSequence {
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    pub same_connection: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub say: Option<String>,
    #[serde(rename = "match")]
    pub pattern: Option<RawPattern>,
    pub absent: Option<RawPattern>,
    #[serde(default)]
    pub bind: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub node: Spanned<String>,
    pub probe: Spanned<String>,
    pub find: Spanned<String>,
    #[serde(rename = "where")]
    pub where_: Option<RawPattern>,
    pub count: Option<Spanned<toml::Value>>,
    pub value: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub bind: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuestion {
    pub id: Spanned<String>,
    pub text: String,
    pub expected: Spanned<String>,
    pub unit: Option<String>,
    pub abs: Option<Spanned<f64>>,
    pub rel: Option<Spanned<f64>>,
}
