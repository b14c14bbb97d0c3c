//! The check engine's pure half (DESIGN.md decision 12): a lab's checks,
//! evaluated over one student's decoded events, their nodes' probe outputs
//! and their answers, into results that say what was expected, what was
//! seen, and which events decided it.
//!
//! Nothing here does IO or reads a clock: the controller gathers the
//! inputs and stores the results, tests feed them by hand, and a regrade
//! is the same call again.
//!
//! # Layout
//!
//! - [`matcher`]: one value against one matcher, placeholders filled in.
//! - [`index`]: which event answers which (a request's response, a
//!   command's reply), computed once per evaluation.
//! - this file: the rules (events, sequence, probe, answer, all, any) and
//!   the results.

pub mod index;
pub mod matcher;

use applab_lab::check::{Binding, Check, EventsRule, Pattern, ProbeRule, Rule, SequenceRule};
use applab_lab::{Lab, Task};
use applab_proto::event::{NodeEvent, Value};
use index::Index;
use matcher::{Compiled, Env};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing relevant seen yet.
    Pending,
    /// Something relevant was seen, and it is not what the check wants.
    Fail,
    /// The check could not be decided (a probe failed, a search too big).
    Error,
    Pass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Pass => "pass",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "fail" => Status::Fail,
            "error" => Status::Error,
            "pass" => Status::Pass,
            _ => return None,
        })
    }
}

/// What decided a result: an event (with what the panel needs to show its
/// packets and its ladder), or a probe's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The event's id in the student's log (absent for a probe).
    pub event: Option<u64>,
    pub time: Option<f64>,
    pub network: Option<String>,
    pub flow: Option<u64>,
    pub frame: Option<u64>,
    /// The event as a line, or the probe and the part of its output that counted.
    pub text: String,
}

impl Evidence {
    fn of(e: &NodeEvent) -> Evidence {
        Evidence {
            event: Some(e.seq),
            time: Some(e.event.time),
            network: Some(e.network.clone()),
            flow: Some(e.event.flow),
            frame: Some(e.event.frame),
            text: e.line(),
        }
    }

    fn probe(text: String) -> Evidence {
        Evidence {
            event: None,
            time: None,
            network: None,
            flow: None,
            frame: None,
            text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: String,
    pub status: Status,
    /// The check's sentence, with the student's values filled in.
    pub expected: String,
    /// What was seen, in words.
    pub seen: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: String,
    /// Pass when every check passes; otherwise the worst of them.
    pub status: Status,
    pub points: f64,
    pub max_points: f64,
    pub checks: Vec<CheckResult>,
}

/// A node's state as its probe printed it, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeOutput {
    Ok(serde_json::Value),
    Err(String),
}

/// Probe outputs by (node, probe).
pub type Probes = HashMap<(String, String), ProbeOutput>;

/// An answer a student submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub task: String,
    pub question: String,
    pub value: String,
    pub time: f64,
}

pub struct Input<'a> {
    pub lab: &'a Lab,
    /// The student's parameters (and `student_id`).
    pub params: &'a BTreeMap<String, String>,
    /// The student's events, in the order they were decoded.
    pub events: &'a [NodeEvent],
    pub probes: &'a Probes,
    pub answers: &'a [Submission],
}

/// How many candidate events a sequence search may try before it gives up
/// with an error (a pathological trace must not stall the check loop).
const SEARCH_BUDGET: usize = 2_000_000;
/// Events cited as evidence, at most, per rule.
const MAX_EVIDENCE: usize = 12;

/// Evaluate every task of the lab.
pub fn evaluate(input: &Input) -> Vec<TaskResult> {
    let ix = Index::new(input.events);
    input
        .lab
        .tasks
        .iter()
        .map(|t| evaluate_task_with(input, &ix, t))
        .collect()
}

/// Evaluate one task (when only its checks can have changed).
pub fn evaluate_task(input: &Input, task: &Task) -> TaskResult {
    let ix = Index::new(input.events);
    evaluate_task_with(input, &ix, task)
}

