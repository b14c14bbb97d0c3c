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
    /// Check definitions; their schema arrives with the check engine.
    #[serde(default)]
    pub checks: Vec<toml::Value>,
}
