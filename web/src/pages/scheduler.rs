//! Scheduler health: instances, version, start time, uptime, agents, actors, triggers, restarts,
//! upcoming runs.

use crate::gql;
use crate::gql::Load;
use serde::Deserialize;
use yew::prelude::*;

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    version: String,
    instances: Vec<String>,
    started_at: String,
    uptime_seconds: i64,
    connected_agents: i64,
    task_actors: i64,
    group_actors: i64,
    runs_fired_since_start: i64,
    #[serde(rename = "scheduledRunsLast24h")]
    last_24h: i64,
    actor_restarts: i64,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upcoming {
    task_name: String,
    local_time: String,
    timezone: String,
    utc: String,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    scheduler: Health,
    upcoming_runs: Vec<Upcoming>,
}

#[function_component(Scheduler)]
pub fn scheduler() -> Html {
    let data = use_state(|| Load::<Data>::Loading);
    {
        let data = data.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let q = "{ scheduler { version instances startedAt uptimeSeconds connectedAgents taskActors groupActors runsFiredSinceStart scheduledRunsLast24h actorRestarts } upcomingRuns(limit: 20) { taskName localTime timezone utc } }";
                data.set(match gql::query::<Data>(q).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) => {
            let h = &d.scheduler;
            let row = |k: &str, v: String| html! { <tr><th>{ k.to_string() }</th><td>{ v }</td></tr> };
            html! {
                <>
                    <table id="health"><tbody>
                        { row("Version", h.version.clone()) }
                        { row("Instances", h.instances.join(", ")) }
                        { row("Started", h.started_at.clone()) }
                        { row("Uptime", format!("{} s", h.uptime_seconds)) }
                        { row("Connected agents", h.connected_agents.to_string()) }
                        { row("Task actors", h.task_actors.to_string()) }
                        { row("Group actors", h.group_actors.to_string()) }
                        { row("Runs fired since start", h.runs_fired_since_start.to_string()) }
                        { row("Scheduled runs, last 24 h", h.last_24h.to_string()) }
                        { row("Actor restarts", h.actor_restarts.to_string()) }
                    </tbody></table>
                    <h3>{ "Upcoming runs" }</h3>
                    <table><thead><tr><th>{ "Task" }</th><th>{ "Local time" }</th><th>{ "UTC" }</th></tr></thead><tbody>
                    { for d.upcoming_runs.iter().map(|u| html! {
                        <tr><td>{ &u.task_name }</td><td>{ format!("{} {}", u.local_time, u.timezone) }</td><td>{ &u.utc }</td></tr>
                    }) }
                    </tbody></table>
                </>
            }
        }
    };
    html! { <section><h2>{ "Scheduler" }</h2>{ body }</section> }
}