fn evaluate_task_with(input: &Input, ix: &Index, task: &Task) -> TaskResult {
    let checks: Vec<CheckResult> = task
        .checks
        .iter()
        .map(|c| evaluate_check(input, ix, task, c))
        .collect();
    let status = task_status(checks.iter().map(|c| c.status));
    TaskResult {
        task: task.id.clone(),
        status,
        points: if status == Status::Pass {
            task.points
        } else {
            0.0
        },
        max_points: task.points,
        checks,
    }
}

/// A task's status from its checks' (and `all`'s from its rules'): any
/// error is an error, any
/// fail a fail; all pass, pass;
/// otherwise not decided yet.
pub fn task_status(statuses: impl Iterator<Item = Status>) -> Status {
    let (mut any_err, mut any_fail, mut all_pass, mut n) = (false, false, true, 0);
    for s in statuses {
        n += 1;
        any_err |= s == Status::Error;
        any_fail |= s == Status::Fail;
        all_pass &= s == Status::Pass;
    }
    if any_err {
        Status::Error
    } else if any_fail {
        Status::Fail
    } else if all_pass && n > 0 {
        Status::Pass
    } else {
        Status::Pending
    }
}

fn evaluate_check(input: &Input, ix: &Index, task: &Task, check: &Check) -> CheckResult {
    let mut env = Env::new(input.params);
    let expected = env.render(&check.expect);
    let mut ev = Eval {
        input,
        ix,
        task,
        budget: SEARCH_BUDGET,
    };
    let out = ev.rule(&check.rule, &mut env);
    CheckResult {
        check: check.id.clone(),
        status: out.status,
        expected,
        seen: out.seen,
        evidence: out.evidence,
    }
}

/// What one rule found.
struct Outcome {
    status: Status,
    seen: String,
    evidence: Vec<Evidence>,
}

impl Outcome {
    fn new(status: Status, seen: impl Into<String>) -> Outcome {
        Outcome {
            status,
            seen: seen.into(),
            evidence: Vec::new(),
        }
    }
}

struct Eval<'a, 'b> {
    input: &'a Input<'b>,
    ix: &'a Index,
    task: &'a Task,
    budget: usize,
}

/// A few events' lines, for a sentence.
fn lines(events: &[NodeEvent], ids: &[usize], n: usize) -> String {
    let mut out: Vec<String> = ids.iter().take(n).map(|i| events[*i].line()).collect();
    if ids.len() > n {
        out.push(format!("and {} more", ids.len() - n));
    }
    out.join("; ")
}

impl Eval<'_, '_> {
    fn events(&self) -> &[NodeEvent] {
        self.input.events
    }

    fn rule(&mut self, rule: &Rule, env: &mut Env) -> Outcome {
        match rule {
            Rule::Events(r) => self.events_rule(r, env),
            Rule::Sequence(r) => self.sequence(r, env),
            Rule::Probe(r) => self.probe(r, env),
            Rule::Answer(q) => self.answer(q),
            // In order, each seeing what the ones before bound; the first
            // that does not pass decides (what follows depends on it).
            Rule::All(rules) => {
                let mut outs = Vec::new();
                for r in rules {
                    let o = self.rule(r, env);
                    let stop = o.status != Status::Pass;
                    outs.push(o);
                    if stop {
                        break;
                    }
                }
                let status = outs.last().map_or(Status::Pending, |o| o.status);
                join(status, outs)
            }
            Rule::Any(rules) => {
                let mut outs = Vec::new();
                for r in rules {
                    let mut e = env.clone();
                    let o = self.rule(r, &mut e);
                    if o.status == Status::Pass {
                        *env = e;
                        return o;
                    }
                    outs.push(o);
                }
                let status = if outs.iter().any(|o| o.status == Status::Error) {
                    Status::Error
                } else if outs.iter().any(|o| o.status == Status::Fail) {
                    Status::Fail
                } else {
                    Status::Pending
                };
                join(status, outs)
            }
        }
    }

    fn compile(&self, p: &Pattern, env: &Env) -> Compiled {
        Compiled::new(p, env)
    }

