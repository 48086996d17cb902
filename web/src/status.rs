//! The status words and icons of the Tasks & Groups page, used the same way everywhere.

use yew::prelude::*;

/// Icon and word for a run status as the API spells it (SUCCESS, FAILED, ...).
pub fn label(status: &str) -> (&'static str, &'static str) {
    match status {
        "IDLE" => ("✅", "Idle"),
        "TRIGGERED" => ("🔄", "Triggered"),
        "STARTED" => ("🎬", "Started"),
        "RUNNING" => ("▶️", "Running"),
        "SUCCESS" => ("✅", "Success"),
        "FAILED" => ("❌", "Failed"),
        "TERMINATED" => ("⛔", "Terminated"),
        "SKIPPED" => ("⏭️", "Skipped"),
        "FROZEN" => ("🧊", "Frozen"),
        _ => ("•", "Unknown"),
    }
}

/// A status badge; its class carries the status for styling and tests.
pub fn badge(status: &str) -> Html {
    let (icon, word) = label(status);
    html! {
        <span class={classes!("status", format!("status-{}", status.to_lowercase()))} title={word}>
            { format!("{icon} {word}") }
        </span>
    }
}
