//! The run state machine: which transitions are legal, and what each event does to a run.
//!
//! `RunMachine::apply(event, now)` is pure; illegal transitions are errors, never panics, so a
//! late, duplicated or hostile event (from an agent or an operator) cannot corrupt a run.

use crate::error::UnknownWord;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Active, waiting for its time (or for its next attempt).
    Idle,
    /// Sent to an agent, not yet accepted.
    Triggered,
    /// Accepted by the agent, process not yet spawned.
    Started,
    /// Process spawned, pid known.
    Running,
    Success,
    Failed,
    Terminated,
    Skipped,
    Frozen,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        Self::Idle,
        Self::Triggered,
        Self::Started,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Terminated,
        Self::Skipped,
        Self::Frozen,
    ];

    /// A final status ends the run (until an operator modifies it).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Terminated | Self::Skipped)
    }

    /// On an agent: dispatched and not yet ended.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Triggered | Self::Started | Self::Running)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "IDLE",
            Self::Triggered => "TRIGGERED",
            Self::Started => "STARTED",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Terminated => "TERMINATED",
            Self::Skipped => "SKIPPED",
            Self::Frozen => "FROZEN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

impl TryFrom<String> for RunStatus {
    type Error = UnknownWord;
    fn try_from(word: String) -> Result<Self, Self::Error> {
        Self::ALL.into_iter().find(|v| v.as_str() == word).ok_or(UnknownWord { what: "a run status", word })
    }
}

impl From<RunStatus> for String {
    fn from(s: RunStatus) -> String {
        s.as_str().to_string()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run (or one attempt of it) ended as it did, or was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    ExitCode {
        code: i32,
    },
    Signal {
        signal: i32,
    },
    SpawnError {
        message: String,
    },
    Timeout {
        after_seconds: u32,
    },
    AgentLost,
    /// The agent no longer has the attempt: `cause` says why (its host was rebuilt, its state
    /// was wiped).
    AttemptLost {
        cause: String,
    },
    AcceptExpired,
    /// The agent refused the work (for example, it cannot become the run-as user).
    Refused {
        message: String,
    },
    TerminatedBy {
        user: String,
    },
    Holiday {
        reason: String,
    },
    Missed {
        by_seconds: i64,
    },
    /// Slots further back than the catch-up window, none of them run: one Skipped run (the
    /// latest of them) records them all.
    MissedMany {
        slots: u64,
        since: DateTime<Utc>,
        by_seconds: i64,
    },
    ModifiedBy {
        user: String,
    },
    RetryScheduled {
        next_attempt: u32,
        at: DateTime<Utc>,
    },
    Frozen,
    /// A dependency can no longer hold today.
    DependencyNotMet {
        expression: String,
    },
    /// Its group run ended without starting it (the group was skipped or failed first).
    GroupEnded,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExitCode { code } => write!(f, "exit code {code}"),
            Self::Signal { signal } => write!(f, "killed by signal {signal}"),
            Self::SpawnError { message } => write!(f, "could not start: {message}"),
            Self::Timeout { after_seconds } => write!(f, "timed out after {after_seconds} s"),
            Self::AgentLost => f.write_str("agent lost"),
            Self::AttemptLost { cause } => write!(f, "{cause}: attempt lost"),
            Self::AcceptExpired => f.write_str("accept expired"),
            Self::Refused { message } => write!(f, "refused by the agent: {message}"),
            Self::TerminatedBy { user } => write!(f, "terminated by {user}"),
            Self::Holiday { reason } => write!(f, "holiday: {reason}"),
            Self::Missed { by_seconds } => {
                write!(f, "missed by {by_seconds} s while the server was down")
            }
            Self::MissedMany { slots, since, by_seconds } => write!(
                f,
                "{slots} slots from {since} on missed while the server was down (this, the last of them, by {by_seconds} s): \
                 past the catch-up window, none was run"
            ),
            Self::ModifiedBy { user } => write!(f, "status modified by {user}"),
            Self::RetryScheduled { next_attempt, at } => {
                write!(f, "attempt {next_attempt} at {at}")
            }
            Self::Frozen => f.write_str("frozen"),
            Self::DependencyNotMet { expression } => write!(f, "dependency can no longer hold: {expression}"),
            Self::GroupEnded => f.write_str("its group run ended"),
        }
    }
}