    fn events_rule(&mut self, r: &EventsRule, env: &mut Env) -> Outcome {
        let pat = self.compile(&r.pattern, env);
        let matched: Vec<usize> = (0..self.events().len())
            .filter(|i| pat.matches(self.events(), self.ix, *i))
            .collect();
        if matched.is_empty() {
            return Outcome::new(Status::Pending, "nothing like it seen yet");
        }
        let mut per_flow: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
        for &i in &matched {
            let e = &self.events()[i];
            per_flow
                .entry((e.network.as_str(), e.event.flow))
                .or_default()
                .push(i);
        }
        let flows = per_flow.len() as u64;
        let best = per_flow
            .values()
            .max_by_key(|v| (v.len(), std::cmp::Reverse(v[0])))
            .cloned()
            .unwrap_or_default();
        let n = matched.len() as u64;
        let ok = r.count.holds(n)
            && r.connections.is_none_or(|c| c.holds(flows))
            && r.per_connection.is_none_or(|c| c.holds(best.len() as u64));
        let mut seen = format!(
            "saw {n} matching event{} over {flows} TCP connection{}",
            plural(n),
            plural(flows)
        );
        if r.per_connection.is_some() {
            seen.push_str(&format!(", at most {} on one", best.len()));
        }
        // The evidence: the best connection's events when one connection
        // matters, otherwise the first event of each connection.
        let cited: Vec<usize> = if r.per_connection.is_some() {
            best.clone()
        } else {
            let mut firsts: Vec<usize> = per_flow.values().map(|v| v[0]).collect();
            firsts.sort_unstable();
            if firsts.len() < MAX_EVIDENCE {
                matched.clone()
            } else {
                firsts
            }
        };
        seen.push_str(&format!(": {}", lines(self.events(), &cited, 3)));
        if !ok {
            let mut want = vec![format!("{} such events", r.count.words())];
            if let Some(c) = r.connections {
                want.push(format!("over {} connections", c.words()));
            }
            if let Some(c) = r.per_connection {
                want.push(format!("{} of them on one connection", c.words()));
            }
            seen.push_str(&format!("; wanted {}", want.join(", ")));
        }
        Outcome {
            status: if ok { Status::Pass } else { Status::Fail },
            seen,
            evidence: cited
                .iter()
                .take(MAX_EVIDENCE)
                .map(|i| Evidence::of(&self.events()[*i]))
                .collect(),
        }
    }

    fn sequence(&mut self, r: &SequenceRule, env: &mut Env) -> Outcome {
        // Positive steps, each with the absent patterns just before it.
        let mut steps: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut pending_absent = Vec::new();
        for (i, s) in r.steps.iter().enumerate() {
            if s.absent {
                pending_absent.push(i);
            } else {
                steps.push((i, std::mem::take(&mut pending_absent)));
            }
        }
        let mut search = Search {
            rule: r,
            steps: &steps,
            best: Vec::new(),
            blocked: None,
        };
        let mut chosen = Vec::new();
        let found = self.search(&mut search, 0, 0, env, &mut chosen);
        let say = |k: usize| -> String {
            let st = &r.steps[steps[k].0];
            st.say.clone().unwrap_or_else(|| format!("step {}", k + 1))
        };
        match found {
            Err(()) => Outcome::new(
                Status::Error,
                "too many events to search; ask your instructor to regrade",
            ),
            Ok(Some((ids, bound))) => {
                *env = bound;
                let words: Vec<String> = ids
                    .iter()
                    .enumerate()
                    .map(|(k, i)| format!("{}: {}", say(k), self.events()[*i].line()))
                    .collect();
                Outcome {
                    status: Status::Pass,
                    seen: format!("saw {}", words.join("; then ")),
                    evidence: ids
                        .iter()
                        .map(|i| Evidence::of(&self.events()[*i]))
                        .collect(),
                }
            }
            Ok(None) if search.best.is_empty() => {
                Outcome::new(Status::Pending, format!("{} not seen yet", say(0)))
            }
            Ok(None) => {
                let best = search.best.clone();
                let k = best.len();
                let done: Vec<String> = best
                    .iter()
                    .enumerate()
                    .map(|(j, i)| format!("{}: {}", say(j), self.events()[*i].line()))
                    .collect();
                let mut seen = format!("saw {}", done.join("; then "));
                if k < steps.len() {
                    seen.push_str(&format!("; but not, after that, {}", say(k)));
                    if let Some(b) = search.blocked {
                        let a = &r.steps[b];
                        seen.push_str(&format!(
                            " without {} in between",
                            a.say
                                .clone()
                                .unwrap_or_else(|| "the event it excludes".into())
                        ));
                    }
                }
                Outcome {
                    status: Status::Fail,
                    seen,
                    evidence: best
                        .iter()
                        .map(|i| Evidence::of(&self.events()[*i]))
                        .collect(),
                }
            }
        }
    }

