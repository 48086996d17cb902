//! What the task and group forms share: optional and schedule inputs, filling fields once per
//! loaded definition, a stored task as its input, and the save path of both.

use super::alert_rules::alert_line;
use crate::gql;
use serde_json::{json, Value};
use std::collections::HashMap;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

/// A form's text as an optional value: blank is absent.
pub(super) fn optional(s: &str) -> Value {
    if s.trim().is_empty() {
        Value::Null
    } else {
        json!(s.trim())
    }
}

/// The kind of a stored schedule (`triggerTimes`, `runFrequency` or `cron`) and its text.
fn schedule_kind(s: &Value) -> (&'static str, String) {
    ["triggerTimes", "runFrequency", "cron"]
        .iter()
        .find_map(|k| s[*k].as_str().map(|v| (*k, v.to_string())))
        .unwrap_or(("triggerTimes", String::new()))
}

/// The initial values of the fields both forms have: the schedule's, `active` and the alert
/// rules as lines.
pub(super) fn schedule_active_and_alerts(t: &Value) -> Vec<(&'static str, String)> {
    let s = &t["schedule"];
    let (kind, when) = schedule_kind(s);
    let alerts = t["alerts"].as_array().map(|a| a.iter().map(alert_line).collect::<Vec<_>>().join("\n"));
    vec![
        ("kind", kind.to_string()),
        ("when", when),
        ("days", s["days"].as_str().unwrap_or_default().to_string()),
        ("timezone", s["timezone"].as_str().unwrap_or("UTC").to_string()),
        ("calendar", s["calendar"].as_str().unwrap_or_default().to_string()),
        ("active", t["active"].as_bool().unwrap_or(true).to_string()),
        ("alerts", alerts.unwrap_or_default()),
    ]
}

/// The schedule a form's fields describe (`kind`, `when`, `timezone`, `days`, `calendar`); no
/// `when` means no schedule.
pub(super) fn schedule_input(v: &dyn Fn(&str) -> String) -> Value {
    let when = v("when");
    if when.trim().is_empty() {
        return Value::Null;
    }
    let mut s =
        json!({ "timezone": v("timezone"), "days": optional(&v("days")), "calendar": optional(&v("calendar")) });
    s[v("kind")] = json!(when.trim());
    s
}

/// Puts the stored values into the fields once (the fields are not bound to state, so a
/// re-render never overwrites what the user is typing).
pub(super) fn fill_fields(refs: &HashMap<&'static str, NodeRef>, values: &[(&'static str, String)]) {
    for (k, v) in values {
        let Some(r) = refs.get(k) else { continue };
        if let Some(i) = r.cast::<HtmlInputElement>() {
            if i.type_() == "checkbox" {
                i.set_checked(v == "true");
            } else {
                i.set_value(v);
            }
        } else if let Some(t) = r.cast::<HtmlTextAreaElement>() {
            t.set_value(v);
        } else if let Some(sel) = r.cast::<HtmlSelectElement>() {
            sel.set_value(v);
        }
    }
}

pub(super) const TASK_FIELDS: &str = "name description owner team instance group { name } command target runAsUser stdoutPath stderrPath profile { name value } active schedule { triggerTimes runFrequency cron days timezone calendar } retryAttempts retryDelaySeconds maxRunTimeSeconds acceptExpirySeconds dependency misfirePolicy alerts { on at minutes integration message }";

/// A stored task as the input that saves it unchanged.
pub(super) async fn load_task_input(tid: i64) -> Result<Value, gql::Error> {
    let q = format!("query($t: Int!) {{ task(tid: $t) {{ {TASK_FIELDS} }} }}");
    let v = gql::request::<Value>(&q, json!({ "t": tid })).await?;
    let mut t = v["task"].clone();
    t["group"] = t["group"]["name"].clone();
    Ok(t)
}

/// Which kind of definition a form saves.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Definition {
    Task,
    Group,
}

/// Creates (no `id`) or updates the definition with `input`: the saved one's id and name, or the
/// server's error with its field messages.
pub(super) async fn save(what: Definition, id: Option<i64>, input: Value) -> Result<(i64, String), gql::Error> {
    use Definition::{Group, Task};
    let mutation = match (what, id) {
        (Task, Some(_)) => {
            "mutation($id: Int!, $i: TaskInput!) { saved: updateTask(tid: $id, input: $i) { id: tid name } }"
        }
        (Task, None) => "mutation($i: TaskInput!) { saved: createTask(input: $i) { id: tid name } }",
        (Group, Some(_)) => {
            "mutation($id: Int!, $i: GroupInput!) { saved: updateGroup(gid: $id, input: $i) { id: gid name } }"
        }
        (Group, None) => "mutation($i: GroupInput!) { saved: createGroup(input: $i) { id: gid name } }",
    };
    let vars = match id {
        Some(id) => json!({ "id": id, "i": input }),
        None => json!({ "i": input }),
    };
    let v = gql::request::<Value>(mutation, vars).await?;
    Ok((v["saved"]["id"].as_i64().unwrap_or(0), v["saved"]["name"].as_str().unwrap_or_default().to_string()))
}

/// One `NodeRef` per field name, kept across renders: a form reads its fields when it saves.
#[hook]
pub(super) fn use_field_refs(names: &'static [&'static str]) -> HashMap<&'static str, NodeRef> {
    (*use_state(|| names.iter().map(|k| (*k, NodeRef::default())).collect::<HashMap<_, _>>())).clone()
}
