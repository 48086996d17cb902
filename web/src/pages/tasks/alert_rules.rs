//! Alert rules in a definition form: each rule as one line (`on [at|minutes] integration
//! [message]`), and the form section that edits them with a picker of existing integrations.

use super::super::input_value;
use crate::gql;
use crate::ops::{self, integration_names, update_task};
use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

/// An alert rule as the forms edit it (the task form's input type; the group form's is converted).
pub(super) type AlertRule = update_task::AlertRuleInput;

/// One alert rule from a line of the form: `ON INTEGRATION [HH:MM | MINUTES] [message]`.
pub(super) fn parse_alert_line(line: &str) -> AlertRule {
    let mut words = line.split_whitespace();
    let on = words.next().unwrap_or_default().to_string();
    let integration = words.next().unwrap_or_default().to_string();
    let mut rest: Vec<&str> = words.collect();
    let (mut at, mut minutes) = (None, None);
    if let Some(first) = rest.first().copied() {
        if on == "longer_than" && first.parse::<i64>().is_ok() {
            minutes = first.parse::<i64>().ok();
            rest.remove(0);
        } else if matches!(on.as_str(), "not_started_by" | "still_running_at") && first.contains(':') {
            at = Some(first.to_string());
            rest.remove(0);
        }
    }
    let message = Some(rest.join(" ")).filter(|m| !m.is_empty());
    AlertRule { on, integration, at, minutes, message }
}

/// A stored alert rule as a line of the form.
pub(super) fn alert_line(r: &AlertRule) -> String {
    let mut parts = vec![r.on.clone(), r.integration.clone()];
    parts.extend(r.at.clone());
    parts.extend(r.minutes.map(|m| m.to_string()));
    parts.extend(r.message.clone());
    parts.join(" ")
}

#[derive(Properties, PartialEq)]
pub(super) struct AlertSectionProps {
    /// The textarea of alert lines this section edits.
    pub(super) lines: NodeRef,
    /// `f` in the task form, `g` in the group form.
    pub(super) prefix: &'static str,
    pub(super) editor: bool,
    pub(super) error: Html,
}

/// The alert section of a form: the rules as lines, and a picker that adds one with an existing
/// integration.
#[function_component(AlertSection)]
pub(super) fn alert_section(props: &AlertSectionProps) -> Html {
    let names = use_state(Vec::<String>::new);
    {
        let names = names.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(d) = gql::run::<ops::IntegrationNames>(integration_names::Variables).await {
                    names.set(d.integrations.into_iter().map(|i| i.name).collect());
                }
            });
        });
    }
    let (on, integration, when, message) = (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    let add = {
        let (lines, on, integration, when, message) =
            (props.lines.clone(), on.clone(), integration.clone(), when.clone(), message.clone());
        Callback::from(move |_: MouseEvent| {
            let parts: Vec<String> = [&on, &integration, &when, &message]
                .iter()
                .map(|r| input_value(r).trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            if let Some(t) = lines.cast::<HtmlTextAreaElement>() {
                let mut text = t.value().trim_end().to_string();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&parts.join(" "));
                t.set_value(&text);
            }
            for r in [&when, &message] {
                if let Some(i) = r.cast::<HtmlInputElement>() {
                    i.set_value("");
                }
            }
        })
    };
    let p = props.prefix;
    html! {
        <fieldset class="alerts" id={format!("{p}-alert-section")}>
            <legend>{ "Alerts" }</legend>
            <label>{ "One per line: ON INTEGRATION [HH:MM | MINUTES] [message] (on: failure, success, always, retry, timeout, not_started_by, still_running_at, longer_than)" }
                <textarea id={format!("{p}-alerts")} ref={props.lines.clone()} disabled={!props.editor} />{ props.error.clone() }</label>
            if props.editor {
                <div class="grid picker">
                    <label>{ "On" }<select id={format!("{p}-alert-on")} ref={on}>
                        { for ["failure", "success", "always", "retry", "timeout", "not_started_by", "still_running_at", "longer_than"].iter().map(|o| html! { <option value={*o}>{ *o }</option> }) }
                    </select></label>
                    <label>{ "Integration" }<select id={format!("{p}-alert-integration")} ref={integration}>
                        { for names.iter().map(|n| html! { <option value={n.clone()}>{ n }</option> }) }
                    </select></label>
                    <label>{ "At HH:MM or minutes" }<input id={format!("{p}-alert-when")} ref={when} /></label>
                    <label>{ "Message (placeholders: ${T:task_name}, ${P:status}, ${P:stdout}…)" }<input id={format!("{p}-alert-message")} ref={message} /></label>
                    <button type="button" class="small" id={format!("{p}-alert-add")} onclick={add} disabled={names.is_empty()}>{ "Add alert" }</button>
                </div>
                if names.is_empty() { <p class="muted">{ "No integration yet: define one on the Integrations page." }</p> }
            }
        </fieldset>
    }
}