    /// Backtracking search for the positive step `k` from event `from`.
    /// `Err` when the budget runs out.
    #[allow(clippy::type_complexity)]
    fn search(
        &mut self,
        s: &mut Search,
        k: usize,
        from: usize,
        env: &Env,
        chosen: &mut Vec<usize>,
    ) -> Result<Option<(Vec<usize>, Env)>, ()> {
        if k == s.steps.len() {
            return Ok(Some((chosen.clone(), env.clone())));
        }
        let (si, absent) = &s.steps[k];
        let step = &s.rule.steps[*si];
        let pat = self.compile(&step.pattern, env);
        let absent: Vec<(usize, Compiled)> = absent
            .iter()
            .map(|a| (*a, self.compile(&s.rule.steps[*a].pattern, env)))
            .collect();
        let flow = chosen.first().map(|i| {
            let e = &self.events()[*i];
            (e.network.clone(), e.event.flow)
        });
        let events = self.input.events;
        for i in from..events.len() {
            if self.budget == 0 {
                return Err(());
            }
            self.budget -= 1;
            let e = &events[i];
            let on_flow = !s.rule.same_connection
                || flow
                    .as_ref()
                    .is_none_or(|(n, f)| *n == e.network && *f == e.event.flow);
            if on_flow && pat.matches(events, self.ix, i) {
                let mut env2 = env.clone();
                if bind(&step.bind, events, self.ix, i, &mut env2) {
                    chosen.push(i);
                    if chosen.len() > s.best.len() {
                        s.best = chosen.clone();
                        s.blocked = None;
                    }
                    if let Some(done) = self.search(s, k + 1, i + 1, &env2, chosen)? {
                        return Ok(Some(done));
                    }
                    chosen.pop();
                }
            }
            // An excluded event between the previous step and this one:
            // every later candidate has it in between too.
            if let Some((a, _)) = absent
                .iter()
                .find(|(_, p)| on_flow && p.matches(events, self.ix, i))
            {
                if chosen.len() == s.best.len() && chosen[..] == s.best[..] {
                    s.blocked = Some(*a);
                }
                break;
            }
        }
        Ok(None)
    }

