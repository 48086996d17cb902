//! Baton's domain core: the vocabulary and rules every other crate shares.
//!
//! Everything here is pure: no IO, no clock reads (time is always an argument), no database and no
//! actors, so that scheduling and state-machine decisions are unit-testable and the crate compiles
//! for wasm32 (the web UI uses the same parsers for inline validation).

pub mod access;
pub mod agent;
pub mod alert;
pub mod calendar;
pub mod clock;
pub mod definition;
pub mod dependency;
pub mod document;
pub mod error;
pub mod flow;
pub mod ids;
pub mod names;
pub mod placeholder;
pub mod run;
pub mod schedule;

pub use error::{FieldError, FieldErrors};
