//! The agent gateway: agents connect to `/agent` over WebSocket, authenticate with an enrollment
//! token, register, and heartbeat. The hub knows which agents are online, refuses a second agent
//! of a name already online, and marks an agent OFFLINE (no new work) after missed heartbeats.

mod hub;
mod socket;

pub use hub::{AgentChange, AgentHub, HeartbeatPolicy};
pub use socket::{agent_socket, MAX_SEQ_AHEAD};
