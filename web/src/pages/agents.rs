//! Agents: name, status, host, queues, version, CPU, memory, uptime; live.

use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::ops::{self, agent_events, agent_list};
use yew::prelude::*;

#[function_component(Agents)]
pub fn agents() -> Html {
    let data = use_state(|| Load::<agent_list::ResponseData>::Loading);
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Option<agent_events::ResponseData>| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::AgentList>(agent_list::Variables).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    use_subscription::<ops::AgentEvents>(agent_events::Variables, reload);
    let pct = |v: Option<f64>| v.map(|x| format!("{x:.0} %")).unwrap_or_else(|| "–".into());
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) if d.agents.is_empty() => html! {
            <p class="muted" id="no-agents">{ "No agent has registered yet: create an enrollment token and start baton-agent on a host." }</p>
        },
        Load::Ready(d) => html! {
            <table id="agents"><thead><tr>
                <th>{ "Name" }</th><th>{ "Status" }</th><th>{ "Host" }</th><th>{ "Queues" }</th>
                <th>{ "Version" }</th><th>{ "CPU" }</th><th>{ "Memory" }</th><th>{ "Uptime" }</th><th>{ "Failed writes" }</th>
            </tr></thead><tbody>
            { for d.agents.iter().map(|a| html! {
                <tr class={format!("agent-{}", a.status.as_str().to_lowercase())}>
                    <td>{ &a.name }</td><td>{ a.status.as_str() }
                        if let Some(why) = &a.degraded { <span class="error degraded">{ format!(" degraded: {why}") }</span> }
                    </td><td>{ &a.hostname }</td><td>{ a.queues.join(", ") }</td>
                    <td>{ &a.version }</td><td>{ pct(a.cpu_percent) }</td><td>{ pct(a.memory_percent) }</td>
                    <td>{ a.uptime_seconds.map(|s| format!("{}h {:02}m", s / 3600, (s % 3600) / 60)).unwrap_or_else(|| "–".into()) }</td>
                    <td class={(a.write_failures > 0).then_some("error")}>{ a.write_failures }</td>
                </tr>
            }) }
            </tbody></table>
        },
    };
    html! { <section><h2>{ "Agents" }</h2>{ body }</section> }
}
