//! The Baton server: storage, HTTP and GraphQL wiring, configuration and the command line.
//!
//! The binary `baton` (src/main.rs) is a thin shell over this library, so tests can reach the
//! storage layer directly.

pub mod agent_gateway;
pub mod agents;
pub mod alerts;
pub mod app;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod driver;
pub mod engine;
pub mod graphql_socket;
pub mod http;
pub mod lease;
pub mod service;
pub mod socket_caps;
pub mod vault;
pub mod web_guard;