    fn probe(&mut self, r: &ProbeRule, env: &mut Env) -> Outcome {
        let key = (r.node.clone(), r.probe.clone());
        let name = format!("the {} probe of {}", r.probe, r.node);
        let out = match self.input.probes.get(&key) {
            None => return Outcome::new(Status::Pending, format!("{name} has not run yet")),
            Some(ProbeOutput::Err(e)) => {
                return Outcome::new(Status::Error, format!("{name} failed: {e}"))
            }
            Some(ProbeOutput::Ok(v)) => v,
        };
        let path = env.render(&r.find);
        let Some(found) = json_path(out, &path) else {
            return Outcome::new(Status::Pending, format!("{name}: nothing at {path} yet"));
        };
        if let Some(m) = &r.value {
            let m = matcher::CompiledMatcher::new(m, env);
            let ok = m.holds(json_value(found).as_ref());
            let text = excerpt(found);
            if ok {
                bind_json(&r.bind, found, env);
            }
            return Outcome {
                status: if ok { Status::Pass } else { Status::Fail },
                seen: format!("{name}: {path} is {text}"),
                evidence: vec![Evidence::probe(format!("{name}: {path} = {text}"))],
            };
        }
        let Some((pattern, count)) = &r.items else {
            return Outcome::new(Status::Error, "probe rule without a test");
        };
        let items: Vec<&serde_json::Value> = match found {
            serde_json::Value::Array(a) => a.iter().collect(),
            serde_json::Value::Object(o) => o.values().collect(),
            _ => {
                return Outcome::new(
                    Status::Fail,
                    format!("{name}: {path} is {} (not a list)", excerpt(found)),
                )
            }
        };
        let fields: Vec<(String, matcher::CompiledMatcher)> = pattern
            .0
            .iter()
            .map(|(k, m)| (env.render(k), matcher::CompiledMatcher::new(m, env)))
            .collect();
        let matching: Vec<&serde_json::Value> = items
            .iter()
            .copied()
            .filter(|item| {
                fields.iter().all(|(k, m)| {
                    let v = json_path(item, k).and_then(json_value);
                    m.holds(v.as_ref())
                })
            })
            .collect();
        let n = matching.len() as u64;
        let ok = count.holds(n);
        if ok {
            if let Some(first) = matching.first() {
                bind_json(&r.bind, first, env);
            }
        }
        let what = if pattern.0.is_empty() {
            "item"
        } else {
            "matching item"
        };
        let mut seen = format!(
            "{name}: {n} {what}{} of {} at {path}",
            plural(n),
            items.len()
        );
        if let Some(first) = matching.first() {
            seen.push_str(&format!(", first {}", excerpt(first)));
        }
        if !ok {
            seen.push_str(&format!("; wanted {}", count.words()));
        }
        let status = if ok {
            Status::Pass
        } else if n == 0 && count.min > 0 {
            Status::Pending
        } else {
            Status::Fail
        };
        Outcome {
            status,
            evidence: vec![Evidence::probe(seen.clone())],
            seen,
        }
    }

    fn answer(&mut self, qid: &str) -> Outcome {
        let Some(q) = self.task.questions.iter().find(|q| q.id == qid) else {
            return Outcome::new(Status::Error, format!("no question {qid:?}"));
        };
        let latest = self
            .input
            .answers
            .iter()
            .filter(|a| a.task == self.task.id && a.question == qid)
            .max_by(|a, b| a.time.total_cmp(&b.time));
        let Some(a) = latest else {
            return Outcome::new(Status::Pending, "no answer submitted yet");
        };
        let expected = match applab_lab::expected_value(
            &q.expected,
            &self.input.lab.parameters,
            self.input.params,
            &self.input.lab.constants,
        ) {
            Ok(v) => v,
            Err(e) => return Outcome::new(Status::Error, format!("the expected value: {e}")),
        };
        let unit = q
            .unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default();
        let Some(v) = parse_number(&a.value) else {
            return Outcome::new(
                Status::Fail,
                format!("your answer {:?} is not a number", short(&a.value)),
            );
        };
        let diff = (v - expected).abs();
        let ok = match (q.abs, q.rel) {
            (None, None) => diff <= 1e-9 * expected.abs().max(1.0),
            (abs, rel) => {
                abs.is_some_and(|t| diff <= t) || rel.is_some_and(|t| diff <= t * expected.abs())
            }
        };
        // The expected value is never shown: the answer is the student's work.
        Outcome {
            status: if ok { Status::Pass } else { Status::Fail },
            seen: if ok {
                format!("your answer {v}{unit} is right")
            } else {
                format!("your answer {v}{unit} is not within the tolerance of the right value")
            },
            evidence: vec![Evidence::probe(format!(
                "answer to {qid}: {}",
                short(&a.value)
            ))],
        }
    }
}

struct Search<'r> {
    rule: &'r SequenceRule,
    steps: &'r [(usize, Vec<usize>)],
    /// The longest run of steps found, for a failure's sentence.
    best: Vec<usize>,
    /// The absent step that cut the best run short, if one did.
    blocked: Option<usize>,
}

