//! The selected group's flow graph: layered, coloured by today's status, live; connect two nodes
//! to add a dependency.

use super::form::{load_task_input, save_task};
use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::ops::{self, flow_graph, run_events, RunStatus};
use crate::status::label;
use std::collections::HashMap;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(super) struct FlowProps {
    pub(super) gid: i64,
    pub(super) editor: bool,
    pub(super) on_open: Callback<i64>,
    pub(super) on_edit: Callback<()>,
}

type Node = flow_graph::FlowGraphGraphNodes;
type Edge = flow_graph::FlowGraphGraphEdges;

/// The group's tasks as a layered graph, each node coloured by today's latest status.
#[function_component(FlowGraph)]
pub(super) fn flow_graph(props: &FlowProps) -> Html {
    let data = use_state(|| Load::<flow_graph::ResponseData>::Loading);
    let from = use_state(|| None::<i64>);
    let connecting = use_state(|| false);
    // (message, whether it reports a refusal)
    let notice = use_state(|| None::<(String, bool)>);
    // A task whose expression must be edited by hand (an edge that is not one term).
    let fix = use_state(|| None::<i64>);
    let gid = props.gid;
    let reload = {
        let data = data.clone();
        Callback::from(move |()| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::FlowGraph>(flow_graph::Variables { gid }).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(gid, move |_| reload.emit(()));
    }
    use_subscription::<ops::RunEvents>(run_events::Variables { run_id: None }, reload.reform(|_| ()));
    let Load::Ready(d) = &*data else {
        return match &*data {
            Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
            _ => html! { <p class="muted">{ "Loading…" }</p> },
        };
    };
    let g = &d.graph;
    // Newest run of each task (runs come newest first).
    let mut today: HashMap<&str, RunStatus> = HashMap::new();
    for r in &d.runs.nodes {
        today.entry(r.task_name.as_str()).or_insert(r.status);
    }
    let by_id: HashMap<i64, &Node> = g.nodes.iter().map(|n| (n.tid, n)).collect();
    let (w, h) = (g.node_width, g.node_height);
    let click_node = {
        let (from, notice, on_open, reload, editor, connecting) =
            (from.clone(), notice.clone(), props.on_open.clone(), reload.clone(), props.editor, *connecting);
        let nodes = g.nodes.clone();
        move |tid: i64| {
            let (from, notice, on_open, reload, nodes) =
                (from.clone(), notice.clone(), on_open.clone(), reload.clone(), nodes.clone());
            Callback::from(move |_: MouseEvent| {
                if !(editor && connecting) {
                    on_open.emit(tid);
                    return;
                }
                match *from {
                    None => {
                        from.set(Some(tid));
                        notice.set(Some(("Now click the task that should wait for it.".into(), false)));
                    }
                    Some(up) => {
                        from.set(None);
                        let (Some(upstream), Some(dependant)) =
                            (nodes.iter().find(|n| n.tid == up), nodes.iter().find(|n| n.tid == tid))
                        else {
                            return;
                        };
                        let term = format!("S:{}", upstream.name);
                        let expr = match &dependant.dependency {
                            Some(d) if !d.trim().is_empty() => format!("({d}) and {term}"),
                            _ => term,
                        };
                        let (notice, reload) = (notice.clone(), reload.clone());
                        wasm_bindgen_futures::spawn_local(async move {
                            notice.set(Some(match set_dependency(tid, Some(expr)).await {
                                Ok(()) => ("Dependency added.".into(), false),
                                Err(e) => (e.field("dependency").unwrap_or(e.message), true),
                            }));
                            reload.emit(());
                        });
                    }
                }
            })
        }
    };
    // Removing an edge removes only that term of the dependant's expression, keeping the rest as
    // written; when that is not one term (`S:a or F:a`), the task's form opens on the expression.
    let remove_edge = {
        let (notice, reload, fix) = (notice.clone(), reload.clone(), fix.clone());
        let nodes = g.nodes.clone();
        move |e: &Edge| {
            let (notice, reload, fix, nodes) = (notice.clone(), reload.clone(), fix.clone(), nodes.clone());
            let (dependant, upstream) = (e.from, e.to);
            Callback::from(move |_: MouseEvent| {
                let (Some(down), Some(up)) =
                    (nodes.iter().find(|n| n.tid == dependant), nodes.iter().find(|n| n.tid == upstream))
                else {
                    return;
                };
                let written = down.dependency.clone().unwrap_or_default();
                let expr = match baton_schema::dependency::without_term(&written, &up.name) {
                    Ok(expr) => expr,
                    Err(why) => {
                        notice.set(Some((format!("Not removed: {why}."), true)));
                        fix.set(Some(dependant));
                        return;
                    }
                };
                fix.set(None);
                let (notice, reload, task) = (notice.clone(), reload.clone(), down.name.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    let said = match &expr {
                        Some(left) => format!("Dependency removed: {task} now waits for {left}."),
                        None => format!("Dependency removed: {task} waits for nothing now."),
                    };
                    notice.set(Some(match set_dependency(dependant, expr).await {
                        Ok(()) => (said, false),
                        Err(e) => (e.message, true),
                    }));
                    reload.emit(());
                });
            })
        }
    };
    html! {
        <div class="flow">
            <h3>{ format!("Group {}", g.group.name) }
                if props.editor { <button id="edit-group" onclick={{ let f = props.on_edit.clone(); Callback::from(move |_: MouseEvent| f.emit(())) }}>{ "Edit group" }</button> }
            </h3>
            if props.editor {
                <p class="muted">
                    <button id="connect" class={classes!((*connecting).then_some("on"))} onclick={{ let (c, f) = (connecting.clone(), from.clone()); Callback::from(move |_: MouseEvent| { f.set(None); c.set(!*c) }) }}>
                        { if *connecting { "Done connecting" } else { "Connect tasks" } }
                    </button>
                    { " While connecting, click a task, then the task that should wait for its success. Click an edge's label to remove it." }
                </p>
            }
            if let Some((n, refused)) = &*notice { <p class={if *refused { "error" } else { "notice" }} id="flow-notice">{ n.clone() }</p> }
            if let Some(t) = *fix { <p><button id="edit-expression" onclick={{ let f = props.on_open.clone(); Callback::from(move |_: MouseEvent| f.emit(t)) }}>{ "Edit the expression" }</button></p> }
            if g.nodes.is_empty() { <p class="muted" id="no-tasks">{ "This group has no task yet." }</p> }
            <svg id="flow-graph" width={(g.width + 20.0).to_string()} height={(g.height + 20.0).to_string()} viewBox={format!("-10 -10 {} {}", g.width + 20.0, g.height + 20.0)}>
                <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" /></marker></defs>
                { for g.edges.iter().filter_map(|e| {
                    let (a, b) = (by_id.get(&e.to)?, by_id.get(&e.from)?);
                    let (x1, y1, x2, y2) = (a.x + w / 2.0, a.y + h, b.x + w / 2.0, b.y);
                    Some(html! { <g class="edge" id={format!("edge-{}-{}", e.to, e.from)}>
                        <path d={format!("M{x1},{y1} C{x1},{} {x2},{} {x2},{y2}", y1 + 30.0, y2 - 30.0)} marker-end="url(#arrow)" />
                        <text x={((x1 + x2) / 2.0 + 4.0).to_string()} y={((y1 + y2) / 2.0).to_string()} onclick={remove_edge(e)}>{ &e.state }</text>
                    </g> })
                }) }
                { for g.nodes.iter().map(|n| {
                    let status = today.get(n.name.as_str()).copied();
                    let (icon, word) = status.map_or(("", "no run today"), label);
                    let class = classes!("node", format!("node-{}", status.map_or("none", |s| s.as_str()).to_lowercase()), (!n.active).then_some("inactive"), (*from == Some(n.tid)).then_some("picked"));
                    html! { <g class={class} id={format!("node-{}", n.name)} onclick={click_node(n.tid)}>
                        <rect x={n.x.to_string()} y={n.y.to_string()} width={w.to_string()} height={h.to_string()} rx="6" />
                        <text x={(n.x + 10.0).to_string()} y={(n.y + 18.0).to_string()}>{ &n.name }</text>
                        <text class="sub" x={(n.x + 10.0).to_string()} y={(n.y + 36.0).to_string()}>{ format!("{icon} {word}") }</text>
                    </g> }
                }) }
            </svg>
        </div>
    }
}

/// Sets a task's dependency, keeping every other field as stored.
pub(super) async fn set_dependency(tid: i64, dependency: Option<String>) -> Result<(), gql::Error> {
    let mut input = load_task_input(tid).await?;
    input.dependency = dependency;
    save_task(Some(tid), input).await.map(drop)
}
