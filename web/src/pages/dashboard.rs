//! Dashboard: today's counts by status (live), recent failures, agents online, upcoming runs.

use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::route::Route;
use crate::status::{badge, label};
use serde::Deserialize;
use serde_json::Value;
use yew::prelude::*;
use yew_router::prelude::*;

#[derive(Clone, PartialEq, Deserialize)]
struct Count {
    status: String,
    count: i64,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Dash {
    counts: Vec<Count>,
    #[serde(rename = "runDate")]
    run_date: String,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Failure {
    id: i64,
    #[serde(rename = "taskName")]
    task_name: String,
    reason: Option<String>,
    #[serde(rename = "endedAt")]
    ended_at: Option<String>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Edge<T> {
    node: T,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Conn<T> {
    edges: Vec<Edge<T>>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Agent {
    name: String,
    status: String,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Upcoming {
    #[serde(rename = "taskName")]
    task_name: String,
    #[serde(rename = "localTime")]
    local_time: String,
    timezone: String,
    utc: String,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Data {
    dashboard: Dash,
    runs: Conn<Failure>,
    agents: Vec<Agent>,
    #[serde(rename = "upcomingRuns")]
    upcoming: Vec<Upcoming>,
}

const QUERY: &str = "{ dashboard { runDate counts { status count } } \
    runs(first: 10, filter: {status: [FAILED], sinceHours: 24}) { edges { node { id taskName reason endedAt } } } \
    agents { name status } upcomingRuns(limit: 10) { taskName localTime timezone utc } }";

#[function_component(Dashboard)]
pub fn dashboard() -> Html {
    let data = use_state(|| Load::<Data>::Loading);
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Value| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let r = gql::query::<Data>(QUERY).await;
                data.set(match r {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    // Every run transition may change a count: read again (the subscription also fires once connected).
    use_subscription("subscription { runEvents { runId to } }", Value::Null, reload);
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) => {
            let count = |s: &str| d.dashboard.counts.iter().find(|c| c.status == s).map_or(0, |c| c.count);
            let online = d.agents.iter().filter(|a| a.status == "ONLINE").count();
            html! {
                <>
                    <h2>{ format!("Today ({})", d.dashboard.run_date) }</h2>
                    <div class="counts" id="counts">
                        { for ["IDLE", "TRIGGERED", "STARTED", "RUNNING", "SUCCESS", "FAILED", "TERMINATED", "SKIPPED", "FROZEN"].iter().map(|s| {
                            let (icon, word) = label(s);
                            html! { <div class="count" id={format!("count-{}", s.to_lowercase())}>
                                <span class="n">{ count(s) }</span><span>{ format!("{icon} {word}") }</span>
                            </div> }
                        }) }
                    </div>
                    <div class="panels">
                        <div class="panel">
                            <h3>{ "Recent failures" }</h3>
                            if d.runs.edges.is_empty() { <p class="muted">{ "No failure in the last 24 hours." }</p> }
                            <ul>{ for d.runs.edges.iter().map(|e| html! {
                                <li><Link<Route> to={Route::Run { id: e.node.id }}>{ &e.node.task_name }</Link<Route>>
                                    { " " }{ badge("FAILED") }{ " " }
                                    <span class="muted">{ e.node.reason.clone().unwrap_or_default() }{ " " }{ e.node.ended_at.clone().unwrap_or_default() }</span></li>
                            }) }</ul>
                        </div>
                        <div class="panel">
                            <h3>{ format!("Agents online: {online} of {}", d.agents.len()) }</h3>
                            <ul>{ for d.agents.iter().map(|a| html! { <li>{ &a.name }{ " " }<span class="muted">{ &a.status }</span></li> }) }</ul>
                        </div>
                        <div class="panel">
                            <h3>{ "Upcoming runs" }</h3>
                            if d.upcoming.is_empty() { <p class="muted">{ "Nothing scheduled." }</p> }
                            <table><tbody>{ for d.upcoming.iter().map(|u| html! {
                                <tr><td>{ &u.task_name }</td><td>{ format!("{} {}", u.local_time, u.timezone) }</td><td class="muted">{ &u.utc }</td></tr>
                            }) }</tbody></table>
                        </div>
                    </div>
                </>
            }
        }
    };
    html! { <section id="dashboard">{ body }</section> }
}