fn join(status: Status, outs: Vec<Outcome>) -> Outcome {
    let seen: Vec<String> = outs.iter().map(|o| o.seen.clone()).collect();
    let mut evidence = Vec::new();
    let mut seen_ids = HashSet::new();
    for o in outs {
        for e in o.evidence {
            if e.event.is_none_or(|id| seen_ids.insert(id)) {
                evidence.push(e);
            }
        }
    }
    Outcome {
        status,
        seen: seen.join("; "),
        evidence,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// "1.2", "1,2", "1200 ms", " 0.97 " → the number.
pub fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim().replace(',', ".");
    let end = s
        .char_indices()
        .find(|(i, c)| {
            !(c.is_ascii_digit() || *c == '.' || ((*c == '-' || *c == '+') && *i == 0) || *c == 'e')
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let v: f64 = s[..end].parse().ok()?;
    v.is_finite().then_some(v)
}

/// Bind names from event `i` (or its reply); false if a field is missing
/// or its regex does not match.
fn bind(bs: &[Binding], events: &[NodeEvent], ix: &Index, i: usize, env: &mut Env) -> bool {
    for b in bs {
        let Some(v) = matcher::field(events, ix, i, &b.field) else {
            return false;
        };
        let texts: Vec<String> = match v {
            Value::Str(s) => vec![s.into_owned()],
            Value::Num(n) => vec![matcher::num_text(n)],
            Value::Bool(b) => vec![b.to_string()],
            Value::List(l) => l.into_iter().map(|s| s.into_owned()).collect(),
        };
        match texts.iter().find_map(|t| bound_value(b, t)) {
            Some(g) => env.bind(&b.name, g),
            None => return false,
        }
    }
    true
}

fn bind_json(bs: &[Binding], item: &serde_json::Value, env: &mut Env) {
    for b in bs {
        let v = if b.field == "." {
            Some(item)
        } else {
            json_path(item, &b.field)
        };
        let Some(text) = v.map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }) else {
            continue;
        };
        if let Some(g) = bound_value(b, &text) {
            env.bind(&b.name, g);
        }
    }
}

/// What a binding takes from a text: all of it, or its regex's first
/// group (or whole match); `None` when the regex does not match.
fn bound_value(b: &Binding, text: &str) -> Option<String> {
    match &b.regex {
        None => Some(text.to_string()),
        Some(r) => {
            let c = matcher::regex(r)?.captures(text)?;
            c.get(1)
                .or_else(|| c.get(0))
                .map(|m| m.as_str().to_string())
        }
    }
}

/// `a.b.0.c` into a JSON value.
fn json_path<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    if path == "." {
        return Some(v);
    }
    let mut cur = v;
    for key in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(o) => o.get(key)?,
            serde_json::Value::Array(a) => a.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn json_value(v: &serde_json::Value) -> Option<Value<'_>> {
    use std::borrow::Cow;
    Some(match v {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Num(n.as_f64()?),
        serde_json::Value::String(s) => Value::Str(Cow::Borrowed(s)),
        serde_json::Value::Array(a) => Value::List(
            a.iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(other.to_string()),
                })
                .collect(),
        ),
        serde_json::Value::Object(_) => Value::Str(Cow::Owned(v.to_string())),
    })
}

fn excerpt(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 240 {
        let mut t: String = s.chars().take(240).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// The tasks an event can change: those with a rule that looks at its type.
pub fn tasks_touched_by<'l>(lab: &'l Lab, event_type: &str) -> Vec<&'l Task> {
    lab.tasks
        .iter()
        .filter(|t| {
            t.checks.iter().any(|c| {
                c.rule
                    .event_types()
                    .iter()
                    .any(|ty| ty.as_deref().is_none_or(|ty| ty == event_type))
            })
        })
        .collect()
}

/// Every (node, probe) the lab's checks read, with the tasks that read it.
pub fn probes_of(lab: &Lab) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for t in &lab.tasks {
        for c in &t.checks {
            for p in c.rule.probes() {
                let v = out.entry(p).or_default();
                if !v.contains(&t.id) {
                    v.push(t.id.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
