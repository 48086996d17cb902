//! The group form: a group's fields, its schedule (its tasks inherit it) and its alert rules.

use super::super::{field_error, input_value};
use super::alert_rules::{parse_alert_line, AlertSection};
use super::form::{
    fill_fields, group_input_parts, group_schedule_and_alerts, load_group_input, optional, save_group,
    schedule_active_and_alerts, schedule_input, use_field_refs, GroupInput,
};
use crate::gql;
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(super) struct GroupFormProps {
    pub(super) gid: Option<i64>,
    pub(super) editor: bool,
    pub(super) on_saved: Callback<i64>,
}

/// The form's fields, by the names the server's messages use.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "owner",
    "team",
    "instance",
    "kind",
    "when",
    "days",
    "timezone",
    "calendar",
    "dependency",
    "active",
    "alerts",
];

#[function_component(GroupForm)]
pub(super) fn group_form(props: &GroupFormProps) -> Html {
    let loaded = use_state(|| props.gid.is_none().then(new_group));
    let error = use_state(|| None::<gql::Error>);
    let refs = use_field_refs(FIELDS);
    {
        let (loaded, gid) = (loaded.clone(), props.gid);
        use_effect_with(gid, move |_| {
            if let Some(g) = gid {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(g) = load_group_input(g).await {
                        loaded.set(Some(g));
                    }
                });
            }
        });
    }
    let Some(t) = (*loaded).clone() else { return html! { <p class="muted">{ "Loading…" }</p> } };
    let submit = {
        let (refs, error, on_saved, gid) = (refs.clone(), error.clone(), props.on_saved.clone(), props.gid);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let v = |k: &str| input_value(&refs[k]);
            let opt = |k: &str| optional(&v(k));
            let alerts = v("alerts").lines().filter(|l| !l.trim().is_empty()).map(parse_alert_line).collect();
            let (schedule, alerts) = group_input_parts(schedule_input(&v), alerts);
            let input = GroupInput {
                name: v("name"),
                description: v("description"),
                owner: v("owner"),
                team: v("team"),
                instance: v("instance"),
                active: refs["active"].cast::<HtmlInputElement>().is_none_or(|i| i.checked()),
                schedule,
                dependency: opt("dependency"),
                alerts,
            };
            let (error, on_saved) = (error.clone(), on_saved.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let res = save_group(gid, input).await;
                match res {
                    Ok((gid, _)) => on_saved.emit(gid),
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let mut initial: Vec<(&'static str, String)> = vec![
        ("name", t.name.clone()),
        ("instance", t.instance.clone()),
        ("owner", t.owner.clone()),
        ("team", t.team.clone()),
        ("description", t.description.clone()),
        ("dependency", t.dependency.clone().unwrap_or_default()),
    ];
    let (schedule, alerts) = group_schedule_and_alerts(&t);
    initial.extend(schedule_active_and_alerts(schedule.as_ref(), t.active, &alerts));
    {
        // Once per loaded definition: later renders never overwrite what was typed.
        let refs = refs.clone();
        use_effect_with(t.clone(), move |_| fill_fields(&refs, &initial));
    }
    let err = |k: &str| field_error(&error, k);
    let field = |label_text: &str, k: &'static str| {
        html! {
            <label>{ label_text.to_string() }<input id={format!("g-{k}")} ref={refs[k].clone()} disabled={!props.editor} />{ err(k) }</label>
        }
    };
    html! {
        <form id="group-form" class="form" onsubmit={submit}>
            <h3>{ if props.gid.is_some() { format!("Group {}", t.name) } else { "New group".to_string() } }</h3>
            <div class="grid">
                { field("Name", "name") }
                { field("Instance", "instance") }
                { field("Owner", "owner") }
                { field("Team", "team") }
                { field("Description", "description") }
                { field("Dependency on other groups", "dependency") }
                <label>{ "Schedule kind" }<select id="g-kind" ref={refs["kind"].clone()} disabled={!props.editor}>
                    { for [("triggerTimes", "Trigger times"), ("runFrequency", "Run frequency"), ("cron", "Cron")].iter().map(|(k, l)| html! { <option value={*k}>{ *l }</option> }) }
                </select></label>
                { field("When", "when") }
                { field("Days", "days") }
                { field("Timezone", "timezone") }
                { field("Calendar", "calendar") }
                <label class="check"><input type="checkbox" id="g-active" ref={refs["active"].clone()} disabled={!props.editor} />{ " Active (an inactive group freezes all its tasks)" }</label>
            </div>
            { err("schedule") }
            <AlertSection lines={refs["alerts"].clone()} prefix="g" editor={props.editor} error={err("alerts")} />
            if let Some(e) = &*error { <p class="error" id="group-error">{ e.message.clone() }</p> }
            if props.editor { <button id="save-group" type="submit">{ "Save" }</button> }
        </form>
    }
}

/// A new group's input: the API's defaults.
fn new_group() -> GroupInput {
    GroupInput {
        name: String::new(),
        description: String::new(),
        owner: String::new(),
        team: String::new(),
        instance: "default".into(),
        active: true,
        schedule: None,
        dependency: None,
        alerts: Vec::new(),
    }
}
