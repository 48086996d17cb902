//! The task form: every field of a task, the server's messages beside each, and a live
//! schedule preview.

use super::super::{field_error, input_value};
use super::alert_rules::{parse_alert_line, AlertSection};
use super::form::{
    fill_fields, load_task_input, optional, preview_schedule, save_task, schedule_active_and_alerts, schedule_input,
    use_field_refs, TaskInput,
};
use crate::gql;
use crate::ops::{self, calendar_names, schedule_preview, update_task};
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
    let loaded = use_state(|| props.tid.is_none().then(new_task));
    let error = use_state(|| None::<gql::Error>);
    let saved = use_state(|| None::<String>);
    let preview = use_state(Vec::<schedule_preview::SchedulePreviewSchedulePreview>::new);
    let calendars = use_state(Vec::<String>::new);
    {
        let calendars = calendars.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(d) = gql::run::<ops::CalendarNames>(calendar_names::Variables).await {
                    calendars.set(d.calendars.into_iter().map(|c| c.name).collect());
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
        move || -> Result<TaskInput, gql::Error> {
            let v = |k: &str| input_value(&refs[k]);
            let opt = |k: &str| optional(&v(k));
            let profile = v("profile")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, val)| update_task::EnvVarInput { name: k.trim().to_string(), value: val.to_string() })
                .collect();
            Ok(TaskInput {
                name: v("name"),
                description: v("description"),
                owner: v("owner"),
                team: v("team"),
                instance: v("instance"),
                group: opt("group"),
                command: v("command"),
                target: v("target"),
                run_as_user: v("runAsUser"),
                stdout_path: opt("stdoutPath"),
                stderr_path: opt("stderrPath"),
                profile,
                active: refs["active"].cast::<HtmlInputElement>().is_none_or(|i| i.checked()),
                schedule: schedule_input(&v),
                retry_attempts: number(&v, "retryAttempts")?,
                retry_delay_seconds: number(&v, "retryDelaySeconds")?,
                max_run_time_seconds: number(&v, "maxRunTimeSeconds")?,
                accept_expiry_seconds: number(&v, "acceptExpirySeconds")?,
                dependency: opt("dependency"),
                misfire_policy: v("misfirePolicy"),
                alerts: v("alerts").lines().filter(|l| !l.trim().is_empty()).map(parse_alert_line).collect(),
            })
        }
    };
    let on_preview = {
        let (collect, preview) = (collect.clone(), preview.clone());
        Callback::from(move |_: Event| {
            let preview = preview.clone();
            let Some((schedule, instance)) = collect().ok().and_then(|t| Some((t.schedule?, t.instance))) else {
                preview.set(Vec::new());
                return;
            };
            wasm_bindgen_futures::spawn_local(async move {
                let vars = schedule_preview::Variables { schedule: preview_schedule(schedule), instance };
                if let Ok(d) = gql::run::<ops::SchedulePreview>(vars).await {
                    preview.set(d.schedule_preview);
                }
            });
        })
    };
    let submit = {
        let (collect, error, saved, on_saved, tid) =
            (collect.clone(), error.clone(), saved.clone(), props.on_saved.clone(), props.tid);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (error, saved, on_saved) = (error.clone(), saved.clone(), on_saved.clone());
            let input = match collect() {
                Ok(t) => t,
                Err(e) => return error.set(Some(e)),
            };
            wasm_bindgen_futures::spawn_local(async move {
                let res = save_task(tid, input).await;
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
    let profile_text = t.profile.iter().map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>().join("\n");
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut initial: Vec<(&'static str, String)> = vec![
        ("name", t.name.clone()),
        ("group", text(&t.group)),
        ("instance", t.instance.clone()),
        ("owner", t.owner.clone()),
        ("team", t.team.clone()),
        ("description", t.description.clone()),
        ("command", t.command.clone()),
        ("target", t.target.clone()),
        ("runAsUser", t.run_as_user.clone()),
        ("stdoutPath", text(&t.stdout_path)),
        ("stderrPath", text(&t.stderr_path)),
        ("profile", profile_text),
        ("retryAttempts", t.retry_attempts.to_string()),
        ("retryDelaySeconds", t.retry_delay_seconds.to_string()),
        ("maxRunTimeSeconds", t.max_run_time_seconds.to_string()),
        ("acceptExpirySeconds", t.accept_expiry_seconds.to_string()),
        ("dependency", text(&t.dependency)),
        ("misfirePolicy", t.misfire_policy.clone()),
    ];
    initial.extend(schedule_active_and_alerts(t.schedule.as_ref(), t.active, &t.alerts));
    {
        // Once per loaded definition: later renders never overwrite what was typed.
        let refs = refs.clone();
        use_effect_with(t.clone(), move |_| fill_fields(&refs, &initial));
    }
    let err = |k: &str| field_error(&error, k);
    let field = |label_text: &str, k: &'static str| {
        html! {
            <label>{ label_text.to_string() }<input id={format!("f-{k}")} list={(k == "calendar").then_some("calendar-names")} ref={refs[k].clone()} disabled={!props.editor} onchange={on_preview.clone()} />{ err(k) }</label>
        }
    };
    html! {
        <form id="task-form" class="form" onsubmit={submit}>
            <h3>{ if props.tid.is_some() { format!("Task {}", t.name) } else { "New task".to_string() } }</h3>
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
                        <td>{ &p.run_date }</td><td>{ &p.local_time }</td><td>{ &p.utc }</td>
                        <td>{ p.dst.as_ref().map(|d| format!("DST: {d}")).unwrap_or_default() }{ p.holiday.as_ref().map(|h| format!(" holiday: {h}")).unwrap_or_default() }</td>
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

/// A new task's input: the API's defaults.
fn new_task() -> TaskInput {
    TaskInput {
        name: String::new(),
        description: String::new(),
        owner: String::new(),
        team: String::new(),
        instance: "default".into(),
        group: None,
        command: String::new(),
        target: String::new(),
        run_as_user: String::new(),
        stdout_path: None,
        stderr_path: None,
        profile: Vec::new(),
        active: true,
        schedule: None,
        retry_attempts: 0,
        retry_delay_seconds: 60,
        max_run_time_seconds: 3600,
        accept_expiry_seconds: 300,
        dependency: None,
        misfire_policy: "run_once".into(),
        alerts: Vec::new(),
    }
}

/// A whole-number field: blank or not a number is refused with the field's name, before sending.
fn number(v: &dyn Fn(&str) -> String, field: &str) -> Result<i64, gql::Error> {
    v(field).trim().parse().map_err(|_| gql::Error::field_error(field, "must be a whole number"))
}
