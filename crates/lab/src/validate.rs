//! Loading and validating a lab folder, with every error located.

use crate::raw::{RawAttach, RawLab, RawLimits, RawNode, RawParam};
use crate::template::placeholders;
use crate::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// All problems found in a lab; the error of [`Lab::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Source text of one file, for turning byte offsets into line:col.
pub(crate) struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    pub(crate) fn at(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        Diagnostic {
            file: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Text files in served content get placeholders filled in; others are copied.
pub fn is_template_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("html" | "htm" | "txt" | "md" | "css" | "js" | "json" | "xml")
    )
}

impl Lab {
    /// Read and validate a lab from its folder (or its `lab.toml`).
    pub fn load(path: &Path) -> Result<Lab, Diagnostics> {
        let (dir, file) = if path.is_dir() {
            (path.to_path_buf(), path.join("lab.toml"))
        } else {
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                path.to_path_buf(),
            )
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: file.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read lab file: {e}"),
            }])
        })?;
        let src = Source {
            path: &file,
            text: &text,
        };
        let raw: RawLab = toml::from_str(&text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            Diagnostics(vec![src.at(off, e.message().trim().to_string())])
        })?;
        let mut v = Validator {
            src,
            dir: &dir,
            errors: Vec::new(),
        };
        let lab = v.lab(raw);
        if v.errors.is_empty() {
            Ok(lab)
        } else {
            Err(Diagnostics(v.errors))
        }
    }
}

