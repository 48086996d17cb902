//! Import: upload a document, see its dry-run plan, apply it only on confirmation.

use crate::gql;
use serde_json::{json, Value};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(super) struct ImportProps {
    pub(super) on_done: Callback<()>,
}

/// Upload a document: its dry-run plan is shown, and applied only on confirmation.
#[function_component(Import)]
pub(super) fn import(props: &ImportProps) -> Html {
    let doc = use_state(|| None::<Value>);
    let plan = use_state(|| None::<Value>);
    let error = use_state(|| None::<String>);
    let file = use_node_ref();
    let on_file = {
        let (file, doc, plan, error) = (file.clone(), doc.clone(), plan.clone(), error.clone());
        Callback::from(move |_: Event| {
            let Some(f) = file.cast::<HtmlInputElement>().and_then(|i| i.files()).and_then(|l| l.get(0)) else {
                return;
            };
            let (doc, plan, error) = (doc.clone(), plan.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let text = match gloo_file::futures::read_as_text(&gloo_file::Blob::from(f)).await {
                    Ok(t) => t,
                    Err(e) => return error.set(Some(e.to_string())),
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    return error.set(Some("the file is not JSON".into()));
                };
                let q = "mutation($d: JSON!) { importDefinitions(document: $d, dryRun: true) { applied created { kind instance name } changed { item { kind instance name } } deleted { kind instance name } errors { path message } } }";
                match gql::request::<Value>(q, json!({ "d": v })).await {
                    Ok(p) => {
                        error.set(None);
                        plan.set(Some(p["importDefinitions"].clone()));
                        doc.set(Some(v));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let apply = {
        let (doc, plan, error, on_done) = (doc.clone(), plan.clone(), error.clone(), props.on_done.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(d) = (*doc).clone() else { return };
            let (plan, error, on_done) = (plan.clone(), error.clone(), on_done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let q = "mutation($d: JSON!) { importDefinitions(document: $d) { applied errors { path message } } }";
                match gql::request::<Value>(q, json!({ "d": d })).await {
                    Ok(p) if p["importDefinitions"]["applied"] == true => {
                        plan.set(Some(json!({ "done": true })));
                        on_done.emit(());
                    }
                    Ok(p) => error.set(Some(p["importDefinitions"]["errors"].to_string())),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let list = |p: &Value, k: &str| -> Html {
        // A change carries its item; created and deleted entries are items.
        let items: Vec<Value> = p[k]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|i| if i["item"].is_object() { i["item"].clone() } else { i })
            .collect();
        html! { <li id={format!("plan-{k}")}>{ format!("{k}: {}", items.len()) }{ " " }<span class="muted">{ items.iter().map(|i| format!("{} {}", i["kind"].as_str().unwrap_or_default(), i["name"].as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ") }</span></li> }
    };
    html! {
        <div class="form" id="import-pane">
            <h3>{ "Import definitions" }</h3>
            <input type="file" id="import-file" accept="application/json" ref={file} onchange={on_file} />
            if let Some(e) = &*error { <p class="error" id="import-error">{ e.clone() }</p> }
            if let Some(p) = &*plan {
                if p["done"] == true { <p class="notice" id="import-done">{ "Imported." }</p> } else {
                    <ul id="plan">{ list(p, "created") }{ list(p, "changed") }{ list(p, "deleted") }
                        { for p["errors"].as_array().cloned().unwrap_or_default().iter().map(|e| html! { <li class="error">{ format!("{}: {}", e["path"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default()) }</li> }) }
                    </ul>
                    if p["errors"].as_array().is_none_or(|e| e.is_empty()) { <button id="apply-import" onclick={apply}>{ "Apply this plan" }</button> }
                }
            }
        </div>
    }
}
