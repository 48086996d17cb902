//! Integrations & credentials: the alert channels (with a test button), the credential store's
//! keys (set or rotated here, never shown back), each of one instance or of all, and the delivery
//! log of every alert with its attempts, refreshed every few seconds.

use super::{field_error, input_value};
use crate::gql;
use crate::gql::Load;
use crate::ops::{
    self, copy_fields, create_integration, credential_key_list, delete_credential, delete_integration, delivery_log,
    integration_list, send_test_alert, set_credential, update_integration,
};
use crate::session::Me;
use gloo_timers::callback::Interval;
use std::collections::HashMap;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

/// What the page shows: the integrations, and what the caller's role may see besides.
#[derive(Clone, PartialEq)]
struct Data {
    integrations: Vec<integration_list::IntegrationListIntegrations>,
    credential_keys: Vec<credential_key_list::CredentialKeyListCredentialKeys>,
    alert_deliveries: Vec<delivery_log::DeliveryLogAlertDeliveries>,
}

impl Data {
    /// Reads the integrations, with the keys for admins and the delivery log for operators.
    async fn read(admin: bool, operator: bool) -> Result<Data, gql::Error> {
        let integrations = gql::run::<ops::IntegrationList>(integration_list::Variables).await?.integrations;
        let credential_keys = match admin {
            true => gql::run::<ops::CredentialKeyList>(credential_key_list::Variables).await?.credential_keys,
            false => Vec::new(),
        };
        let alert_deliveries = match operator {
            true => gql::run::<ops::DeliveryLog>(delivery_log::Variables).await?.alert_deliveries,
            false => Vec::new(),
        };
        Ok(Data { integrations, credential_keys, alert_deliveries })
    }
}

/// What an admin does from a row: send a test alert, delete an integration or a key.
#[derive(Clone)]
enum Act {
    Test(String),
    DeleteIntegration(String),
    DeleteCredential(String),
}

impl Act {
    /// Does it: what to tell the user, and whether it went well.
    async fn send(self) -> (String, bool) {
        match self {
            Act::Test(integration) => {
                let vars = send_test_alert::Variables { integration: integration.clone() };
                match gql::run::<ops::SendTestAlert>(vars).await {
                    Ok(d) => {
                        let (status, error) = (d.send_test_alert.status, d.send_test_alert.last_error);
                        let why = error.map(|e| format!(" ({e})")).unwrap_or_default();
                        (format!("Test alert through {integration}: {status}{why}"), status == "SENT")
                    }
                    Err(e) => (format!("{integration}: {e}"), false),
                }
            }
            Act::DeleteIntegration(name) => {
                let what = format!("Delete {name}");
                done(&what, gql::run::<ops::DeleteIntegration>(delete_integration::Variables { name }).await)
            }
            Act::DeleteCredential(key) => {
                let what = format!("Delete {key}");
                done(&what, gql::run::<ops::DeleteCredential>(delete_credential::Variables { key }).await)
            }
        }
    }
}

fn done<T>(what: &str, res: Result<T, gql::Error>) -> (String, bool) {
    match res {
        Ok(_) => (format!("{what}: done."), true),
        Err(e) => (format!("{what}: {e}"), false),
    }
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

/// Whose an integration or a credential is: its instance's, or every instance's.
fn instance_of(instance: &Option<String>) -> String {
    instance.clone().unwrap_or_else(|| "all".into())
}

/// `2026-11-28T20:05:26.33+00:00` as `2026-11-28 20:05:26`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// The form's values as an `IntegrationInput` (the fields of other kinds left out).
fn integration_input(refs: &HashMap<&'static str, NodeRef>, kind: &str) -> update_integration::IntegrationInput {
    let v = |k: &str| refs.get(k).map(input_value).unwrap_or_default().trim().to_string();
    let applies = |k: &str| fields_of(kind).contains(&k);
    let opt = |k: &str| Some(v(k)).filter(|s| !s.is_empty() && applies(k));
    let headers = match applies("headers") {
        true => v("headers")
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, val)| update_integration::HeaderInput { name: n.trim().into(), value: val.trim().into() })
            .collect(),
        false => Vec::new(),
    };
    let to = match applies("to") {
        true => v("to").split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
        false => Vec::new(),
    };
    update_integration::IntegrationInput {
        name: v("name"),
        kind: kind.to_string(),
        credential_key: Some(v("credentialKey")).filter(|k| !k.is_empty()),
        method: opt("method"),
        headers,
        body: opt("body"),
        smtp_host: opt("smtpHost"),
        smtp_port: opt("smtpPort").and_then(|p| p.parse().ok()),
        security: opt("security"),
        username: opt("username"),
        from: opt("from"),
        to,
        ca_file: opt("caFile"),
        events_url: opt("eventsUrl"),
        severity: opt("severity"),
    }
}

