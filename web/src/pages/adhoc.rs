//! Adhoc: run a command on chosen agents or on every agent of a queue, as a run-as user, with a
//! maximum run time; each agent's run and output appear live.

use super::runs::{Output, Stream};
use crate::gql;
use crate::ops::{self, adhoc_agents, run_adhoc};
use crate::status::badge;
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[function_component(Adhoc)]
pub fn adhoc() -> Html {
    let agents = use_state(Vec::<adhoc_agents::AdhocAgentsAgents>::new);
    let picked = use_state(Vec::<String>::new);
    let runs = use_state(Vec::<run_adhoc::RunAdhocRunAdhoc>::new);
    let error = use_state(|| None::<gql::Error>);
    let (queue, command, user, max) = (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    {
        let agents = agents.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(d) = gql::run::<ops::AdhocAgents>(adhoc_agents::Variables).await {
                    agents.set(d.agents);
                }
            });
        });
    }
    let toggle = |name: String| {
        let picked = picked.clone();
        Callback::from(move |_: Event| {
            let mut p = (*picked).clone();
            if let Some(i) = p.iter().position(|x| *x == name) {
                p.remove(i);
            } else {
                p.push(name.clone());
            }
            picked.set(p);
        })
    };
    let submit = {
        let (picked, runs, error) = (picked.clone(), runs.clone(), error.clone());
        let (queue, command, user, max) = (queue.clone(), command.clone(), user.clone(), max.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let v = |r: &NodeRef| r.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let q = v(&queue).trim().to_string();
            let vars = run_adhoc::Variables {
                agents: if q.is_empty() { (*picked).clone() } else { Vec::new() },
                queue: Some(q).filter(|q| !q.is_empty()),
                command: v(&command),
                run_as_user: v(&user),
                max_run_time_seconds: v(&max).trim().parse::<i64>().unwrap_or(3600),
            };
            let (runs, error) = (runs.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match gql::run::<ops::RunAdhoc>(vars).await {
                    Ok(d) => {
                        error.set(None);
                        runs.set(d.run_adhoc);
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let err = |k: &str| super::field_error(&error, k);
    html! {
        <section id="adhoc">
            <h2>{ "Adhoc command" }</h2>
            <form class="form" id="adhoc-form" onsubmit={submit}>
                <fieldset><legend>{ "Agents" }</legend>
                    if agents.is_empty() { <p class="muted">{ "No agent has registered yet." }</p> }
                    { for agents.iter().map(|a| html! {
                        <label class="check"><input type="checkbox" id={format!("pick-{}", a.name)} onchange={toggle(a.name.clone())} />
                            { format!(" {} ({}; queues {})", a.name, a.status, a.queues.join(", ")) }</label>
                    }) }
                    <label>{ "…or every online agent of the queue" }<input id="adhoc-queue" ref={queue} />{ err("queue") }</label>
                    { err("agents") }
                </fieldset>
                <label>{ "Command" }<input id="adhoc-command" ref={command} required=true />{ err("command") }</label>
                <div class="grid">
                    <label>{ "Run as user" }<input id="adhoc-user" ref={user} required=true />{ err("runAsUser") }</label>
                    <label>{ "Max run time (s)" }<input id="adhoc-max" ref={max} type="number" value="3600" />{ err("maxRunTimeSeconds") }</label>
                </div>
                if let Some(e) = &*error { <p class="error" id="adhoc-error">{ e.message.clone() }</p> }
                <button id="adhoc-run" type="submit">{ "Run" }</button>
            </form>
            { for runs.iter().map(|r| html! {
                <div class="adhoc-run" id={format!("adhoc-run-{}", r.target)}>
                    <h3>{ format!("{} — run #{} ", r.target, r.id) }{ badge(r.status) }</h3>
                    <div class="outputs"><Output id={r.id} stream={Stream::Stdout} /><Output id={r.id} stream={Stream::Stderr} /></div>
                </div>
            }) }
        </section>
    }
}
