//! The JSON API's requests and replies: one set of types that the web crate
//! serves and the CLI sends and reads, so the two cannot drift apart.
//! Every request names its run, or leaves it out when only one exists.

use crate::captures::{self, Frame, NodeEvent};
use crate::store::{HistoryRow, SubmissionRow};
use crate::{Credential, CredentialInfo};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// `GET /api/health`, the only request without the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub version: String,
    /// Where students log in.
    pub panel_url: String,
}

/// `POST /api/launch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRequest {
    pub run: String,
    /// The lab folder as a tar, base64.
    pub lab_tar: String,
    pub roster: Vec<crate::roster::Entry>,
}

/// `?run=&student=` of the read-only requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunQuery {
    pub run: Option<String>,
    pub student: Option<String>,
}

/// `GET /api/progress`: where each student's last convergence pass got
/// to, from the controller's memory alone (no engine call, no probe), so
/// a waiting launch can poll it while the engine is busiest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunProgress {
    pub run: String,
    pub students: Vec<StudentProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentProgress {
    pub id: String,
    /// None: no pass since this controller started.
    pub phase: Option<crate::Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/reset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentRequest {
    pub run: Option<String>,
    pub student: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetDone {
    pub run: String,
    pub student: String,
    pub reset: bool,
}

/// `POST /api/node`: stop or start one node; the reply repeats it with the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRequest {
    pub run: Option<String>,
    pub student: String,
    pub node: String,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDone {
    pub run: String,
    pub student: String,
    pub node: String,
    pub running: bool,
}

/// `POST /api/shape`: what is given replaces the lab file's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShapeRequest {
    pub run: Option<String>,
    /// None: every student of the run.
    pub student: Option<String>,
    pub node: String,
    pub network: String,
    pub delay_us: Option<u64>,
    pub rate_bps: Option<u64>,
    /// A fraction, 0 to 1.
    pub loss: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShapeDone {
    pub run: String,
    /// The students whose link changed.
    pub students: Vec<String>,
    pub node: String,
    pub network: String,
}

/// `POST /api/teardown`: a whole run, or one student of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeardownRequest {
    pub run: Option<String>,
    pub student: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeardownDone {
    pub run: String,
    pub student: Option<String>,
    pub removed: bool,
}

/// `POST /api/exec`: a command in a student's node, its argv.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub run: Option<String>,
    pub student: String,
    pub node: String,
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecDone {
    pub exit_code: i64,
    /// The output as text (invalid UTF-8 replaced).
    pub stdout: String,
    pub stderr: String,
}

/// `POST /api/credentials`: list who has one, or reissue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialsRequest {
    pub run: Option<String>,
    pub student: Option<String>,
    #[serde(default)]
    pub reissue: bool,
}

/// The listing (`students`) or the new passwords (`reissued`, shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialsDone {
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub students: Option<Vec<CredentialInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissued: Option<Vec<Credential>>,
}

/// `GET /api/capture/{frames,events,pcap}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaptureQuery {
    pub run: Option<String>,
    pub student: String,
    pub network: Option<String>,
    pub node: Option<String>,
    pub protocol: Option<String>,
    /// Seconds since the epoch.
    pub since: Option<f64>,
    pub until: Option<f64>,
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

impl CaptureQuery {
    /// At most this many items a page.
    pub const MAX_LIMIT: usize = 10_000;

    pub fn query(&self) -> captures::Query {
        captures::Query {
            network: self.network.clone(),
            node: self.node.clone(),
            protocol: self.protocol.clone(),
            since: self.since,
            until: self.until,
            flow: None,
            offset: self.offset,
            limit: self.limit.unwrap_or(500).min(Self::MAX_LIMIT),
        }
    }
}

/// A page of a student's frame list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FramePage {
    pub run: String,
    pub student: String,
    /// How many frames matched (the page holds `offset..` of them).
    pub total: usize,
    pub offset: usize,
    /// Each network's tap: open or not.
    pub taps: HashMap<String, bool>,
    pub frames: Vec<Frame>,
}

/// A page of a student's protocol events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    pub run: String,
    pub student: String,
    pub total: usize,
    pub offset: usize,
    pub events: Vec<NodeEvent>,
}

/// `GET /api/results/history`: verdict changes and answers, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub run: String,
    pub student: String,
    pub history: Vec<HistoryRow>,
    pub submissions: Vec<SubmissionRow>,
}

/// `POST /api/check`: evaluate now (probes first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRequest {
    pub run: Option<String>,
    pub student: Option<String>,
    /// Forget earlier verdicts and decide again from the evidence.
    #[serde(default)]
    pub recheck: bool,
}

/// `POST /api/answer`: a student's answer to a task's question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerRequest {
    pub run: Option<String>,
    pub student: String,
    pub task: String,
    pub question: String,
    pub value: String,
}

/// `GET /api/grades?format=csv|json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradesQuery {
    pub run: Option<String>,
    pub format: Option<String>,
}

/// `POST /api/staff`: an instructor or assistant account for the panel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffRequest {
    pub name: String,
    /// instructor or assistant.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffAdded {
    pub name: String,
    pub role: String,
    /// Shown once; only its hash is kept.
    pub password: String,
    /// False: the account existed and has a new password now.
    pub created: bool,
}

/// `GET /api/staff`: one account (never its hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffMember {
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

/// Every failed request's body, with the status saying which kind
/// (`crate::problem::status_of`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
