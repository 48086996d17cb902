//! One module per page.

pub mod adhoc;
pub mod admin;
pub mod agents;
pub mod calendars;
pub mod dashboard;
pub mod login;
pub mod runs;
pub mod scheduler;
pub mod tasks;