/// Creates the integration in `instance` (None: global), or updates the one of that name (which
/// keeps its instance).
async fn save(
    update: bool,
    i: update_integration::IntegrationInput,
    instance: Option<String>,
) -> Result<(), gql::Error> {
    if update {
        let vars = update_integration::Variables { name: i.name.clone(), input: i };
        return gql::run::<ops::UpdateIntegration>(vars).await.map(drop);
    }
    let headers = i.headers.iter().map(|h| copy_fields!(h.clone() => create_integration::HeaderInput { name, value }));
    let headers = headers.collect();
    let input = copy_fields!(i => create_integration::IntegrationInput {
        name, kind, credential_key, method, body, smtp_host, smtp_port, security, username, from, to, ca_file,
        events_url, severity; headers: headers
    });
    gql::run::<ops::CreateIntegration>(create_integration::Variables { input, instance }).await.map(drop)
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
    let (key_ref, value_ref, key_instance_ref, instance_ref) =
        (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    {
        let data = data.clone();
        use_effect_with(*bump, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match Data::read(admin, operator).await {
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
        let (refs, kind, form_error, bump, notice, instance_ref) =
            (refs.clone(), kind.clone(), form_error.clone(), bump.clone(), notice.clone(), instance_ref.clone());
        let existing: Vec<String> = match &*data {
            Load::Ready(d) => d.integrations.iter().map(|i| i.name.clone()).collect(),
            _ => Vec::new(),
        };
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = integration_input(&refs, &kind);
            let name = input.name.clone();
            let update = existing.contains(&name);
            let instance = Some(input_value(&instance_ref).trim().to_string()).filter(|i| !i.is_empty());
            let (form_error, bump, notice) = (form_error.clone(), bump.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match save(update, input, instance).await {
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
        let (key_ref, value_ref, key_instance_ref, key_error, bump, notice) = (
            key_ref.clone(),
            value_ref.clone(),
            key_instance_ref.clone(),
            key_error.clone(),
            bump.clone(),
            notice.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let key = input_value(&key_ref);
            let instance = Some(input_value(&key_instance_ref).trim().to_string()).filter(|i| !i.is_empty());
            let value_input = value_ref.cast::<HtmlInputElement>();
            let value = value_input.as_ref().map(|i| i.value()).unwrap_or_default();
            // The value leaves the page with this request and is not kept in it.
            if let Some(i) = value_input {
                i.set_value("");
            }
            let (key_error, bump, notice) = (key_error.clone(), bump.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match gql::run::<ops::SetCredential>(set_credential::Variables { key, value, instance }).await {
                    Ok(d) => {
                        key_error.set(None);
                        let r = d.set_credential;
                        notice.set(Some((format!("Credential {} set (version {}).", r.key, r.version), true)));
                        bump.set(*bump + 1);
                    }
                    Err(e) => key_error.set(Some(e)),
                }
            });
        })
    };
    let act = {
        let (bump, notice) = (bump.clone(), notice.clone());
        move |act: Act| {
            let (bump, notice) = (bump.clone(), notice.clone());
            Callback::from(move |_: MouseEvent| {
                let (bump, notice, act) = (bump.clone(), notice.clone(), act.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    notice.set(Some(act.send().await));
                    bump.set(*bump + 1);
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
            <table id="integrations"><thead><tr><th>{ "Name" }</th><th>{ "Instance" }</th><th>{ "Kind" }</th><th>{ "Credential" }</th><th>{ "Rules" }</th><th></th></tr></thead><tbody>
            { for ready.integrations.iter().map(|i| {
                let test = act(Act::Test(i.name.clone()));
                let delete = act(Act::DeleteIntegration(i.name.clone()));
                html! {
                    <tr id={format!("integration-{}", i.name)}>
                        <td>{ &i.name }</td><td>{ instance_of(&i.instance) }</td><td>{ &i.kind }</td>
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
                <label>{ "Instance (empty: every instance's, a superadmin's to make; kept on update)" }
                    <input id="i-instance" ref={instance_ref} placeholder="default" />{ err("instance") }</label>
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
            <table id="credential-keys-table"><thead><tr><th>{ "Key" }</th><th>{ "Instance" }</th><th>{ "Version" }</th><th>{ "Updated" }</th><th>{ "Used by" }</th><th></th></tr></thead><tbody>
            { for ready.credential_keys.iter().map(|k| {
                let delete = act(Act::DeleteCredential(k.key.clone()));
                html! {
                    <tr id={format!("key-{}", k.key.replace('/', "-"))}><td>{ &k.key }</td><td>{ instance_of(&k.instance) }</td><td>{ k.version }</td><td>{ short_time(&k.updated_at) }</td>
                    <td>{ k.used_by.join(", ") }</td><td><button class="small danger" onclick={delete}>{ "Delete" }</button></td></tr>
                }
            }) }
            </tbody></table>
            <form class="form" id="credential-form" onsubmit={set_credential}>
                <div class="grid">
                    <label>{ "Key" }<input id="c-key" ref={key_ref} placeholder="alerts/email" />{ field_error(&key_error, "key") }</label>
                    <label>{ "Value" }<input id="c-value" ref={value_ref} type="password" autocomplete="off" />{ field_error(&key_error, "value") }</label>
                    <label>{ "Instance (empty: every instance's, a superadmin's to set; a rotation keeps it)" }
                        <input id="c-instance" ref={key_instance_ref} placeholder="default" />{ field_error(&key_error, "instance") }</label>
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