/// How an attempt's process ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Exited { code: i32 },
    Signalled { signal: i32 },
    SpawnFailed { message: String },
    TimedOut { after_seconds: u32 },
    Terminated { user: String },
}

/// Something that happens to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// Sent to an agent (the first attempt, or a retry whose time has come).
    Dispatched {
        agent: String,
    },
    Accepted,
    Spawned {
        pid: u32,
    },
    Ended {
        outcome: Outcome,
    },
    AgentRefused {
        message: String,
    },
    AcceptExpired,
    AgentLost,
    /// The agent the attempt was sent to no longer has it (see `Reason::AttemptLost`).
    AttemptLost {
        cause: String,
    },
    /// An operator terminated a run that had not reached an agent process yet.
    Terminate {
        user: String,
    },
    Skip {
        reason: Reason,
    },
    Freeze,
    Unfreeze,
    ModifyStatus {
        to: RunStatus,
        user: String,
    },
}

/// One stored step of a run's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: RunStatus,
    pub to: RunStatus,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub reason: Option<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition: {event} while {status} (attempt {attempt})")]
pub struct IllegalTransition {
    pub status: RunStatus,
    pub attempt: u32,
    pub event: String,
}

/// Retry policy of the run's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Further attempts after the first (0-10).
    pub retry_attempts: u32,
    pub retry_delay_seconds: u32,
}

/// The state of one run, driven by events. Attempts are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMachine {
    pub status: RunStatus,
    pub attempt: u32,
    pub retry: RetryPolicy,
    pub reason: Option<Reason>,
    /// When the next attempt is due, while Idle between attempts.
    pub retry_at: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    pub pid: Option<u32>,
}

impl RunMachine {
    pub fn new(retry: RetryPolicy) -> Self {
        Self { status: RunStatus::Idle, attempt: 0, retry, reason: None, retry_at: None, agent: None, pid: None }
    }

    /// Applies `event` at `now`, returning the transitions it caused (a failed attempt with retries
    /// left yields two: to Failed for the attempt, then back to Idle until the retry).
    pub fn apply(&mut self, event: &RunEvent, now: DateTime<Utc>) -> Result<Vec<Transition>, IllegalTransition> {
        use RunStatus::*;
        let illegal = |m: &Self| IllegalTransition {
            status: m.status,
            attempt: m.attempt,
            event: serde_json::to_string(event).unwrap_or_else(|_| format!("{event:?}")),
        };
        let mut out = Vec::new();
        match (self.status, event) {
            (Idle, RunEvent::Dispatched { agent }) => {
                if self.retry_at.is_some_and(|t| now < t) {
                    return Err(illegal(self));
                }
                self.attempt += 1;
                self.agent = Some(agent.clone());
                self.pid = None;
                self.retry_at = None;
                self.step(&mut out, Triggered, now, None);
            }
            (Triggered, RunEvent::Accepted) => self.step(&mut out, Started, now, None),
            (Started, RunEvent::Spawned { pid }) => {
                self.pid = Some(*pid);
                self.step(&mut out, Running, now, None);
            }
            (Started | Running, RunEvent::Ended { outcome }) => {
                let (to, reason) = match outcome {
                    Outcome::Exited { code: 0 } => (Success, None),
                    Outcome::Exited { code } => (Failed, Some(Reason::ExitCode { code: *code })),
                    Outcome::Signalled { signal } => (Failed, Some(Reason::Signal { signal: *signal })),
                    Outcome::SpawnFailed { message } => (Failed, Some(Reason::SpawnError { message: message.clone() })),
                    Outcome::TimedOut { after_seconds } => {
                        (Failed, Some(Reason::Timeout { after_seconds: *after_seconds }))
                    }
                    Outcome::Terminated { user } => (Terminated, Some(Reason::TerminatedBy { user: user.clone() })),
                };
                self.finish_attempt(&mut out, to, reason, now);
            }
            (Triggered, RunEvent::AgentRefused { message }) => {
                self.finish_attempt(&mut out, Failed, Some(Reason::Refused { message: message.clone() }), now)
            }
            (Triggered, RunEvent::AcceptExpired) => {
                self.finish_attempt(&mut out, Failed, Some(Reason::AcceptExpired), now)
            }
            (Triggered | Started | Running, RunEvent::AgentLost) => {
                self.finish_attempt(&mut out, Failed, Some(Reason::AgentLost), now)
            }
            (Triggered | Started | Running, RunEvent::AttemptLost { cause }) => {
                self.finish_attempt(&mut out, Failed, Some(Reason::AttemptLost { cause: cause.clone() }), now)
            }
            (Idle | Triggered | Started, RunEvent::Terminate { user }) => {
                self.retry_at = None;
                self.step(&mut out, Terminated, now, Some(Reason::TerminatedBy { user: user.clone() }));
            }
            (Idle, RunEvent::Skip { reason }) => self.step(&mut out, Skipped, now, Some(reason.clone())),
            (Idle, RunEvent::Freeze) => self.step(&mut out, Frozen, now, Some(Reason::Frozen)),
            (Frozen, RunEvent::Unfreeze) => self.step(&mut out, Idle, now, None),
            (from, RunEvent::ModifyStatus { to, user })
                if from.is_final() && from != *to && matches!(to, Success | Failed | Skipped) =>
            {
                self.step(&mut out, *to, now, Some(Reason::ModifiedBy { user: user.clone() }));
            }
            _ => return Err(illegal(self)),
        }
        Ok(out)
    }

