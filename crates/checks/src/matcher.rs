//! One value against one matcher, with the student's values (and the
//! names bound so far) filled into the matcher's text first.

use crate::index::Index;
use applab_lab::check::{Matcher, Pattern};
use applab_proto::event::{NodeEvent, Value};
use regex::Regex;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The names a check's text may use: parameters, then bound values.
#[derive(Debug, Clone)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    pub fn new(params: &BTreeMap<String, String>) -> Env {
        Env {
            vars: params.clone(),
        }
    }

    pub fn bind(&mut self, name: &str, value: String) {
        self.vars.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Placeholders filled; `None` if one names nothing bound yet.
    pub fn try_render(&self, s: &str) -> Option<String> {
        if !s.contains("{{") {
            return Some(s.to_string());
        }
        applab_lab::template::render(s, &self.vars).ok()
    }

    /// Placeholders filled, unknown ones left as written (for sentences).
    pub fn render(&self, s: &str) -> String {
        self.try_render(s).unwrap_or_else(|| s.to_string())
    }

    /// For a regex: the values escaped, so a value seen in traffic is
    /// matched as text, never read as a pattern.
    fn render_regex(&self, s: &str) -> Option<String> {
        let escaped: BTreeMap<String, String> = applab_lab::template::placeholders(s)
            .into_iter()
            .filter_map(|p| {
                let v = self.vars.get(&p.name)?;
                Some((p.name, regex::escape(v)))
            })
            .collect();
        applab_lab::template::render(s, &escaped).ok()
    }
}

thread_local! {
    /// Compiled regexes by their text: the same few per lab, for every student.
    static REGEXES: RefCell<HashMap<String, Option<Arc<Regex>>>> = RefCell::new(HashMap::new());
}

/// A compiled regex (cached); `None` if it does not compile.
pub fn regex(src: &str) -> Option<Arc<Regex>> {
    REGEXES.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(src) {
            return r.clone();
        }
        if c.len() > 4096 {
            c.clear();
        }
        let r = regex::RegexBuilder::new(src)
            .size_limit(1 << 20)
            .build()
            .ok()
            .map(Arc::new);
        c.insert(src.to_string(), r.clone());
        r
    })
}

/// A number as text: `200`, not `200.0`.
pub fn num_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// A matcher with its text filled in for one environment.
pub struct CompiledMatcher {
    equals: Option<String>,
    not: Option<String>,
    regex: Option<Arc<Regex>>,
    contains: Option<String>,
    icontains: Option<String>,
    excludes: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    present: Option<bool>,
    /// A placeholder named nothing bound yet, or a regex did not compile:
    /// nothing matches.
    never: bool,
}

impl CompiledMatcher {
    pub fn new(m: &Matcher, env: &Env) -> CompiledMatcher {
        let mut never = false;
        let mut text = |s: &Option<String>| {
            s.as_ref().and_then(|s| {
                let r = env.try_render(s);
                never |= r.is_none();
                r
            })
        };
        let equals = text(&m.equals);
        let not = text(&m.not);
        let contains = text(&m.contains);
        let icontains = text(&m.icontains).map(|s| s.to_lowercase());
        let excludes = text(&m.excludes).map(|s| s.to_lowercase());
        let regex = m.regex.as_ref().and_then(|r| {
            let r = env.render_regex(r).and_then(|src| regex(&src));
            never |= r.is_none();
            r
        });
        CompiledMatcher {
            equals,
            not,
            regex,
            contains,
            icontains,
            excludes,
            min: m.min,
            max: m.max,
            present: m.present,
            never,
        }
    }

    fn text_holds(&self, t: &str) -> bool {
        self.equals.as_ref().is_none_or(|e| e == t)
            && self.regex.as_ref().is_none_or(|r| r.is_match(t))
            && self
                .contains
                .as_ref()
                .is_none_or(|c| t.contains(c.as_str()))
            && self
                .icontains
                .as_ref()
                .is_none_or(|c| t.to_lowercase().contains(c.as_str()))
    }

