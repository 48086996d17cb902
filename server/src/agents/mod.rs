//! The agents known to this server: the hub knows which are online, refuses a second agent of a
//! name already online, and marks an agent OFFLINE (no new work) after missed heartbeats. Their
//! socket is `agent_gateway`, above this and the driver.

mod hub;

pub use hub::{AgentChange, AgentHub, HeartbeatPolicy};
pub(crate) use hub::{Conn, Serves};