    fn step(&mut self, out: &mut Vec<Transition>, to: RunStatus, now: DateTime<Utc>, reason: Option<Reason>) {
        out.push(Transition { from: self.status, to, attempt: self.attempt, at: now, reason: reason.clone() });
        self.status = to;
        self.reason = reason;
    }

    fn finish_attempt(&mut self, out: &mut Vec<Transition>, to: RunStatus, reason: Option<Reason>, now: DateTime<Utc>) {
        self.step(out, to, now, reason);
        if to == RunStatus::Failed && self.attempt <= self.retry.retry_attempts {
            let at = now + Duration::seconds(i64::from(self.retry.retry_delay_seconds));
            self.retry_at = Some(at);
            let next_attempt = self.attempt + 1;
            self.step(out, RunStatus::Idle, now, Some(Reason::RetryScheduled { next_attempt, at }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn run(m: &mut RunMachine, events: &[RunEvent]) -> Vec<RunStatus> {
        events.iter().enumerate().flat_map(|(i, e)| m.apply(e, t(i as i64)).unwrap()).map(|tr| tr.to).collect()
    }

    fn dispatched() -> RunEvent {
        RunEvent::Dispatched { agent: "a1".into() }
    }

    #[test]
    fn stored_words_read_back_as_the_status_that_wrote_them_and_nothing_else() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::try_from(String::from(s)), Ok(s));
        }
        for word in ["success", "DONE", ""] {
            let unknown = UnknownWord { what: "a run status", word: word.to_string() };
            assert_eq!(RunStatus::try_from(word.to_string()), Err(unknown));
        }
    }

    #[test]
    fn happy_path() {
        let mut m = RunMachine::new(RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 });
        let got = run(
            &mut m,
            &[
                dispatched(),
                RunEvent::Accepted,
                RunEvent::Spawned { pid: 42 },
                RunEvent::Ended { outcome: Outcome::Exited { code: 0 } },
            ],
        );
        use RunStatus::*;
        assert_eq!(got, vec![Triggered, Started, Running, Success]);
        assert_eq!((m.attempt, m.pid), (1, Some(42)));
    }

    #[test]
    fn retries_until_the_third_attempt_succeeds() {
        use RunStatus::*;
        let mut m = RunMachine::new(RetryPolicy { retry_attempts: 2, retry_delay_seconds: 30 });
        let fail = RunEvent::Ended { outcome: Outcome::Exited { code: 1 } };
        let mut statuses = Vec::new();
        let mut now = 0;
        for attempt in 1..=3 {
            for e in [dispatched(), RunEvent::Accepted, RunEvent::Spawned { pid: attempt }] {
                statuses.extend(m.apply(&e, t(now)).unwrap().into_iter().map(|tr| (tr.attempt, tr.to)));
            }
            let end = if attempt < 3 { fail.clone() } else { RunEvent::Ended { outcome: Outcome::Exited { code: 0 } } };
            statuses.extend(m.apply(&end, t(now)).unwrap().into_iter().map(|tr| (tr.attempt, tr.to)));
            // Dispatching before the retry delay is refused.
            if attempt < 3 {
                assert!(m.apply(&dispatched(), t(now + 29)).is_err());
            }
            now += 30;
        }
        assert_eq!(m.status, Success);
        assert_eq!(
            statuses,
            vec![
                (1, Triggered),
                (1, Started),
                (1, Running),
                (1, Failed),
                (1, Idle),
                (2, Triggered),
                (2, Started),
                (2, Running),
                (2, Failed),
                (2, Idle),
                (3, Triggered),
                (3, Started),
                (3, Running),
                (3, Success),
            ]
        );
    }

