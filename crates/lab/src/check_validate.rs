//! Validation of checks and questions: every mistake located at the field
//! that holds it, like every other lab error.

use crate::check::*;
use crate::raw::{RawCheck, RawPattern, RawQuestion};
use crate::template::placeholders;
use crate::validate::Validator;
use crate::{Node, ParamKind};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// What a check may refer to.
pub(crate) struct Scope<'a> {
    pub vars: &'a BTreeSet<String>,
    pub nodes: &'a [Node],
    pub networks: &'a BTreeSet<String>,
    pub questions: &'a BTreeSet<String>,
}

impl Validator<'_> {
    pub(crate) fn checks(&mut self, raw: &[RawCheck], scope: &Scope) -> Vec<Check> {
        let mut out = Vec::new();
        let mut ids = BTreeSet::new();
        for c in raw {
            let Some(id) = &c.id else {
                self.errors.push(
                    self.src
                        .at(self.check_start(c), "a check needs an id (id = \"...\")"),
                );
                continue;
            };
            if !crate::validate::is_label(id.get_ref()) {
                self.err(
                    id,
                    format!(
                        "bad check id {:?}: use 1-32 of a-z, 0-9 and '-'",
                        id.get_ref()
                    ),
                );
            } else if !ids.insert(id.get_ref().clone()) {
                self.err(id, format!("duplicate check id {:?}", id.get_ref()));
            }
            let expect = match &c.expect {
                Some(e) => {
                    self.text(e, scope, &BTreeSet::new());
                    e.get_ref().clone()
                }
                None => {
                    self.err(id, "a check needs expect = \"...\": what it wants, in a sentence for the student");
                    String::new()
                }
            };
            // Names bound anywhere in the check may be used anywhere in it
            // (binding happens in order; a name used too early is unset).
            let mut binds = BTreeSet::new();
            collect_binds(c, &mut binds);
            for b in &binds {
                if scope.vars.contains(b) {
                    self.err(
                        id,
                        format!(
                            "check {:?} binds {b:?}, which is a parameter's name",
                            id.get_ref()
                        ),
                    );
                }
            }
            if let Some(rule) = self.rule(c, scope, &binds, id) {
                out.push(Check {
                    id: id.get_ref().clone(),
                    expect,
                    rule,
                });
            }
        }
        out
    }

    fn check_start(&self, c: &RawCheck) -> usize {
        [
            c.expect.as_ref().map(|s| s.span().start),
            c.events.as_ref().map(|s| s.span().start),
            c.sequence.as_ref().map(|s| s.span().start),
            c.probe.as_ref().map(|s| s.span().start),
            c.answer.as_ref().map(|s| s.span().start),
            c.all.as_ref().map(|s| s.span().start),
            c.any.as_ref().map(|s| s.span().start),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0)
    }

    /// The one rule of a check (or of an item of `all`/`any`).
    fn rule<T>(
        &mut self,
        c: &RawCheck,
        scope: &Scope,
        binds: &BTreeSet<String>,
        at: &Spanned<T>,
    ) -> Option<Rule> {
        let given = [
            c.events.is_some(),
            c.sequence.is_some(),
            c.probe.is_some(),
            c.answer.is_some(),
            c.all.is_some(),
            c.any.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            let off = if given == 0 {
                at.span().start
            } else {
                self.check_start(c)
            };
            self.errors.push(self.src.at(
                off,
                format!(
                    "a check has exactly one of events, sequence, probe, answer, all, any (found {given})"
                ),
            ));
            return None;
        }
        if let Some(e) = &c.events {
            let e = e.get_ref();
            let pattern = self.pattern(&e.pattern, scope, binds, at)?;
            let count = match &e.count {
                Some(v) => self.range(v)?,
                None => Range::AT_LEAST_ONE,
            };
            let connections = match &e.connections {
                Some(v) => Some(self.range(v)?),
                None => None,
            };
            let per_connection = match &e.per_connection {
                Some(v) => Some(self.range(v)?),
                None => None,
            };
            return Some(Rule::Events(EventsRule {
                pattern,
                count,
                connections,
                per_connection,
            }));
        }
        if let Some(s) = &c.sequence {
            let seq = s.get_ref();
            let mut steps = Vec::new();
            let mut ok = true;
            for st in seq.steps.get_ref() {
                let raw = st.get_ref();
                let (pattern, absent) = match (&raw.pattern, &raw.absent) {
                    (Some(p), None) => (p, false),
                    (None, Some(p)) => (p, true),
                    _ => {
                        self.err(st, "a step has either match = {...} or absent = {...}");
                        ok = false;
                        continue;
                    }
                };
                let Some(pattern) = self.pattern(pattern, scope, binds, st) else {
                    ok = false;
                    continue;
                };
                if absent && !raw.bind.is_empty() {
                    self.err(st, "an absent step binds nothing (nothing is matched)");
                    ok = false;
                }
                let bind = self.bindings(&raw.bind, Some(&pattern), scope);
                steps.push(Step {
                    say: raw.say.clone(),
                    pattern,
                    absent,
                    bind,
                });
            }
            if steps.first().is_some_and(|s| s.absent) || steps.last().is_some_and(|s| s.absent) {
                self.err(
                    &seq.steps,
                    "an absent step goes between two matched steps, not first or last",
                );
                ok = false;
            }
            if steps.iter().filter(|s| !s.absent).count() == 0 {
                self.err(&seq.steps, "a sequence needs at least one step");
                ok = false;
            }
            return ok.then_some(Rule::Sequence(SequenceRule {
                steps,
                same_connection: seq.same_connection,
            }));
        }
        if let Some(p) = &c.probe {
            let raw = p.get_ref();
            let node = scope.nodes.iter().find(|n| n.name == *raw.node.get_ref());
            let mut ok = true;
            match node {
                None => {
                    self.err(
                        &raw.node,
                        format!("probe of undefined node {:?}", raw.node.get_ref()),
                    );
                    ok = false;
                }
                Some(n) => match PROBES.iter().find(|(k, _)| k == raw.probe.get_ref()) {
                    None => {
                        let known: Vec<_> = PROBES.iter().map(|(k, _)| *k).collect();
                        self.err(
                            &raw.probe,
                            format!(
                                "unknown probe {:?} (known: {})",
                                raw.probe.get_ref(),
                                known.join(", ")
                            ),
                        );
                        ok = false;
                    }
                    Some((k, role)) if *role != n.role => {
                        self.err(
                            &raw.probe,
                            format!(
                                "probe {k:?} runs on a {} node; the role of {:?} is {}",
                                role.name(),
                                n.name,
                                n.role.name()
                            ),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                },
            }
            self.text(&raw.find, scope, binds);
            if raw.find.get_ref().is_empty() || raw.find.get_ref().split('.').any(str::is_empty) {
                self.err(
                    &raw.find,
                    "find is a dot-separated path such as \"mailboxes.bob\"",
                );
                ok = false;
            }
            let items = match (&raw.where_, &raw.count) {
                (Some(w), count) => {
                    let pattern = self.probe_pattern(w, scope, binds);
                    let count = match count {
                        Some(c) => self.range(c),
                        None => Some(Range::AT_LEAST_ONE),
                    };
                    match (pattern, count) {
                        (Some(p), Some(c)) => Some((p, c)),
                        _ => {
                            ok = false;
                            None
                        }
                    }
                }
                (None, Some(c)) => self.range(c).map(|c| (Pattern::default(), c)),
                (None, None) => None,
            };
            let value = match &raw.value {
                Some(v) => {
                    let m = self.matcher(v, scope, binds);
                    ok &= m.is_some();
                    m
                }
                None => None,
            };
            if items.is_none() && value.is_none() && ok {
                self.err(
                    &raw.find,
                    "a probe says what it wants: where = {...} (with count), count, or value",
                );
                ok = false;
            }
            let bind = self.bindings(&raw.bind, None, scope);
            return ok.then(|| {
                Rule::Probe(Box::new(ProbeRule {
                    node: raw.node.get_ref().clone(),
                    probe: raw.probe.get_ref().clone(),
                    find: raw.find.get_ref().clone(),
                    items,
                    value,
                    bind,
                }))
            });
        }
        if let Some(a) = &c.answer {
            if !scope.questions.contains(a.get_ref()) {
                self.err(
                    a,
                    format!("answer names no question of this task: {:?}", a.get_ref()),
                );
                return None;
            }
            return Some(Rule::Answer(a.get_ref().clone()));
        }
        let (list, all) = match (&c.all, &c.any) {
            (Some(l), _) => (l, true),
            (_, Some(l)) => (l, false),
            _ => unreachable!("one rule was given"),
        };
        if list.get_ref().is_empty() {
            self.err(list, "all/any need at least one rule");
            return None;
        }
        let mut rules = Vec::new();
        for item in list.get_ref() {
            if let Some(id) = &item.id {
                self.err(id, "the rules inside all/any have no id of their own");
            }
            if let Some(e) = &item.expect {
                self.err(e, "the rules inside all/any have no expect of their own");
            }
            rules.push(self.rule(item, scope, binds, list)?);
        }
        Some(if all {
            Rule::All(rules)
        } else {
            Rule::Any(rules)
        })
    }

    fn pattern<T>(
        &mut self,
        raw: &RawPattern,
        scope: &Scope,
        binds: &BTreeSet<String>,
        at: &Spanned<T>,
    ) -> Option<Pattern> {
        let mut ok = true;
        let ty = raw
            .iter()
            .find(|(k, _)| k.get_ref() == "type")
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string));
        if let Some(t) = &ty {
            if !applab_proto::event::is_type(t) {
                let (_, v) = raw
                    .iter()
                    .find(|(k, _)| k.get_ref() == "type")
                    .expect("type");
                let known: Vec<_> = applab_proto::event::FIELDS
                    .iter()
                    .map(|(t, _)| *t)
                    .collect();
                self.err(
                    v,
                    format!("unknown event type {t:?} (known: {})", known.join(", ")),
                );
                ok = false;
            }
        }
        if raw.is_empty() {
            self.err(
                at,
                "an empty match matches every event; say at least its type",
            );
            return None;
        }
        let mut out = Vec::new();
        for (k, v) in raw {
            let field = k.get_ref();
            let (target_ty, name) = match field.strip_prefix("reply.") {
                Some(rest) => {
                    if ty
                        .as_deref()
                        .is_some_and(applab_proto::event::is_answer_type)
                        || ty.as_deref() == Some("tcp_open")
                        || ty.as_deref() == Some("tcp_close")
                    {
                        self.err(
                            k,
                            format!(
                                "events of type {:?} have no reply",
                                ty.as_deref().unwrap_or("")
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    (None, rest)
                }
                None => (ty.as_deref(), field.as_str()),
            };
            if !applab_proto::event::is_field(target_ty, name) {
                self.err(
                    k,
                    match target_ty {
                        Some(t) => format!("events of type {t:?} have no field {name:?}"),
                        None => format!("no event has a field {name:?}"),
                    },
                );
                ok = false;
                continue;
            }
            let Some(m) = self.matcher(v, scope, binds) else {
                ok = false;
                continue;
            };
            if (name == "client" || name == "server") && m.equals.is_some() {
                let n = m.equals.as_deref().unwrap_or("");
                if placeholders(n).is_empty() && !scope.nodes.iter().any(|x| x.name == n) {
                    self.err(v, format!("{name} {n:?} is not a node of this lab"));
                    ok = false;
                }
            }
            if name == "network"
                && m.equals
                    .as_ref()
                    .is_some_and(|n| !scope.networks.contains(n))
            {
                self.err(v, "not a network of this lab");
                ok = false;
            }
            out.push((field.clone(), m));
        }
        // The type first: most events fail there, cheaply.
        out.sort_by_key(|(f, _)| f != "type");
        ok.then_some(Pattern(out))
    }

    /// A probe item's pattern: its fields are the probe's JSON keys.
    fn probe_pattern(
        &mut self,
        raw: &RawPattern,
        scope: &Scope,
        binds: &BTreeSet<String>,
    ) -> Option<Pattern> {
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in raw {
            self.text(k, scope, binds);
            match self.matcher(v, scope, binds) {
                Some(m) => out.push((k.get_ref().clone(), m)),
                None => ok = false,
            }
        }
        ok.then_some(Pattern(out))
    }

    fn matcher(
        &mut self,
        v: &Spanned<toml::Value>,
        scope: &Scope,
        binds: &BTreeSet<String>,
    ) -> Option<Matcher> {
        let mut m = Matcher::default();
        match v.get_ref() {
            toml::Value::String(s) => {
                self.text_at(v, s, scope, binds);
                m.equals = Some(s.clone());
            }
            toml::Value::Integer(i) => m.equals = Some(i.to_string()),
            toml::Value::Float(f) => m.equals = Some(f.to_string()),
            toml::Value::Boolean(b) => m.equals = Some(b.to_string()),
            toml::Value::Table(t) => {
                for (key, val) in t {
                    let text = |v: &toml::Value| match v {
                        toml::Value::String(s) => Some(s.clone()),
                        toml::Value::Integer(i) => Some(i.to_string()),
                        toml::Value::Float(f) => Some(f.to_string()),
                        toml::Value::Boolean(b) => Some(b.to_string()),
                        _ => None,
                    };
                    let num = |v: &toml::Value| match v {
                        toml::Value::Integer(i) => Some(*i as f64),
                        toml::Value::Float(f) => Some(*f),
                        _ => None,
                    };
                    let slot = match key.as_str() {
                        "equals" => &mut m.equals,
                        "not" => &mut m.not,
                        "regex" => &mut m.regex,
                        "contains" => &mut m.contains,
                        "icontains" => &mut m.icontains,
                        "excludes" => &mut m.excludes,
                        "min" | "max" => {
                            let Some(n) = num(val) else {
                                self.err(v, format!("matcher: {key} is a number"));
                                return None;
                            };
                            if key == "min" {
                                m.min = Some(n);
                            } else {
                                m.max = Some(n);
                            }
                            continue;
                        }
                        "present" => {
                            let Some(b) = val.as_bool() else {
                                self.err(v, "matcher: present is true or false");
                                return None;
                            };
                            m.present = Some(b);
                            continue;
                        }
                        other => {
                            self.err(v, format!("matcher: unknown key {other:?} (known: equals, not, regex, contains, icontains, excludes, min, max, present)"));
                            return None;
                        }
                    };
                    let Some(s) = text(val) else {
                        self.err(v, format!("matcher: {key} is a string"));
                        return None;
                    };
                    self.text_at(v, &s, scope, binds);
                    *slot = Some(s);
                }
                if let Some(r) = &m.regex {
                    // Placeholders are filled (and escaped) before compiling.
                    let mut probe = r.clone();
                    for p in placeholders(r).iter().rev() {
                        let end = r[p.offset..]
                            .find("}}")
                            .map(|e| p.offset + e + 2)
                            .unwrap_or(r.len());
                        probe.replace_range(p.offset..end, "x");
                    }
                    if let Err(e) = regex::Regex::new(&probe) {
                        let msg = e.to_string();
                        let last = msg.lines().last().unwrap_or("").trim().to_string();
                        self.err(v, format!("matcher: bad regex {r:?}: {last}"));
                        return None;
                    }
                }
                if t.is_empty() {
                    self.err(
                        v,
                        "matcher: an empty table matches nothing; give equals, regex, min ...",
                    );
                    return None;
                }
            }
            _ => {
                self.err(
                    v,
                    "matcher: a string, a number, a boolean or a table such as { regex = \"...\" }",
                );
                return None;
            }
        }
        Some(m)
    }

    /// `11` (exactly), or `{ min = 11 }`, `{ max = 0 }`, `{ min = 1, max = 3 }`.
    fn range(&mut self, v: &Spanned<toml::Value>) -> Option<Range> {
        let n = |x: &toml::Value| x.as_integer().filter(|i| *i >= 0).map(|i| i as u64);
        match v.get_ref() {
            toml::Value::Integer(_) => match n(v.get_ref()) {
                Some(i) => Some(Range {
                    min: i,
                    max: Some(i),
                }),
                None => {
                    self.err(v, "a count is not negative");
                    None
                }
            },
            toml::Value::Table(t) => {
                let mut r = Range { min: 0, max: None };
                for (k, x) in t {
                    let Some(i) = n(x) else {
                        self.err(v, format!("count: {k} is a whole number, 0 or more"));
                        return None;
                    };
                    match k.as_str() {
                        "min" => r.min = i,
                        "max" => r.max = Some(i),
                        other => {
                            self.err(v, format!("count: unknown key {other:?} (known: min, max)"));
                            return None;
                        }
                    }
                }
                if !t.contains_key("min") && !t.contains_key("max") {
                    self.err(v, "count: give min, max or both");
                    return None;
                }
                if r.max.is_some_and(|m| m < r.min) {
                    self.err(v, "count: max is below min");
                    return None;
                }
                Some(r)
            }
            _ => {
                self.err(v, "a count is a number (exactly) or { min = N, max = M }");
                None
            }
        }
    }

    fn bindings(
        &mut self,
        raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        pattern: Option<&Pattern>,
        scope: &Scope,
    ) -> Vec<Binding> {
        let ty = pattern.and_then(|p| {
            p.0.iter()
                .find(|(f, _)| f == "type")
                .and_then(|(_, m)| m.equals.clone())
        });
        let mut out = Vec::new();
        for (name, v) in raw {
            if !crate::validate::is_ident(name.get_ref()) {
                self.err(
                    name,
                    format!(
                        "bad name {:?} to bind: use a-z, 0-9 and '_'",
                        name.get_ref()
                    ),
                );
                continue;
            }
            let (field, regex) = match v.get_ref() {
                toml::Value::String(f) => (f.clone(), None),
                toml::Value::Table(t) => {
                    let field = t.get("field").and_then(|f| f.as_str());
                    let regex = t.get("regex").and_then(|f| f.as_str());
                    let unknown = t.keys().find(|k| *k != "field" && *k != "regex");
                    match (field, unknown) {
                        (Some(f), None) => (f.to_string(), regex.map(str::to_string)),
                        _ => {
                            self.err(
                                v,
                                "bind: a field name, or { field = \"...\", regex = \"...\" }",
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.err(
                        v,
                        "bind: a field name, or { field = \"...\", regex = \"...\" }",
                    );
                    continue;
                }
            };
            if pattern.is_some() {
                let name_only = field.strip_prefix("reply.").unwrap_or(&field);
                let target = if field.starts_with("reply.") {
                    None
                } else {
                    ty.as_deref()
                };
                if !applab_proto::event::is_field(target, name_only) {
                    self.err(v, format!("bind: events have no field {field:?} here"));
                    continue;
                }
            }
            if let Some(r) = &regex {
                if let Err(e) = regex::Regex::new(r) {
                    let msg = e.to_string();
                    self.err(
                        v,
                        format!(
                            "bind: bad regex: {}",
                            msg.lines().last().unwrap_or("").trim()
                        ),
                    );
                    continue;
                }
            }
            let _ = scope;
            out.push(Binding {
                name: name.get_ref().clone(),
                field,
                regex,
            });
        }
        out
    }

    fn text(&mut self, s: &Spanned<String>, scope: &Scope, binds: &BTreeSet<String>) {
        self.text_at(s, s.get_ref(), scope, binds)
    }

    fn text_at<T>(&mut self, at: &Spanned<T>, s: &str, scope: &Scope, binds: &BTreeSet<String>) {
        for p in placeholders(s) {
            if !scope.vars.contains(&p.name) && !binds.contains(&p.name) {
                self.err(at, format!("unknown parameter {:?} in placeholder", p.name));
            }
        }
    }

    pub(crate) fn questions(
        &mut self,
        raw: &[RawQuestion],
        params: &BTreeMap<String, crate::Param>,
        constants: &BTreeMap<String, f64>,
        vars: &BTreeSet<String>,
    ) -> Vec<Question> {
        let mut out = Vec::new();
        let mut ids = BTreeSet::new();
        for q in raw {
            let id = q.id.get_ref();
            if !crate::validate::is_label(id) {
                self.err(
                    &q.id,
                    format!("bad question id {id:?}: use 1-32 of a-z, 0-9 and '-'"),
                );
            } else if !ids.insert(id.clone()) {
                self.err(&q.id, format!("duplicate question id {id:?}"));
            }
            for p in placeholders(&q.text) {
                if !vars.contains(&p.name) {
                    self.err(
                        &q.id,
                        format!("question text uses unknown parameter {:?}", p.name),
                    );
                }
            }
            // Evaluated once with sample values: a wrong name or type shows now.
            let sample: BTreeMap<String, String> = params
                .iter()
                .map(|(n, p)| {
                    (
                        n.clone(),
                        crate::params::derive(b"validate", "sample", n, &p.kind),
                    )
                })
                .collect();
            if let Err(e) =
                expected_value(&q.expected.get_ref().clone(), params, &sample, constants)
            {
                self.err(&q.expected, format!("expected: {e}"));
            }
            for (t, name) in [(&q.abs, "abs"), (&q.rel, "rel")] {
                if let Some(t) = t {
                    if !(t.get_ref().is_finite() && *t.get_ref() >= 0.0) {
                        self.err(t, format!("{name}: a tolerance is 0 or more"));
                    }
                }
            }
            out.push(Question {
                id: id.clone(),
                text: q.text.clone(),
                expected: q.expected.get_ref().clone(),
                unit: q.unit.clone(),
                abs: q.abs.as_ref().map(|t| *t.get_ref()),
                rel: q.rel.as_ref().map(|t| *t.get_ref()),
            });
        }
        out
    }
}

fn collect_binds(c: &RawCheck, out: &mut BTreeSet<String>) {
    if let Some(s) = &c.sequence {
        for st in s.get_ref().steps.get_ref() {
            out.extend(st.get_ref().bind.keys().map(|k| k.get_ref().clone()));
        }
    }
    if let Some(p) = &c.probe {
        out.extend(p.get_ref().bind.keys().map(|k| k.get_ref().clone()));
    }
    for list in [&c.all, &c.any].into_iter().flatten() {
        for item in list.get_ref() {
            collect_binds(item, out);
        }
    }
}

/// A question's expected value for one student: its expression with the
/// student's parameters (integers as numbers, the rest as strings) and
/// the lab's constants.
pub fn expected_value(
    expr: &str,
    params: &BTreeMap<String, crate::Param>,
    values: &BTreeMap<String, String>,
    constants: &BTreeMap<String, f64>,
) -> Result<f64, String> {
    use evalexpr::{ContextWithMutableVariables, Value};
    let tree = evalexpr::build_operator_tree(expr).map_err(|e| e.to_string())?;
    let mut ctx = evalexpr::HashMapContext::new();
    for (name, p) in params {
        let Some(v) = values.get(name) else { continue };
        let value = match p.kind {
            ParamKind::Int { .. } => Value::Int(
                v.parse()
                    .map_err(|_| format!("{name} is not a number: {v}"))?,
            ),
            _ => Value::String(v.clone()),
        };
        ctx.set_value(name.clone(), value)
            .map_err(|e| e.to_string())?;
    }
    for (name, v) in constants {
        ctx.set_value(name.clone(), Value::Float(*v))
            .map_err(|e| e.to_string())?;
    }
    for id in tree.iter_variable_identifiers() {
        if !params.contains_key(id) && !constants.contains_key(id) {
            return Err(format!(
                "unknown name {id:?} (parameters and [constants] only)"
            ));
        }
    }
    let v = tree
        .eval_number_with_context(&ctx)
        .map_err(|e| e.to_string())?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("the value is not a finite number ({v})"))
    }
}
