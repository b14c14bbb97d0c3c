//! The states a student's topology and its nodes are in, as types: the
//! API sends them, the CLI and the panel match on them (never on words).

use applab_runtime::ContainerState;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the last convergence pass of a student got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not yet taken by a pass (launch just stored it).
    Queued,
    Networks,
    Containers,
    Starting,
    Ready,
    Failed,
}

impl Phase {
    /// A pass is working on the topology now.
    pub fn in_flight(self) -> bool {
        !matches!(self, Phase::Ready | Phase::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Networks => "networks",
            Phase::Containers => "containers",
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase with the error that ended it, if it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Progress {
    pub fn at(phase: Phase) -> Self {
        Progress { phase, error: None }
    }

    pub fn failed(error: String) -> Self {
        Progress {
            phase: Phase::Failed,
            error: Some(error),
        }
    }
}

/// "ready", or "failed: why".
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{}: {e}", self.phase),
            None => write!(f, "{}", self.phase),
        }
    }
}

/// A student's topology as probed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentState {
    /// Being created or started; not every node answers yet.
    Starting,
    /// Every node answers (or was stopped on purpose).
    Ready,
    /// Converged once, and a node stopped answering since.
    Degraded,
    /// The last pass failed; `StudentStatus::error` says why.
    Failed,
}

impl StudentState {
    /// The live probes decide: every node answering is ready whatever an
    /// earlier pass said; otherwise the pass's failure, if it failed.
    pub fn of(progress: Option<&Progress>, all_answer: bool) -> Self {
        match (progress.map(|p| p.phase), all_answer) {
            (_, true) => StudentState::Ready,
            (Some(Phase::Failed), false) => StudentState::Failed,
            (Some(Phase::Ready), false) | (None, false) => StudentState::Degraded,
            (Some(_), false) => StudentState::Starting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StudentState::Starting => "starting",
            StudentState::Ready => "ready",
            StudentState::Degraded => "degraded",
            StudentState::Failed => "failed",
        }
    }
}

impl fmt::Display for StudentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's container as the engine reports it, or missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// No container for the node.
    Missing,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Created => "created",
            NodeState::Running => "running",
            NodeState::Paused => "paused",
            NodeState::Restarting => "restarting",
            NodeState::Removing => "removing",
            NodeState::Exited => "exited",
            NodeState::Dead => "dead",
            NodeState::Missing => "missing",
        }
    }
}

impl From<&ContainerState> for NodeState {
    fn from(s: &ContainerState) -> Self {
        match s {
            ContainerState::Created => NodeState::Created,
            ContainerState::Running => NodeState::Running,
            ContainerState::Exited => NodeState::Exited,
            ContainerState::Other(o) => match o.as_str() {
                "paused" => NodeState::Paused,
                "restarting" => NodeState::Restarting,
                "removing" => NodeState::Removing,
                "exited" => NodeState::Exited,
                // Docker's set is closed; anything else cannot run as is.
                _ => NodeState::Dead,
            },
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_decide_over_the_last_pass() {
        let failed = Progress::failed("no image".into());
        let starting = Progress::at(Phase::Containers);
        let ready = Progress::at(Phase::Ready);
        assert_eq!(StudentState::of(Some(&failed), true), StudentState::Ready);
        assert_eq!(StudentState::of(Some(&failed), false), StudentState::Failed);
        assert_eq!(
            StudentState::of(Some(&starting), false),
            StudentState::Starting
        );
        assert_eq!(
            StudentState::of(Some(&ready), false),
            StudentState::Degraded
        );
        assert_eq!(StudentState::of(None, false), StudentState::Degraded);
    }

    #[test]
    fn states_travel_as_words() {
        assert_eq!(
            serde_json::to_string(&StudentState::Ready).unwrap(),
            "\"ready\""
        );
        assert_eq!(
            serde_json::to_string(&NodeState::Missing).unwrap(),
            "\"missing\""
        );
        let p: Progress = serde_json::from_str(r#"{"phase":"failed","error":"x"}"#).unwrap();
        assert_eq!(p, Progress::failed("x".into()));
        assert_eq!(p.to_string(), "failed: x");
        assert_eq!(Progress::at(Phase::Networks).to_string(), "networks");
        for s in [
            StudentState::Starting,
            StudentState::Degraded,
            StudentState::Failed,
        ] {
            let back: StudentState =
                serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(
            NodeState::from(&ContainerState::Other("paused".into())),
            NodeState::Paused
        );
    }
}