    fn has_text_parts(&self) -> bool {
        self.equals.is_some()
            || self.regex.is_some()
            || self.contains.is_some()
            || self.icontains.is_some()
    }

    fn bounds(&self, n: f64) -> bool {
        self.min.is_none_or(|m| n >= m) && self.max.is_none_or(|m| n <= m)
    }

    pub fn holds(&self, v: Option<&Value>) -> bool {
        if self.never {
            return false;
        }
        let present = match v {
            None => false,
            Some(Value::List(l)) => !l.is_empty(),
            Some(_) => true,
        };
        if let Some(p) = self.present {
            if p != present {
                return false;
            }
        }
        let excluded = |t: &str| {
            self.excludes
                .as_ref()
                .is_some_and(|x| t.to_lowercase().contains(x.as_str()))
        };
        let Some(v) = v else {
            // Missing: only "not", "excludes" and "present = false" can hold.
            return !self.has_text_parts() && self.min.is_none() && self.max.is_none();
        };
        match v {
            Value::Str(s) => {
                !excluded(s)
                    && self.text_holds(s)
                    && self.not.as_ref().is_none_or(|n| n != s.as_ref())
                    && (self.min.is_none() && self.max.is_none()
                        || s.trim().parse::<f64>().is_ok_and(|n| self.bounds(n)))
            }
            Value::Num(n) => {
                let t = num_text(*n);
                let eq = self
                    .equals
                    .as_ref()
                    .is_none_or(|e| e.trim().parse::<f64>().is_ok_and(|x| x == *n) || *e == t);
                eq && self.regex.as_ref().is_none_or(|r| r.is_match(&t))
                    && self
                        .contains
                        .as_ref()
                        .is_none_or(|c| t.contains(c.as_str()))
                    && self
                        .not
                        .as_ref()
                        .is_none_or(|x| x.trim().parse::<f64>() != Ok(*n))
                    && self.bounds(*n)
            }
            Value::Bool(b) => {
                let t = b.to_string();
                self.text_holds(&t) && self.not.as_ref().is_none_or(|n| *n != t)
            }
            Value::List(l) => {
                !l.iter().any(|x| excluded(x))
                    && (!self.has_text_parts() || l.iter().any(|x| self.text_holds(x)))
                    && self
                        .not
                        .as_ref()
                        .is_none_or(|n| l.iter().all(|x| x.as_ref() != n))
                    && self.bounds(l.len() as f64)
            }
        }
    }
}

/// A field as written in a pattern: of the event itself or of its reply.
struct FieldRef {
    reply: bool,
    name: String,
}

/// One event field by name; `reply.NAME` reads the event answering it.
pub fn field<'e>(events: &'e [NodeEvent], ix: &Index, i: usize, name: &str) -> Option<Value<'e>> {
    match name.strip_prefix("reply.") {
        Some(rest) => events[ix.reply(i)?].field(rest),
        None => events[i].field(name),
    }
}

/// A pattern compiled for one environment.
pub struct Compiled {
    fields: Vec<(FieldRef, CompiledMatcher)>,
}

impl Compiled {
    pub fn new(p: &Pattern, env: &Env) -> Compiled {
        Compiled {
            fields: p
                .0
                .iter()
                .map(|(f, m)| {
                    let (reply, name) = match f.strip_prefix("reply.") {
                        Some(rest) => (true, rest.to_string()),
                        None => (false, f.clone()),
                    };
                    (FieldRef { reply, name }, CompiledMatcher::new(m, env))
                })
                .collect(),
        }
    }

    pub fn matches(&self, events: &[NodeEvent], ix: &Index, i: usize) -> bool {
        self.fields.iter().all(|(f, m)| {
            let v = if f.reply {
                ix.reply(i).and_then(|r| events[r].field(&f.name))
            } else {
                events[i].field(&f.name)
            };
            m.holds(v.as_ref())
        })
    }
}
