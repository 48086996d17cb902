//! Import: upload a document, see its dry-run plan, apply it only on confirmation.

use crate::gql;
use crate::ops::{self, import_apply, import_plan};
use serde_json::Value;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// What the pane shows of an import: the dry run's plan, or that it was applied.
#[derive(Clone, PartialEq)]
enum Shown {
    Plan(import_plan::ImportPlanImportDefinitions),
    Done,
}

#[derive(Properties, PartialEq)]
pub(super) struct ImportProps {
    pub(super) on_done: Callback<()>,
}

/// Upload a document: its dry-run plan is shown, and applied only on confirmation.
#[function_component(Import)]
pub(super) fn import(props: &ImportProps) -> Html {
    let doc = use_state(|| None::<Value>);
    let plan = use_state(|| None::<Shown>);
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
                match gql::run::<ops::ImportPlan>(import_plan::Variables { document: v.clone() }).await {
                    Ok(p) => {
                        error.set(None);
                        plan.set(Some(Shown::Plan(p.import_definitions)));
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
                match gql::run::<ops::ImportApply>(import_apply::Variables { document: d }).await {
                    Ok(p) if p.import_definitions.applied => {
                        plan.set(Some(Shown::Done));
                        on_done.emit(());
                    }
                    Ok(p) => error.set(Some(
                        p.import_definitions
                            .errors
                            .iter()
                            .map(|e| format!("{}: {}", e.path, e.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    )),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let list = |k: &str, items: Vec<(&str, &str)>| -> Html {
        let names = items.iter().map(|(kind, name)| format!("{kind} {name}")).collect::<Vec<_>>().join(", ");
        html! { <li id={format!("plan-{k}")}>{ format!("{k}: {}", items.len()) }{ " " }<span class="muted">{ names }</span></li> }
    };
    html! {
        <div class="form" id="import-pane">
            <h3>{ "Import definitions" }</h3>
            <input type="file" id="import-file" accept="application/json" ref={file} onchange={on_file} />
            if let Some(e) = &*error { <p class="error" id="import-error">{ e.clone() }</p> }
            if let Some(Shown::Done) = &*plan { <p class="notice" id="import-done">{ "Imported." }</p> }
            if let Some(Shown::Plan(p)) = &*plan {
                <ul id="plan">
                    { list("created", p.created.iter().map(|i| (i.kind.as_str(), i.name.as_str())).collect()) }
                    { list("changed", p.changed.iter().map(|c| (c.item.kind.as_str(), c.item.name.as_str())).collect()) }
                    { list("deleted", p.deleted.iter().map(|i| (i.kind.as_str(), i.name.as_str())).collect()) }
                    { for p.errors.iter().map(|e| html! { <li class="error">{ format!("{}: {}", e.path, e.message) }</li> }) }
                </ul>
                if p.errors.is_empty() { <button id="apply-import" onclick={apply}>{ "Apply this plan" }</button> }
            }
        </div>
    }
}
