//! The task form: every field of a task, the server's messages beside each, and a live
//! schedule preview.

use super::super::{field_error, input_value};
use super::alert_rules::{alert_rule, AlertSection};
use super::form::{
    fill_fields, load_task_input, optional, save, schedule_active_and_alerts, schedule_input, use_field_refs,
    Definition,
};
use crate::gql;
use serde_json::{json, Value};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(super) struct TaskFormProps {
    pub(super) tid: Option<i64>,
    pub(super) editor: bool,
    pub(super) on_saved: Callback<()>,
}

/// The form's fields, by the names the server's messages use.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "owner",
    "team",
    "instance",
    "group",
    "command",
    "target",
    "runAsUser",
    "stdoutPath",
    "stderrPath",
    "profile",
    "kind",
    "when",
    "days",
    "timezone",
    "calendar",
    "retryAttempts",
    "retryDelaySeconds",
    "maxRunTimeSeconds",
    "acceptExpirySeconds",
    "dependency",
    "misfirePolicy",
    "active",
    "alerts",
];

/// Every field of a task; the server validates, and its messages appear beside the fields.
#[function_component(TaskForm)]
pub(super) fn task_form(props: &TaskFormProps) -> Html {
    let loaded = use_state(|| {
        props.tid.is_none().then(|| json!({"instance": "default", "active": true, "retryAttempts": 0, "retryDelaySeconds": 60, "maxRunTimeSeconds": 3600, "acceptExpirySeconds": 300, "misfirePolicy": "run_once"}))
    });
    let error = use_state(|| None::<gql::Error>);
    let saved = use_state(|| None::<String>);
    let preview = use_state(Vec::<Value>::new);
    let calendars = use_state(Vec::<String>::new);
    {
        let calendars = calendars.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(v) = gql::query::<Value>("{ calendars { name } }").await {
                    let names = v["calendars"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    calendars.set(names);
                }
            });
        });
    }
    let refs = use_field_refs(FIELDS);
    // The dependency is checked as it is typed, by the parser the server uses.
    let dependency_check = use_state(String::new);
    let on_dependency = {
        let (refs, check) = (refs.clone(), dependency_check.clone());
        Callback::from(move |_: InputEvent| check.set(dependency_problem(&input_value(&refs["dependency"]))))
    };
    {
        let (loaded, tid) = (loaded.clone(), props.tid);
        use_effect_with(tid, move |_| {
            if let Some(t) = tid {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(v) = load_task_input(t).await {
                        loaded.set(Some(v));
                    }
                });
            }
        });
    }
    let Some(t) = (*loaded).clone() else { return html! { <p class="muted">{ "Loading…" }</p> } };
    let collect = {
        let refs = refs.clone();
        move || -> Value {
            let v = |k: &str| input_value(&refs[k]);
            let opt = |k: &str| optional(&v(k));
            let num = |k: &str| v(k).trim().parse::<i64>().map(Value::from).unwrap_or(Value::Null);
            let profile: Vec<Value> = v("profile")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, val)| json!({ "name": k.trim(), "value": val }))
                .collect();
            let schedule = schedule_input(&v);
            let active = refs["active"].cast::<HtmlInputElement>().is_none_or(|i| i.checked());
            let alerts: Vec<Value> = v("alerts").lines().filter(|l| !l.trim().is_empty()).map(alert_rule).collect();
            json!({
                "alerts": alerts,
                "name": v("name"), "description": v("description"), "owner": v("owner"), "team": v("team"),
                "instance": v("instance"), "group": opt("group"), "command": v("command"), "target": v("target"),
                "runAsUser": v("runAsUser"), "stdoutPath": opt("stdoutPath"), "stderrPath": opt("stderrPath"),
                "profile": profile, "active": active, "schedule": schedule,
                "retryAttempts": num("retryAttempts"), "retryDelaySeconds": num("retryDelaySeconds"),
                "maxRunTimeSeconds": num("maxRunTimeSeconds"), "acceptExpirySeconds": num("acceptExpirySeconds"),
                "dependency": opt("dependency"), "misfirePolicy": v("misfirePolicy"),
            })
        }
    };
    let on_preview = {
        let (collect, preview) = (collect.clone(), preview.clone());
        Callback::from(move |_: Event| {
            let input = collect();
            let preview = preview.clone();
            if input["schedule"].is_null() {
                preview.set(Vec::new());
                return;
            }
            wasm_bindgen_futures::spawn_local(async move {
                let q = "query($s: ScheduleInput!, $i: String!) { schedulePreview(schedule: $s, instance: $i, count: 8) { runDate localTime utc dst holiday } }";
                if let Ok(v) = gql::request::<Value>(q, json!({ "s": input["schedule"], "i": input["instance"] })).await
                {
                    preview.set(v["schedulePreview"].as_array().cloned().unwrap_or_default());
                }
            });
        })
    };
    let submit = {
        let (collect, error, saved, on_saved, tid) =
            (collect.clone(), error.clone(), saved.clone(), props.on_saved.clone(), props.tid);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = collect();
            let (error, saved, on_saved) = (error.clone(), saved.clone(), on_saved.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let res = save(Definition::Task, tid, input).await;
                match res {
                    Ok((_, name)) => {
                        error.set(None);
                        saved.set(Some(format!("Saved task {name}.")));
                        on_saved.emit(());
                    }
                    Err(e) => {
                        saved.set(None);
                        error.set(Some(e));
                    }
                }
            });
        })
    };
    let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
    let num = |k: &str| t[k].as_i64().map(|n| n.to_string()).unwrap_or_default();
    let profile_text = t["profile"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!("{}={}", p["name"].as_str().unwrap_or_default(), p["value"].as_str().unwrap_or_default())
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let mut initial: Vec<(&'static str, String)> = vec![
        ("name", text("name")),
        ("group", text("group")),
        ("instance", text("instance")),
        ("owner", text("owner")),
        ("team", text("team")),
        ("description", text("description")),
        ("command", text("command")),
        ("target", text("target")),
        ("runAsUser", text("runAsUser")),
        ("stdoutPath", text("stdoutPath")),
        ("stderrPath", text("stderrPath")),
        ("profile", profile_text),
        ("retryAttempts", num("retryAttempts")),
        ("retryDelaySeconds", num("retryDelaySeconds")),
        ("maxRunTimeSeconds", num("maxRunTimeSeconds")),
        ("acceptExpirySeconds", num("acceptExpirySeconds")),
        ("dependency", text("dependency")),
        ("misfirePolicy", text("misfirePolicy")),
    ];
    initial.extend(schedule_active_and_alerts(&t));
    {
        // Once per loaded definition: later renders never overwrite what was typed.
        let refs = refs.clone();
        use_effect_with(t.to_string(), move |_| fill_fields(&refs, &initial));
    }
    let err = |k: &str| field_error(&error, k);
    let field = |label_text: &str, k: &'static str| {
        html! {
            <label>{ label_text.to_string() }<input id={format!("f-{k}")} list={(k == "calendar").then_some("calendar-names")} ref={refs[k].clone()} disabled={!props.editor} onchange={on_preview.clone()} />{ err(k) }</label>
        }
    };
    html! {
        <form id="task-form" class="form" onsubmit={submit}>
            <h3>{ if props.tid.is_some() { format!("Task {}", text("name")) } else { "New task".to_string() } }</h3>
            <div class="grid">
                { field("Name", "name") }
                { field("Group (inherits its schedule)", "group") }
                { field("Instance", "instance") }
                { field("Owner", "owner") }
                { field("Team", "team") }
                { field("Description", "description") }
            </div>
            <label>{ "Command" }<textarea id="f-command" ref={refs["command"].clone()} disabled={!props.editor} />{ err("command") }</label>
            <div class="grid">
                { field("Target (agent, host or queue)", "target") }
                { field("Run as user", "runAsUser") }
                { field("Stdout file", "stdoutPath") }
                { field("Stderr file", "stderrPath") }
            </div>
            <label>{ "Profile (NAME=value per line)" }<textarea id="f-profile" ref={refs["profile"].clone()} disabled={!props.editor} />{ err("profile") }</label>
            <fieldset><legend>{ "Schedule" }</legend>
                <div class="grid">
                    <label>{ "Kind" }<select id="f-kind" ref={refs["kind"].clone()} onchange={on_preview.clone()} disabled={!props.editor}>
                        { for [("triggerTimes", "Trigger times (HH:MM,…)"), ("runFrequency", "Run frequency (START-END-MINUTES)"), ("cron", "Cron")].iter().map(|(k, l)| html! { <option value={*k}>{ *l }</option> }) }
                    </select></label>
                    { field("When", "when") }
                    { field("Days (mask, ordinal or blank)", "days") }
                    { field("Timezone", "timezone") }
                    { field("Calendar", "calendar") }
                </div>
                { err("schedule") }{ err("triggerTimes") }{ err("runFrequency") }{ err("cron") }{ err("timezone") }
                if !preview.is_empty() {
                    <table id="preview" class="preview"><thead><tr><th>{ "Run date" }</th><th>{ "Local" }</th><th>{ "UTC" }</th><th>{ "" }</th></tr></thead><tbody>
                    { for preview.iter().map(|p| html! { <tr>
                        <td>{ p["runDate"].as_str().unwrap_or_default() }</td><td>{ p["localTime"].as_str().unwrap_or_default() }</td>
                        <td>{ p["utc"].as_str().unwrap_or_default() }</td>
                        <td>{ p["dst"].as_str().map(|d| format!("DST: {d}")).unwrap_or_default() }{ p["holiday"].as_str().map(|h| format!(" holiday: {h}")).unwrap_or_default() }</td>
                    </tr> }) }
                    </tbody></table>
                }
            </fieldset>
            <div class="grid">
                { field("Retry attempts", "retryAttempts") }
                { field("Retry delay (s)", "retryDelaySeconds") }
                { field("Max run time (s)", "maxRunTimeSeconds") }
                { field("Accept expiry (s)", "acceptExpirySeconds") }
                <label>{ "Dependency (e.g. S:extract and F:load)" }
                    <input id="f-dependency" ref={refs["dependency"].clone()} disabled={!props.editor} oninput={on_dependency} />
                    { err("dependency") }<span class="field-error" id="check-dependency">{ (*dependency_check).clone() }</span>
                </label>
                <label>{ "Misfire policy" }<select id="f-misfirePolicy" ref={refs["misfirePolicy"].clone()} disabled={!props.editor}>
                    { for ["run_once", "run_all", "skip"].iter().map(|p| html! { <option value={*p}>{ *p }</option> }) }
                </select></label>
                <label class="check"><input type="checkbox" id="f-active" ref={refs["active"].clone()} disabled={!props.editor} />{ " Active" }</label>
            </div>
            <datalist id="calendar-names">{ for calendars.iter().map(|c| html! { <option value={c.clone()} /> }) }</datalist>
            <AlertSection lines={refs["alerts"].clone()} prefix="f" editor={props.editor} error={err("alerts")} />
            if let Some(e) = &*error { if e.fields.is_empty() { <p class="error" id="form-error">{ e.message.clone() }</p> } else { <p class="error" id="form-error">{ "Please correct the fields marked below or above." }</p> } }
            if let Some(m) = &*saved { <p class="notice" id="form-saved">{ m.clone() }</p> }
            if props.editor { <button id="save-task" type="submit">{ "Save" }</button> }
        </form>
    }
}

/// What is wrong with a dependency expression, as the server would say it; empty when nothing is.
fn dependency_problem(text: &str) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    baton_schema::dependency::DependencyExpr::parse(text)
        .err()
        .map(|e| e.into_field_error().message)
        .unwrap_or_default()
}
