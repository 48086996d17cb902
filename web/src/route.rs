//! The UI's client-side routes; the server answers every one of them with the same page.

use yew_router::prelude::*;

/// The client-side routes; the server answers every one of them with the same page.
#[derive(Clone, Routable, PartialEq)]
pub enum Route {
    #[at("/")]
    Dashboard,
    #[at("/task-runs")]
    TaskRuns,
    #[at("/task-runs/:id")]
    Run { id: i64 },
    #[at("/agents")]
    Agents,
    #[at("/scheduler")]
    Scheduler,
    #[at("/tasks")]
    Tasks,
    #[at("/adhoc")]
    Adhoc,
    #[at("/calendars")]
    Calendars,
    #[at("/integrations")]
    Integrations,
    #[at("/admin")]
    Admin,
    #[not_found]
    #[at("/404")]
    NotFound,
}