    #[test]
    fn last_attempt_decides() {
        let mut m = RunMachine::new(RetryPolicy { retry_attempts: 1, retry_delay_seconds: 0 });
        for _ in 0..2 {
            m.apply(&dispatched(), t(0)).unwrap();
            m.apply(&RunEvent::AcceptExpired, t(0)).unwrap();
        }
        assert_eq!((m.status, m.attempt, m.reason.clone()), (RunStatus::Failed, 2, Some(Reason::AcceptExpired)));
    }

    #[test]
    fn illegal_transitions_are_errors() {
        let mut m = RunMachine::new(RetryPolicy { retry_attempts: 0, retry_delay_seconds: 0 });
        assert!(m.apply(&RunEvent::Accepted, t(0)).is_err());
        assert!(m.apply(&RunEvent::Spawned { pid: 1 }, t(0)).is_err());
        m.apply(&dispatched(), t(0)).unwrap();
        assert!(m.apply(&dispatched(), t(0)).is_err(), "no second dispatch of one attempt");
        m.apply(&RunEvent::Accepted, t(0)).unwrap();
        m.apply(&RunEvent::Spawned { pid: 7 }, t(0)).unwrap();
        m.apply(&RunEvent::Ended { outcome: Outcome::Signalled { signal: 9 } }, t(1)).unwrap();
        let err = m.apply(&RunEvent::Ended { outcome: Outcome::Exited { code: 0 } }, t(2)).unwrap_err();
        assert_eq!(err.status, RunStatus::Failed);
        assert_eq!(m.status, RunStatus::Failed, "a duplicate end changes nothing");
        assert!(m.apply(&RunEvent::ModifyStatus { to: RunStatus::Running, user: "op".into() }, t(3)).is_err());
        m.apply(&RunEvent::ModifyStatus { to: RunStatus::Success, user: "op".into() }, t(3)).unwrap();
        assert_eq!(m.reason, Some(Reason::ModifiedBy { user: "op".into() }));
    }

    #[test]
    fn freeze_skip_terminate() {
        let p = RetryPolicy { retry_attempts: 3, retry_delay_seconds: 60 };
        let mut m = RunMachine::new(p);
        m.apply(&RunEvent::Freeze, t(0)).unwrap();
        assert!(m.apply(&dispatched(), t(0)).is_err());
        m.apply(&RunEvent::Unfreeze, t(1)).unwrap();
        m.apply(&RunEvent::Skip { reason: Reason::Holiday { reason: "x".into() } }, t(2)).unwrap();
        assert_eq!(m.status, RunStatus::Skipped);
        let mut m = RunMachine::new(p);
        m.apply(&dispatched(), t(0)).unwrap();
        m.apply(&RunEvent::Accepted, t(0)).unwrap();
        m.apply(&RunEvent::Spawned { pid: 9 }, t(0)).unwrap();
        m.apply(&RunEvent::Ended { outcome: Outcome::Terminated { user: "op".into() } }, t(1)).unwrap();
        assert_eq!(m.status, RunStatus::Terminated, "terminated is final: no retry");
        let mut m = RunMachine::new(p);
        m.apply(&dispatched(), t(0)).unwrap();
        m.apply(&RunEvent::Accepted, t(0)).unwrap();
        m.apply(&RunEvent::Spawned { pid: 9 }, t(0)).unwrap();
        m.apply(&RunEvent::Ended { outcome: Outcome::TimedOut { after_seconds: 5 } }, t(5)).unwrap();
        assert_eq!((m.status, m.attempt), (RunStatus::Idle, 1), "a timeout is retried");
    }
}
