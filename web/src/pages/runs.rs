//! Task runs: a filtered, live list, and a run's page with its timeline of transitions, stdout
//! and stderr apart (paged, followed live), and the operators' actions.

use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::route::Route;
use crate::session::Me;
use crate::status::badge;
use serde::Deserialize;
use serde_json::{json, Value};
use web_sys::HtmlSelectElement;
use yew::prelude::*;
use yew_router::prelude::*;

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRow {
    id: i64,
    kind: String,
    task_id: Option<i64>,
    task_name: String,
    run_date: String,
    status: String,
    attempt: i64,
    reason: Option<String>,
    target: String,
    scheduled_for: Option<String>,
    triggered_at: Option<String>,
    ended_at: Option<String>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Edge {
    node: RunRow,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conn {
    edges: Vec<Edge>,
    total_count: i64,
}

#[derive(Clone, PartialEq, Deserialize)]
struct ListData {
    runs: Conn,
}

/// Sets a filter from a select's value.
fn on_select<T: 'static>(state: &UseStateHandle<T>, parse: fn(String) -> T) -> Callback<Event> {
    let state = state.clone();
    Callback::from(move |e: Event| {
        if let Some(s) = e.target_dyn_into::<HtmlSelectElement>() {
            state.set(parse(s.value()));
        }
    })
}

const LIST: &str = "query($f: RunFilterInput) { runs(first: 100, filter: $f) { totalCount edges { node { \
    id kind taskId taskName runDate status attempt reason target scheduledFor triggeredAt endedAt } } } }";

#[function_component(RunList)]
pub fn run_list() -> Html {
    let status = use_state(String::new);
    let name = use_state(String::new);
    let group = use_state(String::new);
    let groups = use_state(Vec::<(i64, String)>::new);
    let hours = use_state(|| 24i64);
    {
        let groups = groups.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(v) = gql::query::<Value>("{ groups(first: 500) { nodes { gid name } } }").await {
                    let list = v["groups"]["nodes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|g| Some((g["gid"].as_i64()?, g["name"].as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default();
                    groups.set(list);
                }
            });
        });
    }
    let data = use_state(|| Load::<ListData>::Loading);
    let filter = {
        let mut f = json!({ "sinceHours": *hours });
        if !status.is_empty() {
            f["status"] = json!([*status]);
        }
        if !name.trim().is_empty() {
            f["search"] = json!(name.trim());
        }
        if let Ok(g) = group.parse::<i64>() {
            f["groupId"] = json!(g);
        }
        f
    };
    let reload = {
        let (data, filter) = (data.clone(), filter.clone());
        Callback::from(move |_: Value| {
            let (data, filter) = (data.clone(), filter.clone());
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::request::<ListData>(LIST, json!({ "f": filter })).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(filter.to_string(), move |_| reload.emit(Value::Null));
    }
    use_subscription("subscription { runEvents { runId to } }", Value::Null, reload);
    let on_status = on_select(&status, |v| v);
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(i) = e.target_dyn_into::<web_sys::HtmlInputElement>() {
                name.set(i.value());
            }
        })
    };
    let on_group = on_select(&group, |v| v);
    let on_hours = on_select(&hours, |v| v.parse().unwrap_or(24));
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) if d.runs.edges.is_empty() => html! { <p class="muted" id="no-runs">{ "No run matches." }</p> },
        Load::Ready(d) => html! {
            <>
            <p class="muted">{ format!("{} runs", d.runs.total_count) }</p>
            <table id="runs"><thead><tr>
                <th>{ "Run" }</th><th>{ "Task" }</th><th>{ "Status" }</th><th>{ "Attempt" }</th><th>{ "Run date" }</th>
                <th>{ "Target" }</th><th>{ "Scheduled" }</th><th>{ "Ended" }</th><th>{ "Why" }</th>
            </tr></thead><tbody>
            { for d.runs.edges.iter().map(|e| { let r = &e.node; html! {
                <tr id={format!("run-{}", r.id)}>
                    <td><Link<Route> to={Route::Run { id: r.id }}>{ format!("#{}", r.id) }</Link<Route>></td>
                    <td>{ &r.task_name }<span class="muted">{ format!(" {}", r.kind) }</span></td>
                    <td>{ badge(&r.status) }</td><td>{ r.attempt }</td><td>{ &r.run_date }</td><td>{ &r.target }</td>
                    <td>{ r.scheduled_for.clone().or(r.triggered_at.clone()).unwrap_or_default() }</td>
                    <td>{ r.ended_at.clone().unwrap_or_default() }</td><td>{ r.reason.clone().unwrap_or_default() }</td>
                </tr>
            }}) }
            </tbody></table>
            </>
        },
    };
    html! {
        <section>
            <h2>{ "Task runs" }</h2>
            <div class="filters">
                <label>{ "Status " }<select id="filter-status" onchange={on_status}>
                    <option value="" selected={status.is_empty()}>{ "any" }</option>
                    { for ["IDLE", "TRIGGERED", "STARTED", "RUNNING", "SUCCESS", "FAILED", "TERMINATED", "SKIPPED", "FROZEN"].iter().map(|s| html! {
                        <option value={*s} selected={*status == *s}>{ crate::status::label(s).1 }</option>
                    }) }
                </select></label>
                <label>{ " Task " }<input id="filter-name" placeholder="part of the name" oninput={on_name} /></label>
                <label>{ " Group " }<select id="filter-group" onchange={on_group}>
                    <option value="" selected={group.is_empty()}>{ "any" }</option>
                    { for groups.iter().map(|(id, n)| html! { <option value={id.to_string()} selected={*group == id.to_string()}>{ n.clone() }</option> }) }
                </select></label>
                <label>{ " Since " }<select id="filter-hours" onchange={on_hours}>
                    { for [1i64, 6, 24, 72, 168].iter().map(|h| html! { <option value={h.to_string()} selected={*hours == *h}>{ format!("{h} h") }</option> }) }
                </select></label>
            </div>
            { body }
        </section>
    }
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transition {
    from: String,
    to: String,
    attempt: i64,
    at: String,
    reason: Option<String>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    id: i64,
    kind: String,
    task_id: Option<i64>,
    task_name: String,
    run_date: String,
    status: String,
    attempt: i64,
    reason: Option<String>,
    command: String,
    target: String,
    run_as_user: String,
    pid: Option<i64>,
    exit_code: Option<i64>,
    output_truncated_bytes: i64,
    transitions: Vec<Transition>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct DetailData {
    run: Detail,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    data: String,
    next_offset: i64,
    total_bytes: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChunkData {
    run_output: Chunk,
}

#[derive(Properties, PartialEq)]
pub struct DetailProps {
    pub id: i64,
    pub me: Me,
}

/// How much of a stream a view holds: large outputs are read a window at a time.
const WINDOW: i64 = 256 * 1024;

const OUTPUT_QUERY: &str = "query($id: Int!, $s: OutputStream!, $o: Int!) { runOutput(runId: $id, stream: $s, offset: $o) { data nextOffset totalBytes } }";

/// Reads from `from` until `until` (or the stored end); returns the text, where it ended, and the
/// stream's total.
async fn read_range(id: i64, stream: &str, from: i64, until: i64) -> (String, i64, i64) {
    let (mut acc, mut at, mut total) = (String::new(), from, 0);
    while at < until {
        let Ok(c) = gql::request::<ChunkData>(OUTPUT_QUERY, json!({ "id": id, "s": stream, "o": at })).await else {
            break;
        };
        let c = c.run_output;
        total = c.total_bytes;
        if c.data.is_empty() || c.next_offset <= at {
            break;
        }
        acc.push_str(&c.data);
        at = c.next_offset;
    }
    (acc, at, total)
}

/// One stream of a run's output, a window at a time: it opens on the latest output and follows
/// it live; Earlier and Later page through the rest.
#[function_component(Output)]
pub fn output(props: &OutputProps) -> Html {
    let text = use_state(String::new);
    // The window: where it starts and where reading stopped.
    let start = use_mut_ref(|| 0i64);
    let end = use_mut_ref(|| 0i64);
    let total = use_state(|| 0i64);
    let follow = use_state(|| true);
    let (id, stream) = (props.id, props.stream);
    let show = {
        let (text, start, end, total) = (text.clone(), start.clone(), end.clone(), total.clone());
        Callback::from(move |from: Option<i64>| {
            let (text, start, end, total) = (text.clone(), start.clone(), end.clone(), total.clone());
            wasm_bindgen_futures::spawn_local(async move {
                // No start given: the latest window.
                let from = match from {
                    Some(f) => f.max(0),
                    None => {
                        let (_, _, t) = read_range(id, stream, 0, 1).await;
                        (t - WINDOW).max(0)
                    }
                };
                let (data, at, t) = read_range(id, stream, from, from + WINDOW).await;
                *start.borrow_mut() = from;
                *end.borrow_mut() = at;
                total.set(t);
                text.set(data);
            });
        })
    };
    let on_event = {
        let (text, start, end, total, follow, show) =
            (text.clone(), start.clone(), end.clone(), total.clone(), follow.clone(), show.clone());
        Callback::from(move |v: Value| {
            if !*follow {
                return;
            }
            if v.is_null() {
                // (Re)connected: read the latest window again.
                show.emit(None);
                return;
            }
            let (text, start, end, total) = (text.clone(), start.clone(), end.clone(), total.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let from = *end.borrow();
                let (data, at, t) = read_range(id, stream, from, i64::MAX).await;
                let mut all = (*text).clone();
                all.push_str(&data);
                // Keep at most two windows while following.
                if all.len() as i64 > 2 * WINDOW {
                    let mut cut = all.len() - WINDOW as usize;
                    while !all.is_char_boundary(cut) {
                        cut += 1;
                    }
                    *start.borrow_mut() += cut as i64;
                    all.drain(..cut);
                }
                *end.borrow_mut() = at;
                total.set(t);
                text.set(all);
            });
        })
    };
    use_subscription(
        "subscription($id: Int!) { runOutput(runId: $id) { stream offset } }",
        json!({ "id": id }),
        on_event,
    );
    let s = *start.borrow();
    let e = *end.borrow();
    let earlier = {
        let (show, follow) = (show.clone(), follow.clone());
        Callback::from(move |_: MouseEvent| {
            follow.set(false);
            show.emit(Some(s - WINDOW));
        })
    };
    let later = {
        let (show, follow) = (show.clone(), follow.clone());
        Callback::from(move |_: MouseEvent| {
            follow.set(false);
            show.emit(Some(e));
        })
    };
    let latest = {
        let (show, follow) = (show.clone(), follow.clone());
        Callback::from(move |_: MouseEvent| {
            follow.set(true);
            show.emit(None);
        })
    };
    let name = stream.to_lowercase();
    html! {
        <div class="output">
            <h3>{ name.clone() }<span class="muted" id={format!("{name}-range")}>{ format!(" bytes {s}–{e} of {}", *total) }</span></h3>
            <div class="pager">
                <button id={format!("{name}-earlier")} disabled={s <= 0} onclick={earlier}>{ "Earlier" }</button>
                <button id={format!("{name}-later")} disabled={e >= *total} onclick={later}>{ "Later" }</button>
                <button id={format!("{name}-latest")} disabled={*follow} onclick={latest}>{ "Latest, live" }</button>
            </div>
            <pre id={name}>{ (*text).clone() }</pre>
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct OutputProps {
    pub id: i64,
    pub stream: &'static str,
}

#[function_component(RunDetail)]
pub fn run_detail(props: &DetailProps) -> Html {
    let id = props.id;
    let data = use_state(|| Load::<DetailData>::Loading);
    let notice = use_state(|| None::<String>);
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Value| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let q = "query($id: Int!) { run(id: $id) { id kind taskId taskName runDate status attempt reason command target runAsUser pid exitCode outputTruncatedBytes transitions { from to attempt at reason } } }";
                data.set(match gql::request::<DetailData>(q, json!({ "id": id })).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    use_subscription("subscription($id: Int) { runEvents(runId: $id) { to } }", json!({ "id": id }), reload);
    let act = {
        let notice = notice.clone();
        move |mutation: &'static str, vars: Value| {
            let notice = notice.clone();
            Callback::from(move |_: MouseEvent| {
                let (notice, vars) = (notice.clone(), vars.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    notice.set(Some(match gql::request::<Value>(mutation, vars).await {
                        Ok(_) => "Done.".to_string(),
                        Err(e) => e.message,
                    }));
                });
            })
        }
    };
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) => {
            let r = &d.run;
            let active = matches!(r.status.as_str(), "IDLE" | "TRIGGERED" | "STARTED" | "RUNNING");
            let ended = matches!(r.status.as_str(), "SUCCESS" | "FAILED" | "TERMINATED" | "SKIPPED");
            html! {
                <>
                <h2>{ format!("Run #{} — {}", r.id, r.task_name) }{ " " }<span id="run-status">{ badge(&r.status) }</span></h2>
                <p class="muted">{ format!("{} run for {}, attempt {}, on {} as {}", r.kind, r.run_date, r.attempt, r.target, r.run_as_user) }
                    { r.pid.map(|p| format!(", pid {p}")).unwrap_or_default() }
                    { r.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default() }</p>
                if let Some(why) = &r.reason { <p id="run-reason">{ why.clone() }</p> }
                <pre class="command">{ &r.command }</pre>
                if props.me.is_operator() {
                    <div class="actions" id="actions">
                        if active && r.status != "IDLE" { <button id="terminate" onclick={act("mutation($id: Int!) { terminateRun(id: $id) }", json!({ "id": r.id }))}>{ "⛔ Terminate" }</button> }
                        if let Some(tid) = r.task_id {
                            <button id="force-run" onclick={act("mutation($t: Int!) { forceRun(tid: $t) { id } }", json!({ "t": tid }))}>{ "🚀 Force run" }</button>
                            <button id="freeze" onclick={act("mutation($t: Int!) { freezeTask(tid: $t) { ok } }", json!({ "t": tid }))}>{ "🧊 Freeze today" }</button>
                            <button id="unfreeze" onclick={act("mutation($t: Int!) { unfreezeTask(tid: $t) { ok } }", json!({ "t": tid }))}>{ "Unfreeze" }</button>
                        }
                        if ended && r.status != "SUCCESS" { <button id="set-success" onclick={act("mutation($id: Int!) { modifyRunStatus(id: $id, status: SUCCESS) { ok } }", json!({ "id": r.id }))}>{ "Set to Success" }</button> }
                        if ended && r.status != "FAILED" { <button id="set-failed" onclick={act("mutation($id: Int!) { modifyRunStatus(id: $id, status: FAILED) { ok } }", json!({ "id": r.id }))}>{ "Set to Failed" }</button> }
                    </div>
                }
                if let Some(n) = &*notice { <p class="notice" id="notice">{ n.clone() }</p> }
                <h3>{ "Timeline" }</h3>
                <ol class="timeline" id="timeline">
                    { for r.transitions.iter().map(|t| html! {
                        <li><span class="muted">{ &t.at }</span>{ " " }{ badge(&t.from) }{ " → " }{ badge(&t.to) }
                            { format!(" (attempt {})", t.attempt) }{ t.reason.clone().map(|x| format!(" — {x}")).unwrap_or_default() }</li>
                    }) }
                </ol>
                if r.output_truncated_bytes > 0 { <p class="muted">{ format!("{} bytes of early output were cut (the tail is kept).", r.output_truncated_bytes) }</p> }
                </>
            }
        }
    };
    html! {
        <section id="run">
            { body }
            <div class="outputs">
                <Output id={id} stream="STDOUT" />
                <Output id={id} stream="STDERR" />
            </div>
        </section>
    }
}
