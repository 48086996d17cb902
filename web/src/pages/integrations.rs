//! Integrations & credentials: the alert channels (with a test button), the credential store's
//! keys (set or rotated here, never shown back), and the delivery log of every alert with its
//! attempts, refreshed every few seconds.

use super::{field_error, input_value};
use crate::gql;
use crate::gql::Load;
use crate::session::Me;
use gloo_timers::callback::Interval;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Integration {
    name: String,
    kind: String,
    credential_key: Option<String>,
    credential_set: bool,
    secret_is: String,
    rules: i64,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Key {
    key: String,
    version: i64,
    updated_at: String,
    used_by: Vec<String>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Attempt {
    attempt: i64,
    at: String,
    ok: bool,
    detail: String,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    id: i64,
    integration: String,
    source: String,
    trigger: String,
    subject: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: String,
    log: Vec<Attempt>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    integrations: Vec<Integration>,
    #[serde(default)]
    credential_keys: Vec<Key>,
    #[serde(default)]
    alert_deliveries: Vec<Delivery>,
}

/// The fields of the integration form, by the API's names.
const FIELDS: [&str; 15] = [
    "name",
    "kind",
    "credentialKey",
    "method",
    "headers",
    "body",
    "smtpHost",
    "smtpPort",
    "security",
    "username",
    "from",
    "to",
    "caFile",
    "eventsUrl",
    "severity",
];

/// Which fields apply to a kind (besides name, kind and credential key).
fn fields_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" => &["method", "headers", "body"],
        "email" => &["smtpHost", "smtpPort", "security", "username", "from", "to", "caFile"],
        "pagerduty" => &["eventsUrl", "severity"],
        _ => &[],
    }
}

fn label(field: &str) -> &'static str {
    match field {
        "method" => "Method (POST, PUT, PATCH, GET)",
        "headers" => "Headers, one per line: Name: value",
        "body" => "Body template (placeholders allowed; a JSON alert when empty)",
        "smtpHost" => "SMTP host",
        "smtpPort" => "SMTP port",
        "security" => "Security (starttls, tls, none)",
        "username" => "SMTP user",
        "from" => "From",
        "to" => "To (comma-separated)",
        "caFile" => "Extra CA file on the server (PEM)",
        "eventsUrl" => "Events API URL (PagerDuty's when empty)",
        "severity" => "Severity (critical, error, warning, info)",
        _ => "",
    }
}

/// `2026-11-28T20:05:26.33+00:00` as `2026-11-28 20:05:26`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// The form's values as an `IntegrationInput`.
fn integration_input(refs: &HashMap<&'static str, NodeRef>, kind: &str) -> Value {
    let v = |k: &str| refs.get(k).map(input_value).unwrap_or_default().trim().to_string();
    let opt = |k: &str| {
        let s = v(k);
        if s.is_empty() || !fields_of(kind).contains(&k) {
            Value::Null
        } else {
            json!(s)
        }
    };
    let applies = |k: &str| fields_of(kind).contains(&k);
    let headers: Vec<Value> = if applies("headers") {
        v("headers")
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, val)| json!({ "name": n.trim(), "value": val.trim() }))
            .collect()
    } else {
        Vec::new()
    };
    let to: Vec<String> = if applies("to") {
        v("to").split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
    } else {
        Vec::new()
    };
    json!({
        "name": v("name"), "kind": kind, "credentialKey": if v("credentialKey").is_empty() { Value::Null } else { json!(v("credentialKey")) },
        "method": opt("method"), "headers": headers, "body": opt("body"),
        "smtpHost": opt("smtpHost"), "smtpPort": if applies("smtpPort") { v("smtpPort").parse::<i64>().map_or(Value::Null, |p| json!(p)) } else { Value::Null },
        "security": opt("security"), "username": opt("username"), "from": opt("from"), "to": to,
        "caFile": opt("caFile"), "eventsUrl": opt("eventsUrl"), "severity": opt("severity"),
    })
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub me: Me,
}

