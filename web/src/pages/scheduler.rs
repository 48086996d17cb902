//! Scheduler health: instances, version, start time, uptime, agents, actors, triggers, restarts,
//! upcoming runs.

use crate::gql;
use crate::gql::Load;
use crate::ops::{self, scheduler_health};
use yew::prelude::*;

#[function_component(Scheduler)]
pub fn scheduler() -> Html {
    let data = use_state(|| Load::<scheduler_health::ResponseData>::Loading);
    {
        let data = data.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::SchedulerHealth>(scheduler_health::Variables).await {
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
                        { row("Scheduled runs, last 24 h", h.scheduled_runs_last24h.to_string()) }
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
