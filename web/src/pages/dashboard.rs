//! Dashboard: today's counts by status (live), recent failures, agents online, upcoming runs.

use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::ops::{self, dashboard, run_events, AgentStatus, RunStatus};
use crate::route::Route;
use crate::status::{badge, label};
use yew::prelude::*;
use yew_router::prelude::*;

#[function_component(Dashboard)]
pub fn dashboard() -> Html {
    let data = use_state(|| Load::<dashboard::ResponseData>::Loading);
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Option<run_events::ResponseData>| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let r = gql::run::<ops::Dashboard>(dashboard::Variables).await;
                data.set(match r {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    // Every run transition may change a count: read again (the subscription also fires once connected).
    use_subscription::<ops::RunEvents>(run_events::Variables { run_id: None }, reload);
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) => {
            let count = |s: RunStatus| d.dashboard.counts.iter().find(|c| c.status == s).map_or(0, |c| c.count);
            let online = d.agents.iter().filter(|a| a.status == AgentStatus::Online).count();
            html! {
                <>
                    <h2>{ format!("Today ({})", d.dashboard.run_date) }</h2>
                    <div class="counts" id="counts">
                        { for RunStatus::ALL.into_iter().map(|s| {
                            let (icon, word) = label(s);
                            html! { <div class="count" id={format!("count-{}", s.as_str().to_lowercase())}>
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
                                    { " " }{ badge(RunStatus::Failed) }{ " " }
                                    <span class="muted">{ e.node.reason.clone().unwrap_or_default() }{ " " }{ e.node.ended_at.clone().unwrap_or_default() }</span></li>
                            }) }</ul>
                        </div>
                        <div class="panel">
                            <h3>{ format!("Agents online: {online} of {}", d.agents.len()) }</h3>
                            <ul>{ for d.agents.iter().map(|a| html! { <li>{ &a.name }{ " " }<span class="muted">{ a.status.as_str() }</span></li> }) }</ul>
                        </div>
                        <div class="panel">
                            <h3>{ "Upcoming runs" }</h3>
                            if d.upcoming_runs.is_empty() { <p class="muted">{ "Nothing scheduled." }</p> }
                            <table><tbody>{ for d.upcoming_runs.iter().map(|u| html! {
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
