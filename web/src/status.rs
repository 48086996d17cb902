//! The status words and icons of the Tasks & Groups page, used the same way everywhere.

use baton_schema::run::RunStatus;
use yew::prelude::*;

/// Icon and word for a run status.
pub fn label(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::Idle => ("✅", "Idle"),
        RunStatus::Triggered => ("🔄", "Triggered"),
        RunStatus::Started => ("🎬", "Started"),
        RunStatus::Running => ("▶️", "Running"),
        RunStatus::Success => ("✅", "Success"),
        RunStatus::Failed => ("❌", "Failed"),
        RunStatus::Terminated => ("⛔", "Terminated"),
        RunStatus::Skipped => ("⏭️", "Skipped"),
        RunStatus::Frozen => ("🧊", "Frozen"),
    }
}

/// A status badge; its class carries the status for styling and tests.
pub fn badge(status: RunStatus) -> Html {
    let (icon, word) = label(status);
    html! {
        <span class={classes!("status", format!("status-{}", status.as_str().to_lowercase()))} title={word}>
            { format!("{icon} {word}") }
        </span>
    }
}
