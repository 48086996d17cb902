//! The wire protocol between the server and its agents, versioned: `agent::v1`.
//!
//! JSON text frames, one message each, tagged by `type`. Every agent event that changes a run
//! carries a sequence number: the agent appends it to its durable log before sending, the server
//! stores it and acknowledges by sequence, and ignores any sequence it has already seen, so a
//! replay after a reconnect loses nothing and counts nothing twice. `AgentStatus` is whether an
//! agent is connected to some server.

use crate::error::UnknownWord;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether an agent is connected to a server (as stored, published and shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    Online,
    Offline,
}

impl AgentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Online => "ONLINE",
            Self::Offline => "OFFLINE",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for AgentStatus {
    type Error = UnknownWord;
    fn try_from(word: String) -> Result<Self, Self::Error> {
        let known = [Self::Online, Self::Offline].into_iter().find(|v| v.as_str() == word);
        known.ok_or(UnknownWord { what: "an agent status", word })
    }
}

pub mod v1 {
    use crate::ids::RunId;
    use crate::run::Outcome;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    pub const PROTOCOL_VERSION: u32 = 1;
    /// Frames larger than this are refused by both sides.
    pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

    /// Which output stream a chunk belongs to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Stream {
        Stdout,
        Stderr,
    }

    impl Stream {
        /// As stored and as the API names it: `stdout` or `stderr`.
        pub fn as_str(self) -> &'static str {
            match self {
                Self::Stdout => "stdout",
                Self::Stderr => "stderr",
            }
        }

        pub fn parse(s: &str) -> Option<Self> {
            match s {
                "stdout" => Some(Self::Stdout),
                "stderr" => Some(Self::Stderr),
                _ => None,
            }
        }
    }

    impl TryFrom<String> for Stream {
        type Error = crate::error::UnknownWord;
        fn try_from(word: String) -> Result<Self, Self::Error> {
            Self::parse(&word).ok_or(crate::error::UnknownWord { what: "stdout or stderr", word })
        }
    }

    /// The agent's resource figures, sent with each heartbeat.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct AgentStats {
        pub cpu_percent: f32,
        pub memory_percent: f32,
        pub uptime_seconds: u64,
        pub running: u32,
        /// Writes to the agent's own state (journals, acknowledgements) that failed since it
        /// started; none is expected, each is also in the agent's log.
        #[serde(default)]
        pub write_failures: u64,
        /// Why the agent is degraded now: the last of its writes to its own state that failed
        /// since the heartbeat before (a full disk, say); None while they work.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub degraded: Option<String>,
    }

    /// Messages from the agent to the server.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum AgentMsg {
        /// The first frame: who the agent is, and the highest sequence it knows was acknowledged.
        Hello {
            protocol: u32,
            token: String,
            name: String,
            hostname: String,
            queues: Vec<String>,
            version: String,
            os: String,
            last_acked_seq: u64,
            /// Names the agent's state: made with its state directory, so an agent whose state
            /// was made anew under the same name (a rebuilt host) is a new incarnation, whose
            /// events are numbered apart from the old one's. Empty from agents before it.
            #[serde(default)]
            incarnation: String,
            /// The attempts whose files the agent holds; an attempt the server has as started or
            /// running on it but not in here is lost. None from agents before it.
            #[serde(default)]
            attempts: Option<Vec<AttemptRef>>,
        },
        Heartbeat {
            stats: AgentStats,
            /// The attempts whose files the agent holds now (None from agents before it): one the
            /// server has as started or running on it but not in here was lost, and fails.
            #[serde(default)]
            attempts: Option<Vec<AttemptRef>>,
        },
        /// A run event, durable on the agent until acknowledged.
        Event { seq: u64, run_id: RunId, attempt: u32, event: AgentEvent },
        /// The agent restarted while an attempt with credentials ran: it asks for their values
        /// again (they are never on its disk) to mask the output still to send.
        SecretsWanted { run_id: RunId, attempt: u32, credentials: Vec<CredentialVersion> },
    }

    /// One attempt of one run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct AttemptRef {
        pub run_id: RunId,
        pub attempt: u32,
    }

    /// A credential a dispatch carried, by key and version (never its value).
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct CredentialVersion {
        pub key: String,
        pub version: i64,
    }

    /// What happened to a run on the agent.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum AgentEvent {
        Accepted,
        /// The agent will not run it (it cannot become the user, cannot write the job, ...).
        Refused {
            reason: String,
        },
        Spawned {
            pid: u32,
        },
        /// A chunk of output; `offset` is the byte offset of `data` in the stream.
        Output {
            stream: Stream,
            offset: u64,
            data: String,
        },
        Ended {
            outcome: Outcome,
        },
    }

    /// Messages from the server to the agent.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ServerMsg {
        Welcome {
            protocol: u32,
            server_version: String,
            heartbeat_seconds: u32,
            acked_seq: u64,
        },
        /// The connection is refused; the server closes it after this frame.
        Refused {
            reason: String,
        },
        Dispatch(Dispatch),
        Terminate {
            run_id: RunId,
            attempt: u32,
            grace_seconds: u32,
            by: String,
        },
        /// Everything up to and including `seq` is stored.
        Ack {
            seq: u64,
        },
        /// A frame the server could not use; the connection stays open.
        Error {
            code: String,
            message: String,
        },
        /// The answer to `SecretsWanted`: the values the attempt was dispatched with.
        Secrets {
            run_id: RunId,
            attempt: u32,
            values: Vec<String>,
        },
        /// The answer to `SecretsWanted` when the values cannot be given again (a credential was
        /// rotated or deleted since, or the attempt is not this agent's).
        NoSecrets {
            run_id: RunId,
            attempt: u32,
            reason: String,
        },
    }

    /// Work for the agent: one attempt of one run.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Dispatch {
        pub run_id: RunId,
        pub attempt: u32,
        pub task: String,
        pub command: String,
        pub run_as_user: String,
        pub env: BTreeMap<String, String>,
        pub stdout_path: Option<String>,
        pub stderr_path: Option<String>,
        pub max_run_time_seconds: u32,
        pub kill_grace_seconds: u32,
        /// Values of the credentials in `env`: the agent masks them in the output it sends.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub secrets: Vec<String>,
        /// Which credentials those are, to ask for them again after a restart.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub credentials: Vec<CredentialVersion>,
    }

    /// Parses a frame from an agent, with a short error that is safe to send back.
    pub fn parse_agent_frame(text: &str) -> Result<AgentMsg, String> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(format!("frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}", text.len()));
        }
        serde_json::from_str(text).map_err(|e| format!("malformed frame: {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn streams_read_back_what_they_store() {
            for s in [Stream::Stdout, Stream::Stderr] {
                assert_eq!(Stream::parse(s.as_str()), Some(s));
                assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            }
            assert_eq!(Stream::parse("stdin"), None);
        }

        #[test]
        fn frames_are_tagged_json() {
            let m = AgentMsg::Event { seq: 7, run_id: RunId(3), attempt: 1, event: AgentEvent::Spawned { pid: 99 } };
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(text, r#"{"type":"event","seq":7,"run_id":3,"attempt":1,"event":{"kind":"spawned","pid":99}}"#);
            assert_eq!(parse_agent_frame(&text).unwrap(), m);
            let end = AgentEvent::Ended { outcome: Outcome::Exited { code: 2 } };
            assert_eq!(
                serde_json::to_string(&end).unwrap(),
                r#"{"kind":"ended","outcome":{"kind":"exited","code":2}}"#
            );
        }

        #[test]
        fn credentials_are_asked_for_by_key_and_version() {
            let ask = AgentMsg::SecretsWanted {
                run_id: RunId(3),
                attempt: 1,
                credentials: vec![CredentialVersion { key: "db/password".into(), version: 2 }],
            };
            let text = serde_json::to_string(&ask).unwrap();
            assert_eq!(
                text,
                r#"{"type":"secrets_wanted","run_id":3,"attempt":1,"credentials":[{"key":"db/password","version":2}]}"#
            );
            assert_eq!(parse_agent_frame(&text).unwrap(), ask);
            let no = ServerMsg::NoSecrets { run_id: RunId(3), attempt: 1, reason: "rotated".into() };
            let text = serde_json::to_string(&no).unwrap();
            assert_eq!(text, r#"{"type":"no_secrets","run_id":3,"attempt":1,"reason":"rotated"}"#);
        }

        #[test]
        fn bad_frames_are_errors() {
            assert!(parse_agent_frame("garbage").unwrap_err().starts_with("malformed frame"));
            assert!(parse_agent_frame(r#"{"type":"launch_missiles"}"#).is_err());
            assert!(parse_agent_frame(&" ".repeat(MAX_FRAME_BYTES + 1)).unwrap_err().contains("exceeds"));
        }
    }
}