#[function_component(Integrations)]
pub fn integrations(props: &Props) -> Html {
    let admin = props.me.is_admin();
    let operator = props.me.is_operator();
    let data = use_state(|| Load::<Data>::Loading);
    let bump = use_state(|| 0u32);
    let kind = use_state(|| "slack".to_string());
    let form_error = use_state(|| None::<gql::Error>);
    let key_error = use_state(|| None::<gql::Error>);
    let notice = use_state(|| None::<(String, bool)>);
    let refs: HashMap<&'static str, NodeRef> =
        (*use_state(|| FIELDS.iter().map(|k| (*k, NodeRef::default())).collect::<HashMap<_, _>>())).clone();
    let (key_ref, value_ref) = (use_node_ref(), use_node_ref());
    {
        let data = data.clone();
        use_effect_with(*bump, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let q = if admin {
                    "{ integrations { name kind credentialKey credentialSet secretIs rules } credentialKeys { key version updatedAt usedBy } alertDeliveries(limit: 50) { id integration source trigger subject status attempts lastError createdAt log { attempt at ok detail } } }"
                } else if operator {
                    "{ integrations { name kind credentialKey credentialSet secretIs rules } alertDeliveries(limit: 50) { id integration source trigger subject status attempts lastError createdAt log { attempt at ok detail } } }"
                } else {
                    "{ integrations { name kind credentialKey credentialSet secretIs rules } }"
                };
                data.set(match gql::query::<Data>(q).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    {
        // The delivery log moves on its own (retries): look again every few seconds.
        let bump = bump.clone();
        use_effect_with((), move |_| {
            let tick = Interval::new(3_000, move || bump.set(*bump + 1));
            move || drop(tick)
        });
    }
    let save_integration = {
        let (refs, kind, form_error, bump, notice) =
            (refs.clone(), kind.clone(), form_error.clone(), bump.clone(), notice.clone());
        let existing: Vec<String> = match &*data {
            Load::Ready(d) => d.integrations.iter().map(|i| i.name.clone()).collect(),
            _ => Vec::new(),
        };
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = integration_input(&refs, &kind);
            let name = input["name"].as_str().unwrap_or_default().to_string();
            let update = existing.contains(&name);
            let (form_error, bump, notice) = (form_error.clone(), bump.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let res = if update {
                    gql::request::<Value>(
                        "mutation($n: String!, $i: IntegrationInput!) { updateIntegration(name: $n, input: $i) { name } }",
                        json!({ "n": name, "i": input }),
                    )
                    .await
                } else {
                    gql::request::<Value>(
                        "mutation($i: IntegrationInput!) { createIntegration(input: $i) { name } }",
                        json!({ "i": input }),
                    )
                    .await
                };
                match res {
                    Ok(_) => {
                        form_error.set(None);
                        notice.set(Some((format!("Integration {name} saved."), true)));
                        bump.set(*bump + 1);
                    }
                    Err(e) => form_error.set(Some(e)),
                }
            });
        })
    };
    let set_credential = {
        let (key_ref, value_ref, key_error, bump, notice) =
            (key_ref.clone(), value_ref.clone(), key_error.clone(), bump.clone(), notice.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let key = input_value(&key_ref);
            let value_input = value_ref.cast::<HtmlInputElement>();
            let value = value_input.as_ref().map(|i| i.value()).unwrap_or_default();
            // The value leaves the page with this request and is not kept in it.
            if let Some(i) = value_input {
                i.set_value("");
            }
            let (key_error, bump, notice) = (key_error.clone(), bump.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match gql::request::<Value>(
                    "mutation($k: String!, $v: String!) { setCredential(key: $k, value: $v) { key version } }",
                    json!({ "k": key, "v": value }),
                )
                .await
                {
                    Ok(v) => {
                        key_error.set(None);
                        let r = &v["setCredential"];
                        notice.set(Some((
                            format!(
                                "Credential {} set (version {}).",
                                r["key"].as_str().unwrap_or_default(),
                                r["version"]
                            ),
                            true,
                        )));
                        bump.set(*bump + 1);
                    }
                    Err(e) => key_error.set(Some(e)),
                }
            });
        })
    };
    let act = {
        let (bump, notice) = (bump.clone(), notice.clone());
        move |m: &'static str, vars: Value, what: String| {
            let (bump, notice) = (bump.clone(), notice.clone());
            Callback::from(move |_: MouseEvent| {
                let (bump, notice, vars, what) = (bump.clone(), notice.clone(), vars.clone(), what.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match gql::request::<Value>(m, vars).await {
                        Ok(v) => {
                            let text = match v.get("sendTestAlert") {
                                Some(d) => format!(
                                    "Test alert through {what}: {}{}",
                                    d["status"].as_str().unwrap_or_default(),
                                    d["lastError"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
                                ),
                                None => format!("{what}: done."),
                            };
                            let ok = v.get("sendTestAlert").is_none_or(|d| d["status"] == "SENT");
                            notice.set(Some((text, ok)));
                            bump.set(*bump + 1);
                        }
                        Err(e) => notice.set(Some((format!("{what}: {e}"), false))),
                    }
                });
            })
        }
    };
    let on_kind = {
        let kind = kind.clone();
        Callback::from(move |e: Event| {
            if let Some(s) = e.target_dyn_into::<HtmlSelectElement>() {
                kind.set(s.value());
            }
        })
    };
    let err = |k: &str| field_error(&form_error, k);
    let ready = match &*data {
        Load::Loading => {
            return html! { <section><h2>{ "Integrations & credentials" }</h2><p class="muted">{ "Loading…" }</p></section> }
        }
        Load::Failed(e) => {
            return html! { <section><h2>{ "Integrations & credentials" }</h2><p class="error">{ e.to_string() }</p></section> }
        }
        Load::Ready(d) => d.clone(),
    };
    let integrations_table = if ready.integrations.is_empty() {
        html! { <p class="muted" id="no-integrations">{ "No integration yet." }</p> }
    } else {
        html! {
            <table id="integrations"><thead><tr><th>{ "Name" }</th><th>{ "Kind" }</th><th>{ "Credential" }</th><th>{ "Rules" }</th><th></th></tr></thead><tbody>
            { for ready.integrations.iter().map(|i| {
                let test = act("mutation($i: String!) { sendTestAlert(integration: $i) { status lastError } }", json!({ "i": i.name }), i.name.clone());
                let delete = act("mutation($i: String!) { deleteIntegration(name: $i) }", json!({ "i": i.name }), format!("Delete {}", i.name));
                html! {
                    <tr id={format!("integration-{}", i.name)}>
                        <td>{ &i.name }</td><td>{ &i.kind }</td>
                        <td title={i.secret_is.clone()}>{ i.credential_key.clone().unwrap_or_else(|| "—".into()) }{ if i.credential_key.is_some() { if i.credential_set { " ✓" } else { " (not set)" } } else { "" } }</td>
                        <td>{ i.rules }</td>
                        <td>if admin {
                            <button class="small" id={format!("test-{}", i.name)} onclick={test}>{ "Send test" }</button>
                            <button class="small danger" id={format!("delete-{}", i.name)} onclick={delete}>{ "Delete" }</button>
                        }</td>
                    </tr>
                }
            }) }
            </tbody></table>
        }
    };
    let kind_fields = fields_of(&kind);
    let form = html! {
        <form class="form" id="integration-form" onsubmit={save_integration}>
            <h3>{ "Create or update an integration" }</h3>
            <div class="grid">
                <label>{ "Name" }<input id="i-name" ref={refs["name"].clone()} />{ err("name") }</label>
                <label>{ "Kind" }<select id="i-kind" ref={refs["kind"].clone()} onchange={on_kind}>
                    { for ["slack", "teams", "discord", "webhook", "email", "pagerduty"].iter().map(|k| html! { <option value={*k} selected={*k == kind.as_str()}>{ *k }</option> }) }
                </select>{ err("kind") }</label>
                <label>{ "Credential key (holds the secret: URL, password or routing key)" }
                    <input id="i-credentialKey" ref={refs["credentialKey"].clone()} list="credential-keys" placeholder="alerts/slack" />{ err("credential_key") }</label>
                { for FIELDS.iter().filter(|f| kind_fields.contains(f)).map(|f| {
                    let input = if matches!(*f, "headers" | "body") {
                        html! { <textarea id={format!("i-{f}")} ref={refs[f].clone()} /> }
                    } else {
                        html! { <input id={format!("i-{f}")} ref={refs[f].clone()} /> }
                    };
                    let snake: String = f.chars().flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] }).collect();
                    html! { <label>{ label(f) }{ input }{ err(&snake) }</label> }
                }) }
            </div>
            <datalist id="credential-keys">{ for ready.credential_keys.iter().map(|k| html! { <option value={k.key.clone()} /> }) }</datalist>
            if let Some(e) = &*form_error { if e.fields.is_empty() { <p class="error" id="integration-error">{ e.message.clone() }</p> } }
            <button id="save-integration" type="submit">{ "Save integration" }</button>
        </form>
    };
    let keys = html! {
        <>
            <h3>{ "Credentials" }</h3>
            <p class="muted">{ "Values are encrypted at rest and never shown again; set a key anew to rotate it." }</p>
            <table id="credential-keys-table"><thead><tr><th>{ "Key" }</th><th>{ "Version" }</th><th>{ "Updated" }</th><th>{ "Used by" }</th><th></th></tr></thead><tbody>
            { for ready.credential_keys.iter().map(|k| {
                let delete = act("mutation($k: String!) { deleteCredential(key: $k) }", json!({ "k": k.key }), format!("Delete {}", k.key));
                html! {
                    <tr id={format!("key-{}", k.key.replace('/', "-"))}><td>{ &k.key }</td><td>{ k.version }</td><td>{ short_time(&k.updated_at) }</td>
                    <td>{ k.used_by.join(", ") }</td><td><button class="small danger" onclick={delete}>{ "Delete" }</button></td></tr>
                }
            }) }
            </tbody></table>
            <form class="form" id="credential-form" onsubmit={set_credential}>
                <div class="grid">
                    <label>{ "Key" }<input id="c-key" ref={key_ref} placeholder="alerts/email" />{ field_error(&key_error, "key") }</label>
                    <label>{ "Value" }<input id="c-value" ref={value_ref} type="password" autocomplete="off" />{ field_error(&key_error, "value") }</label>
                </div>
                <button id="set-credential" type="submit">{ "Set credential" }</button>
            </form>
        </>
    };
    let log = html! {
        <>
            <h3>{ "Delivery log" }</h3>
            if ready.alert_deliveries.is_empty() { <p class="muted" id="no-deliveries">{ "No alert sent yet." }</p> } else {
                <table id="deliveries"><thead><tr><th>{ "Queued" }</th><th>{ "Integration" }</th><th>{ "Trigger" }</th><th>{ "Subject" }</th><th>{ "Status" }</th><th>{ "Attempts" }</th></tr></thead><tbody>
                { for ready.alert_deliveries.iter().map(|d| html! {
                    <tr id={format!("delivery-{}", d.id)} class={format!("delivery-{}", d.status.to_lowercase())}>
                        <td>{ short_time(&d.created_at) }</td><td>{ &d.integration }</td><td title={d.source.clone()}>{ &d.trigger }</td><td>{ &d.subject }</td>
                        <td class={format!("status {}", d.status.to_lowercase())}>{ &d.status }{ d.last_error.as_ref().map(|e| html! { <div class="muted">{ e }</div> }).unwrap_or_default() }</td>
                        <td>{ d.attempts }{ for d.log.iter().map(|a| html! { <div class="muted">{ format!("#{} {} {} {}", a.attempt, short_time(&a.at), if a.ok { "ok" } else { "failed" }, a.detail) }</div> }) }</td>
                    </tr>
                }) }
                </tbody></table>
            }
        </>
    };
    html! {
        <section>
            <h2>{ "Integrations & credentials" }</h2>
            if let Some((m, ok)) = &*notice { <p class={if *ok { "notice" } else { "error" }} id="integrations-notice">{ m.clone() }</p> }
            { integrations_table }
            if admin { { form } { keys } }
            if operator { { log } }
        </section>
    }
}