pub(crate) struct Validator<'a> {
    pub(crate) src: Source<'a>,
    dir: &'a Path,
    pub(crate) errors: Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(crate) fn err<T>(&mut self, at: &Spanned<T>, msg: impl Into<String>) {
        let d = self.src.at(at.span().start, msg);
        self.errors.push(d);
    }

    fn lab(&mut self, raw: RawLab) -> Lab {
        if !is_label(raw.lab.name.get_ref()) {
            self.err(
                &raw.lab.name,
                "lab name must be 1-32 of a-z, 0-9 and '-' (it is used in container names)",
            );
        }
        let mut parameters = BTreeMap::new();
        for (name, p) in &raw.parameters {
            if let Some(kind) = self.param(name, p) {
                parameters.insert(
                    name.get_ref().clone(),
                    Param {
                        kind,
                        description: p.description.clone(),
                    },
                );
            }
        }
        let mut vars: BTreeSet<String> =
            raw.parameters.keys().map(|k| k.get_ref().clone()).collect();
        vars.insert(params::STUDENT_ID.to_string());

        let mut networks = Vec::new();
        let mut seen = BTreeSet::new();
        for n in &raw.networks {
            let name = n.name.get_ref();
            if !is_label(name) {
                self.err(
                    &n.name,
                    format!("bad network name {name:?}: use 1-32 of a-z, 0-9 and '-'"),
                );
            } else if !seen.insert(name.clone()) {
                self.err(&n.name, format!("duplicate network name {name:?}"));
            }
            networks.push(Network {
                name: name.clone(),
                description: n.description.clone(),
            });
        }

        // Node configs may also name the planned address of any node
        // (`{{addr.mail-b}}`: a zone's A record, a resolver).
        let mut config_vars = vars.clone();
        for n in &raw.nodes {
            config_vars.insert(format!("{}{}", params::ADDR_PREFIX, n.name.get_ref()));
        }
        let mut nodes = Vec::new();
        let mut seen_nodes = BTreeSet::new();
        for n in &raw.nodes {
            let name = n.name.get_ref();
            if !is_label(name) {
                self.err(
                    &n.name,
                    format!("bad node name {name:?}: use 1-32 of a-z, 0-9 and '-'"),
                );
            } else if !seen_nodes.insert(name.clone()) {
                self.err(&n.name, format!("duplicate node name {name:?}"));
            }
            if let Some(node) = self.node(n, &seen, &vars, &config_vars) {
                nodes.push(node);
            }
        }
        if raw.nodes.is_empty() {
            self.errors
                .push(self.src.at(0, "a lab needs at least one [[nodes]] entry"));
        }

        let mut constants = BTreeMap::new();
        for (name, v) in &raw.constants {
            if !is_ident(name.get_ref()) || vars.contains(name.get_ref()) {
                self.err(
                    name,
                    format!(
                        "bad constant name {:?}: use a-z, 0-9 and '_', and not a parameter's name",
                        name.get_ref()
                    ),
                );
            } else if !v.get_ref().is_finite() {
                self.err(v, "a constant is a finite number");
            } else {
                constants.insert(name.get_ref().clone(), *v.get_ref());
            }
        }

        let mut tasks = Vec::new();
        let mut task_ids = BTreeSet::new();
        for t in &raw.tasks {
            let id = t.id.get_ref();
            if !is_label(id) {
                self.err(
                    &t.id,
                    format!("bad task id {id:?}: use 1-32 of a-z, 0-9 and '-'"),
                );
            } else if !task_ids.insert(id.clone()) {
                self.err(&t.id, format!("duplicate task id {id:?}"));
            }
            let rel = PathBuf::from(t.file.get_ref());
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                self.err(&t.file, "task file must be a path inside the lab folder");
                continue;
            }
            let path = self.dir.join(&rel);
            // Checks are validated whether or not the task's file is there.
            let questions = self.questions(&t.questions, &parameters, &constants, &vars);
            let qids: BTreeSet<String> = questions.iter().map(|q| q.id.clone()).collect();
            let scope = crate::check_validate::Scope {
                vars: &vars,
                nodes: &nodes,
                networks: &seen,
                questions: &qids,
            };
            let checks = self.checks(&t.checks, &scope);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    self.check_placeholders(&path, &text, &vars);
                    let points = match &t.points {
                        Some(p) if !(p.get_ref().is_finite() && *p.get_ref() >= 0.0) => {
                            self.err(p, "points are 0 or more");
                            1.0
                        }
                        Some(p) => *p.get_ref(),
                        None => 1.0,
                    };
                    tasks.push(Task {
                        id: id.clone(),
                        title: t.title.clone(),
                        file: rel,
                        text,
                        points,
                        checks,
                        questions,
                    });
                }
                Err(e) => self.err(
                    &t.file,
                    format!("missing task file {}: {e}", path.display()),
                ),
            }
        }
        for node in &nodes {
            let lab_stub = Lab {
                dir: self.dir.to_path_buf(),
                name: String::new(),
                title: String::new(),
                description: String::new(),
                parameters: BTreeMap::new(),
                networks: Vec::new(),
                nodes: Vec::new(),
                tasks: Vec::new(),
                constants: BTreeMap::new(),
            };
            if let Some(content) = lab_stub.content_dir(node) {
                self.check_content(&content, &vars);
            }
        }
        Lab {
            dir: self.dir.to_path_buf(),
            name: raw.lab.name.into_inner(),
            title: raw.lab.title,
            description: raw.lab.description,
            parameters,
            networks,
            nodes,
            tasks,
            constants,
        }
    }

    fn param(&mut self, name: &Spanned<String>, p: &RawParam) -> Option<ParamKind> {
        if !is_ident(name.get_ref()) || name.get_ref() == params::STUDENT_ID {
            self.err(name, format!("bad parameter name {:?}: use a-z, 0-9 and '_', not starting with a digit, and not student_id", name.get_ref()));
        }
        let len = |v: &mut Self, default: i64| -> Option<usize> {
            let l = p.len.as_ref().map(|l| *l.get_ref()).unwrap_or(default);
            if !(1..=64).contains(&l) {
                let msg = format!("bad parameter: len must be 1..=64, not {l}");
                match &p.len {
                    Some(at) => v.err(at, msg),
                    None => v.err(&p.kind, msg),
                }
                return None;
            }
            Some(l as usize)
        };
        match p.kind.get_ref().as_str() {
            "word" => Some(ParamKind::Word {
                len: len(self, 8)?,
                prefix: p.prefix.clone().unwrap_or_default(),
            }),
            "hex" => Some(ParamKind::Hex { len: len(self, 8)? }),
            "password" => Some(ParamKind::Password {
                len: len(self, 10)?,
            }),
            "int" => {
                let (Some(min), Some(max)) = (&p.min, &p.max) else {
                    self.err(&p.kind, "bad parameter: kind \"int\" needs min and max");
                    return None;
                };
                if min.get_ref() > max.get_ref() {
                    self.err(
                        min,
                        format!(
                            "bad parameter: min {} is above max {}",
                            min.get_ref(),
                            max.get_ref()
                        ),
                    );
                    return None;
                }
                Some(ParamKind::Int {
                    min: *min.get_ref(),
                    max: *max.get_ref(),
                })
            }
            "choice" => match &p.choices {
                Some(c) if !c.get_ref().is_empty() => Some(ParamKind::Choice {
                    choices: c.get_ref().clone(),
                }),
                Some(c) => {
                    self.err(c, "bad parameter: choices must not be empty");
                    None
                }
                None => {
                    self.err(
                        &p.kind,
                        "bad parameter: kind \"choice\" needs choices = [...]",
                    );
                    None
                }
            },
            other => {
                self.err(&p.kind, format!("bad parameter: unknown kind {other:?} (known: word, hex, int, choice, password)"));
                None
            }
        }
    }

    fn node(
        &mut self,
        n: &RawNode,
        networks: &BTreeSet<String>,
        vars: &BTreeSet<String>,
        config_vars: &BTreeSet<String>,
    ) -> Option<Node> {
        let role = Role::parse(n.role.get_ref());
        if role.is_none() {
            let known: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
            self.err(
                &n.role,
                format!(
                    "unknown role {:?} (known: {})",
                    n.role.get_ref(),
                    known.join(", ")
                ),
            );
        }
        let limits = self.limits(&n.limits);
        let mut attach = Vec::new();
        let mut seen = BTreeSet::new();
        for a in &n.attach {
            let net = a.network.get_ref();
            if !networks.contains(net) {
                self.err(
                    &a.network,
                    format!(
                        "node {:?} attaches to undefined network {net:?}",
                        n.name.get_ref()
                    ),
                );
            } else if !seen.insert(net.clone()) {
                self.err(
                    &a.network,
                    format!(
                        "node {:?} attaches to network {net:?} twice",
                        n.name.get_ref()
                    ),
                );
            }
            if let Some(at) = self.attachment(a, vars) {
                attach.push(at);
            }
        }
        if n.attach.is_empty() {
            self.err(
                &n.name,
                format!("node {:?} is attached to no network", n.name.get_ref()),
            );
        }
        let config: BTreeMap<String, serde_json::Value> = n
            .config
            .iter()
            .filter_map(|(k, v)| serde_json::to_value(v).ok().map(|v| (k.clone(), v)))
            .collect();
        // Parameters may fill the config's strings; the role's schema is
        // checked on the unrendered text, which placeholders keep valid.
        let text = toml::to_string(&n.config).unwrap_or_default();
        for p in placeholders(&text) {
            if !config_vars.contains(&p.name) {
                self.err(
                    &n.name,
                    format!(
                        "node {:?}: config uses unknown parameter {:?}",
                        n.name.get_ref(),
                        p.name
                    ),
                );
            }
        }
        let checked = match role {
            Some(Role::Origin) => applab_roles::OriginConfig::from_table(&config).map(|_| ()),
            Some(Role::Mail) => applab_roles::MailConfig::from_table(&config).map(|_| ()),
            Some(Role::Dns) => applab_roles::DnsConfig::from_table(&config).map(|_| ()),
            Some(Role::Proxy) => applab_roles::ProxyConfig::from_table(&config).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = checked {
            self.err(&n.name, format!("node {:?}: config: {e}", n.name.get_ref()));
        }
        Some(Node {
            name: n.name.get_ref().clone(),
            role: role?,
            config,
            limits: limits?,
            attach,
            student_controls: n.student_controls,
        })
    }

    fn limits(&mut self, l: &RawLimits) -> Option<Limits> {
        let mut out = Limits::default();
        let mut ok = true;
        if let Some(m) = &l.memory {
            match parse_size(m.get_ref()) {
                Some(b) if b >= 4 << 20 => out.memory_bytes = b,
                Some(_) => {
                    self.err(m, "bad limit: memory must be at least 4M");
                    ok = false;
                }
                None => {
                    self.err(
                        m,
                        format!(
                            "bad limit: memory {:?} is not a size like \"64M\" or \"1G\"",
                            m.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(c) = &l.cpus {
            let v = *c.get_ref();
            if !(v > 0.0 && v <= 64.0) {
                self.err(
                    c,
                    format!("bad limit: cpus must be above 0 and at most 64, not {v}"),
                );
                ok = false;
            }
            out.cpus = v;
        }
        if let Some(p) = &l.pids {
            let v = *p.get_ref();
            if !(8..=65536).contains(&v) {
                self.err(p, format!("bad limit: pids must be 8..=65536, not {v}"));
                ok = false;
            }
            out.pids = v;
        }
        ok.then_some(out)
    }

    fn attachment(&mut self, a: &RawAttach, vars: &BTreeSet<String>) -> Option<Attachment> {
        let mut shaping = Shaping::default();
        let mut ok = true;
        for alias in &a.aliases {
            let s = alias.get_ref();
            for p in placeholders(s) {
                if !vars.contains(&p.name) {
                    self.err(alias, format!("alias uses unknown parameter {:?}", p.name));
                    ok = false;
                }
            }
            let plain = s.replace("{{", "").replace("}}", "");
            if plain.is_empty() || plain.split('.').any(|l| l.trim().is_empty()) {
                self.err(
                    alias,
                    format!("bad alias {s:?}: use a host name such as www.example.lab"),
                );
                ok = false;
            }
        }
        if let Some(d) = &a.delay {
            match parse_duration_us(d.get_ref()) {
                Some(us) if us <= 10_000_000 => shaping.delay_us = Some(us),
                _ => {
                    self.err(
                        d,
                        format!(
                            "bad delay {:?}: use e.g. \"50ms\" (at most 10s)",
                            d.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(r) = &a.rate {
            match parse_rate_bps(r.get_ref()) {
                Some(bps) if bps >= 8_000 => shaping.rate_bps = Some(bps),
                _ => {
                    self.err(
                        r,
                        format!(
                            "bad rate {:?}: use e.g. \"15.4mbit\" (at least 8kbit)",
                            r.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(l) = &a.loss {
            let v = *l.get_ref();
            if !(0.0..=1.0).contains(&v) {
                self.err(l, format!("bad loss {v}: a probability from 0 to 1"));
                ok = false;
            }
            shaping.loss = Some(v);
        }
        ok.then(|| Attachment {
            network: a.network.get_ref().clone(),
            aliases: a.aliases.iter().map(|s| s.get_ref().clone()).collect(),
            shaping,
        })
    }

    fn check_placeholders(&mut self, path: &Path, text: &str, vars: &BTreeSet<String>) {
        let src = Source { path, text };
        for p in placeholders(text) {
            if p.name.is_empty() && !text[p.offset..].contains("}}") {
                self.errors
                    .push(src.at(p.offset, "unclosed {{ placeholder"));
            } else if !vars.contains(&p.name) {
                self.errors.push(src.at(
                    p.offset,
                    format!("unknown parameter {:?} in placeholder", p.name),
                ));
            }
        }
    }

    fn check_content(&mut self, dir: &Path, vars: &BTreeSet<String>) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_template_file(&p) {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        self.check_placeholders(&p, &text, vars);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_lab(toml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.toml"), toml).unwrap();
        for (p, c) in files {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        dir
    }

    const GOOD: &str = r#"
[lab]
name = "demo"
title = "Demo"

[parameters.site]
kind = "word"
len = 6

[[networks]]
name = "lan"

[[nodes]]
name = "origin"
role = "origin"
limits = { memory = "32M", cpus = 0.25, pids = 64 }
[[nodes.attach]]
network = "lan"
aliases = ["www.{{site}}.lab"]
delay = "50ms"
rate = "10mbit"

[[nodes]]
name = "ws"
role = "workstation"
[[nodes.attach]]
network = "lan"

[[tasks]]
id = "fetch"
title = "Fetch"
file = "tasks/fetch.md"
"#;

    #[test]
    fn a_good_lab_loads() {
        let d = write_lab(
            GOOD,
            &[(
                "tasks/fetch.md",
                "Fetch http://www.{{site}}.lab/ as {{ student_id }}",
            )],
        );
        let lab = Lab::load(d.path()).unwrap();
        assert_eq!(lab.nodes.len(), 2);
        assert_eq!(lab.nodes[0].limits.memory_bytes, 32 << 20);
        assert_eq!(lab.nodes[0].attach[0].shaping.delay_us, Some(50_000));
        assert_eq!(lab.nodes[0].attach[0].shaping.rate_bps, Some(10_000_000));
        assert_eq!(lab.nodes[1].limits, Limits::default());
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let bad = GOOD
            .replace("role = \"workstation\"", "role = \"router\"")
            .replace("network = \"lan\"\naliases", "network = \"wan\"\naliases")
            .replace("name = \"ws\"", "name = \"origin\"")
            .replace("memory = \"32M\"", "memory = \"lots\"")
            .replace("len = 6", "len = 0");
        let d = write_lab(&bad, &[("tasks/other.md", "")]);
        let errs = Lab::load(d.path()).unwrap_err();
        let text = errs.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let has = |line: usize, col: usize, needle: &str| {
            let want = format!("lab.toml:{line}:{col}: ");
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&want) && l.contains(needle)),
                "expected {want}…{needle} in:\n{text}"
            );
        };
        has(8, 7, "len must be 1..=64");
        has(16, 21, "bad limit: memory");
        has(18, 11, "undefined network \"wan\"");
        has(24, 8, "duplicate node name \"origin\"");
        has(25, 8, "unknown role \"router\"");
        has(32, 8, "missing task file");
        assert_eq!(lines.len(), 6, "{text}");
    }

    #[test]
    fn unknown_placeholder_in_a_task_names_its_file_line_and_column() {
        let d = write_lab(GOOD, &[("tasks/fetch.md", "line one\nsee {{ nope }}\n")]);
        let errs = Lab::load(d.path()).unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert!(errs.0[0].file.ends_with("tasks/fetch.md"));
        assert_eq!((errs.0[0].line, errs.0[0].col), (2, 5));
    }

    #[test]
    fn syntax_errors_are_located() {
        let d = write_lab("[lab]\nname = \"x\"\ntitle = \n", &[]);
        let errs = Lab::load(d.path()).unwrap_err();
        assert_eq!(errs.0[0].line, 3, "{errs}");
        let d = write_lab("[lab]\nname = \"x\"\ntitle = \"t\"\ncolour = 1\n", &[]);
        let errs = Lab::load(d.path()).unwrap_err();
        assert_eq!(errs.0[0].line, 4, "{errs}");
        assert!(errs.0[0].message.contains("colour"), "{errs}");
    }

    #[test]
    fn a_malformed_check_names_its_field_line_and_column() {
        let checks = r#"
[[tasks.checks]]
id = "a"
expect = "x"
events = { match = { type = "http_request", colour = "red" } }

[[tasks.checks]]
id = "b"
expect = "x"
events = { match = { type = "http_reqest" } }

[[tasks.checks]]
id = "c"
expect = "x"
events = { match = { type = "http_request", target = { regex = "([" } } }

[[tasks.checks]]
id = "d"
expect = "x"
probe = { node = "nowhere", probe = "mail", find = "mailboxes.bob", count = 1 }

[[tasks.checks]]
id = "e"
expect = "x"
answer = "nothing"

[[tasks.checks]]
id = "f"
expect = "for {{nobody}}"
events = { match = { type = "tcp_open", server = { sounds = "like" } } }

[[tasks.checks]]
id = "g"
expect = "x"
answer = "q"
events = { match = { type = "tcp_open" } }

[[tasks.questions]]
id = "q"
text = "?"
expected = "site_count * 2"

[[tasks.checks]]
id = "h"
expect = "x"
probe = { node = "origin", probe = "mail", find = "mailboxes.bob", count = 1 }
"#;
        let d = write_lab(&format!("{GOOD}{checks}"), &[("tasks/fetch.md", "x")]);
        let errs = Lab::load(d.path()).unwrap_err();
        let text = errs.to_string();
        let has = |line: usize, needle: &str| {
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("lab.toml:{line}:")) && l.contains(needle)),
                "expected lab.toml:{line}:…{needle} in:\n{text}"
            );
        };
        has(
            37,
            "events of type \"http_request\" have no field \"colour\"",
        );
        has(42, "unknown event type \"http_reqest\"");
        has(47, "bad regex");
        has(52, "probe of undefined node \"nowhere\"");
        has(57, "answer names no question of this task: \"nothing\"");
        has(61, "unknown parameter \"nobody\"");
        has(62, "matcher: unknown key \"sounds\"");
        has(
            66,
            "exactly one of events, sequence, probe, answer, all, any (found 2)",
        );
        has(73, "expected: unknown name \"site_count\"");
        has(
            78,
            "probe \"mail\" runs on a mail node; the role of \"origin\" is origin",
        );
        assert_eq!(text.lines().count(), 10, "{text}");
    }

    #[test]
    fn units_parse() {}
}
