//! One module per page.

pub mod adhoc;
pub mod admin;
pub mod agents;
pub mod calendars;
pub mod dashboard;
pub mod integrations;
pub mod login;
pub mod runs;
pub mod scheduler;
pub mod tasks;

use yew::prelude::*;

/// A field's validation message. Always rendered (empty when the field is fine): a node that
/// comes and goes would make Yew rebuild the field next to it and lose what was typed.
pub fn field_error(error: &Option<crate::gql::Error>, k: &str) -> Html {
    let m = error.as_ref().and_then(|e| e.field(k)).unwrap_or_default();
    html! { <span class="field-error" id={format!("error-{k}")}>{ m }</span> }
}

/// What a form field (input, textarea or select) holds.
pub fn input_value(r: &NodeRef) -> String {
    use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
    if let Some(i) = r.cast::<HtmlInputElement>() {
        return i.value();
    }
    if let Some(t) = r.cast::<HtmlTextAreaElement>() {
        return t.value();
    }
    r.cast::<HtmlSelectElement>().map(|s| s.value()).unwrap_or_default()
}
