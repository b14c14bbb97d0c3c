//! Checks as data (DESIGN.md decisions 7 and 12): what a lab file says a
//! task's checks are, validated, before any evaluation.
//!
//! A check is one rule, or `all`/`any` of rules:
//!
//! - **events**: decoded events matching a [`Pattern`], counted, spread
//!   over TCP connections (`connections`) or gathered on one
//!   (`per_connection`);
//! - **sequence**: patterns in order (A, then later B), each step able to
//!   `bind` a value for later steps (`{{cart}}`), `absent` steps saying
//!   that nothing like them happened between their neighbours, and
//!   `same_connection` keeping every step on the first step's flow;
//! - **probe**: a node's state, as the node's `applab-node probe` prints
//!   it in JSON, with a path to the part that matters and predicates;
//! - **answer**: a question of the task, judged against its expected
//!   value, computed from the student's parameters and the lab's constants.
//!
//! Evaluation lives in the `applab-checks` crate; this module is the schema
//! and its located validation. Strings may hold `{{ name }}` placeholders:
//! the student's parameters, `student_id`, and names bound by earlier
//! steps.

use serde::{Deserialize, Serialize};

/// One check of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Unique within its task (`non-persistent`).
    pub id: String,
    /// What the check wants, in a sentence for the student.
    pub expect: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Events(EventsRule),
    Sequence(SequenceRule),
    Probe(Box<ProbeRule>),
    /// The id of one of the task's questions.
    Answer(String),
    /// Every rule holds, taken in order: names bound by one are seen by the
    /// next, and the first that does not pass gives the verdict.
    All(Vec<Rule>),
    /// At least one rule holds.
    Any(Vec<Rule>),
}

/// Field → matcher; every pair must hold. Fields are those of
/// `applab_proto::event` (`type`, `client`, `server`, `target`,
/// `header.connection` ...), and `reply.FIELD` for the event that answers
/// this one (a request's response, a command's reply, a query's answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pattern(pub Vec<(String, Matcher)>);

/// What a value must be. Several parts in one matcher must all hold.
/// On a list value (a header's values, a DNS answer's records, a probe's
/// array) the text parts hold when some element does, and `min`/`max`
/// bound the list's length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    /// Exactly this (text; numbers and booleans compare by value).
    pub equals: Option<String>,
    /// Anything but this (a missing value is not equal).
    pub not: Option<String>,
    pub regex: Option<String>,
    pub contains: Option<String>,
    /// Case-insensitive `contains`.
    pub icontains: Option<String>,
    /// Does not contain this, case-insensitively (a missing value does not).
    pub excludes: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Whether the value is there at all (a list: whether it is non-empty).
    pub present: Option<bool>,
}

/// A count: at least `min` (default 1), at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: u64,
    pub max: Option<u64>,
}

impl Range {
    pub const AT_LEAST_ONE: Range = Range { min: 1, max: None };

    pub fn holds(&self, n: u64) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }

    /// "at least 11", "exactly 1", "2 to 4", "none".
    pub fn words(&self) -> String {
        match self.max {
            Some(0) => "none".into(),
            Some(m) if m == self.min => format!("exactly {m}"),
            Some(m) if self.min == 0 => format!("at most {m}"),
            Some(m) => format!("{} to {m}", self.min),
            None => format!("at least {}", self.min),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsRule {
    pub pattern: Pattern,
    /// How many matching events (default: at least one).
    pub count: Range,
    /// Over how many distinct TCP connections (flows) they are spread.
    pub connections: Option<Range>,
    /// How many of them one single connection carries (the best one).
    pub per_connection: Option<Range>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceRule {
    pub steps: Vec<Step>,
    /// Every step on the flow of the first.
    pub same_connection: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// How the step reads in a result ("a second fetch, from the cache").
    pub say: Option<String>,
    pub pattern: Pattern,
    /// No event like this one between the previous step and the next.
    pub absent: bool,
    /// Names bound from the matched event, for later steps and rules.
    pub bind: Vec<Binding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub name: String,
    pub field: String,
    /// The value is the regex's first group (or its whole match).
    pub regex: Option<String>,
}

/// The probes a node answers (`applab-node probe KIND`), by role.
pub const PROBES: &[(&str, crate::Role)] = &[
    ("mail", crate::Role::Mail),
    ("shop", crate::Role::Origin),
    ("proxy", crate::Role::Proxy),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRule {
    pub node: String,
    /// Which probe (see [`PROBES`]).
    pub probe: String,
    /// Dot-separated path into the probe's JSON (`mailboxes.bob`); may
    /// hold placeholders (`carts.{{cart}}`).
    pub find: String,
    /// When set: the found value is a list (or an object's values) and
    /// this many of its items must match `where`.
    pub items: Option<(Pattern, Range)>,
    /// When set: the found value itself must match.
    pub value: Option<Matcher>,
    /// Names bound from the first matching item (or the found value).
    pub bind: Vec<Binding>,
}

/// A question of a task, answered through the panel or `applab answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    /// The question as the student reads it (Markdown, with placeholders).
    pub text: String,
    /// An expression over the parameters and the lab's constants (evalexpr).
    pub expected: String,
    pub unit: Option<String>,
    /// Accepted if within `abs` of the expected value, or within `rel`
    /// of it relatively (either suffices; neither given: exact).
    pub abs: Option<f64>,
    pub rel: Option<f64>,
}

impl Rule {
    /// Every rule inside this one, this one first.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Rule>) {
        out.push(self);
        if let Rule::All(rs) | Rule::Any(rs) = self {
            for r in rs {
                r.walk(out);
            }
        }
    }

    /// The event types this rule looks at (`None` in the list: any type),
    /// so a new event re-evaluates only the checks it can change.
    pub fn event_types(&self) -> Vec<Option<String>> {
        let mut rules = Vec::new();
        self.walk(&mut rules);
        let mut out = Vec::new();
        let ty = |p: &Pattern| {
            p.0.iter()
                .find(|(f, _)| f == "type")
                .and_then(|(_, m)| m.equals.clone())
        };
        // A pattern that reads `reply.` is decided again when the answer
        // arrives, after the event it matched.
        let mut add = |p: &Pattern| {
            out.push(ty(p));
            if p.0.iter().any(|(f, _)| f.starts_with("reply.")) {
                out.extend(
                    applab_proto::event::ANSWER_TYPES
                        .iter()
                        .map(|t| Some(t.to_string())),
                );
            }
        };
        for r in rules {
            match r {
                Rule::Events(e) => add(&e.pattern),
                Rule::Sequence(s) => s.steps.iter().for_each(|st| add(&st.pattern)),
                _ => {}
            }
        }
        out
    }

    /// Probes this rule reads, as (node, probe).
    pub fn probes(&self) -> Vec<(String, String)> {
        let mut rules = Vec::new();
        self.walk(&mut rules);
        rules
            .into_iter()
            .filter_map(|r| match r {
                Rule::Probe(p) => Some((p.node.clone(), p.probe.clone())),
                _ => None,
            })
            .collect()
    }
}
