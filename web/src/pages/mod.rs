//! One module per page.

pub mod agents;
pub mod dashboard;
pub mod login;
pub mod runs;
pub mod scheduler;
pub mod tasks;
