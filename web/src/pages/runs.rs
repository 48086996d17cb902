//! Task runs: a filtered, live list, and a run's page with its timeline of transitions, stdout
//! and stderr apart (paged, followed live), and the operators' actions.

use crate::gql;
use crate::gql::Load;
use crate::live::use_subscription;
use crate::ops::{
    self, run_detail, run_events, run_filter_groups, run_list, run_output_chunk, run_output_events, RunStatus,
};
use crate::route::Route;
use crate::session::Me;
use crate::status::badge;
use web_sys::HtmlSelectElement;
use yew::prelude::*;
use yew_router::prelude::*;

/// Sets a filter from a select's value.
fn on_select<T: 'static>(state: &UseStateHandle<T>, parse: fn(String) -> T) -> Callback<Event> {
    let state = state.clone();
    Callback::from(move |e: Event| {
        if let Some(s) = e.target_dyn_into::<HtmlSelectElement>() {
            state.set(parse(s.value()));
        }
    })
}

#[function_component(RunList)]
pub fn run_list() -> Html {
    let status = use_state(|| None::<RunStatus>);
    let name = use_state(String::new);
    let group = use_state(String::new);
    let groups = use_state(Vec::<(i64, String)>::new);
    let hours = use_state(|| 24i64);
    {
        let groups = groups.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(d) = gql::run::<ops::RunFilterGroups>(run_filter_groups::Variables).await {
                    groups.set(d.groups.nodes.into_iter().map(|g| (g.gid, g.name)).collect());
                }
            });
        });
    }
    let data = use_state(|| Load::<run_list::ResponseData>::Loading);
    let filter = run_list::RunFilterInput {
        status: status.map(|s| vec![s]),
        task_id: None,
        group_id: group.parse::<i64>().ok(),
        instance: None,
        kind: None,
        since: None,
        since_hours: Some(*hours),
        run_date: None,
        search: Some(name.trim().to_string()).filter(|n| !n.is_empty()),
    };
    let reload = {
        let (data, filter) = (data.clone(), filter.clone());
        Callback::from(move |()| {
            let (data, filter) = (data.clone(), filter.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let vars = run_list::Variables { filter: Some(filter) };
                data.set(match gql::run::<ops::RunList>(vars).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(filter, move |_| reload.emit(()));
    }
    use_subscription::<ops::RunEvents>(run_events::Variables { run_id: None }, reload.reform(|_| ()));
    let on_status = on_select(&status, |v| RunStatus::parse(&v));
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
                    <td>{ badge(r.status) }</td><td>{ r.attempt }</td><td>{ &r.run_date }</td><td>{ &r.target }</td>
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
                    <option value="" selected={status.is_none()}>{ "any" }</option>
                    { for RunStatus::ALL.into_iter().map(|s| html! {
                        <option value={s.as_str()} selected={*status == Some(s)}>{ crate::status::label(s).1 }</option>
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

#[derive(Properties, PartialEq)]
pub struct DetailProps {
    pub id: i64,
    pub me: Me,
}

/// How much of a stream a view holds: large outputs are read a window at a time.
const WINDOW: i64 = 256 * 1024;

/// Reads from `from` until `until` (or the stored end); returns the text, where it ended, and the
/// stream's total.
async fn read_range(id: i64, stream: Stream, from: i64, until: i64) -> (String, i64, i64) {
    let (mut acc, mut at, mut total) = (String::new(), from, 0);
    while at < until {
        let stream = match stream {
            Stream::Stdout => run_output_chunk::OutputStream::STDOUT,
            Stream::Stderr => run_output_chunk::OutputStream::STDERR,
        };
        // A read that fails (the server busy, a connection dropped) is tried again a few times
        // before the view settles for what it has: a failed read must not show an empty stream.
        let mut answer = None;
        for attempt in 0..6u32 {
            let vars = run_output_chunk::Variables { id, stream: stream.clone(), offset: at };
            match gql::run::<ops::RunOutputChunk>(vars).await {
                Ok(c) => {
                    answer = Some(c);
                    break;
                }
                Err(_) => gloo_timers::future::TimeoutFuture::new(200 << attempt).await,
            }
        }
        let Some(c) = answer else {
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

/// Numbers a window read of the output view: the newest is the one shown.
fn next_read(reads: &std::rc::Rc<std::cell::RefCell<u64>>) -> u64 {
    let mut n = reads.borrow_mut();
    *n += 1;
    *n
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
    // Whether the view follows the live output: `follow` for rendering, `following` for the event
    // callback, which must see a click at once (an event may come before the next render).
    let follow = use_state(|| true);
    let following = use_mut_ref(|| true);
    // Window reads overlap (a click while the latest window is still being read): each takes a
    // number and only the newest is shown, whichever finishes last; what the live output appends
    // is dropped when a window read started after it.
    let reads = use_mut_ref(|| 0u64);
    let (id, stream) = (props.id, props.stream);
    let show = {
        let (text, start, end, total, reads) = (text.clone(), start.clone(), end.clone(), total.clone(), reads.clone());
        Callback::from(move |from: Option<i64>| {
            let (text, start, end, total, reads) =
                (text.clone(), start.clone(), end.clone(), total.clone(), reads.clone());
            let ticket = next_read(&reads);
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
                if *reads.borrow() != ticket {
                    return;
                }
                *start.borrow_mut() = from;
                *end.borrow_mut() = at;
                total.set(t);
                text.set(data);
            });
        })
    };
    let on_event = {
        let (text, start, end, total, following, show, reads) =
            (text.clone(), start.clone(), end.clone(), total.clone(), following.clone(), show.clone(), reads.clone());
        Callback::from(move |event: Option<run_output_events::ResponseData>| {
            if !*following.borrow() {
                return;
            }
            if event.is_none() {
                // (Re)connected: read the latest window again.
                show.emit(None);
                return;
            }
            let (text, start, end, total, reads) =
                (text.clone(), start.clone(), end.clone(), total.clone(), reads.clone());
            let ticket = *reads.borrow();
            wasm_bindgen_futures::spawn_local(async move {
                let from = *end.borrow();
                let (data, at, t) = read_range(id, stream, from, i64::MAX).await;
                if *reads.borrow() != ticket {
                    return;
                }
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
    use_subscription::<ops::RunOutputEvents>(run_output_events::Variables { id }, on_event);
    let s = *start.borrow();
    let e = *end.borrow();
    let earlier = {
        let (show, follow, following) = (show.clone(), follow.clone(), following.clone());
        Callback::from(move |_: MouseEvent| {
            *following.borrow_mut() = false;
            follow.set(false);
            show.emit(Some(s - WINDOW));
        })
    };
    let later = {
        let (show, follow, following) = (show.clone(), follow.clone(), following.clone());
        Callback::from(move |_: MouseEvent| {
            *following.borrow_mut() = false;
            follow.set(false);
            show.emit(Some(e));
        })
    };
    let latest = {
        let (show, follow, following) = (show.clone(), follow.clone(), following.clone());
        Callback::from(move |_: MouseEvent| {
            *following.borrow_mut() = true;
            follow.set(true);
            show.emit(None);
        })
    };
    let name = stream.name();
    html! {
        <div class="output">
            <h3>{ name }<span class="muted" id={format!("{name}-range")}>{ format!(" bytes {s}–{e} of {}", *total) }</span></h3>
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
    pub stream: Stream,
}

/// A run's output stream, as a view shows it.
#[derive(Clone, Copy, PartialEq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// Its name, also the id of its view's elements.
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[function_component(RunDetail)]
pub fn run_detail(props: &DetailProps) -> Html {
    let id = props.id;
    let data = use_state(|| Load::<run_detail::ResponseData>::Loading);
    let notice = use_state(|| None::<String>);
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Option<run_events::ResponseData>| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::RunDetail>(run_detail::Variables { id }).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    use_subscription::<ops::RunEvents>(run_events::Variables { run_id: Some(id) }, reload);
    let act = {
        let notice = notice.clone();
        move |action: Action| {
            let notice = notice.clone();
            Callback::from(move |_: MouseEvent| {
                let notice = notice.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    notice.set(Some(match action.send().await {
                        Ok(()) => "Done.".to_string(),
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
            let (active, ended) = (r.status == RunStatus::Idle || r.status.is_active(), r.status.is_final());
            html! {
                <>
                <h2>{ format!("Run #{} — {}", r.id, r.task_name) }{ " " }<span id="run-status">{ badge(r.status) }</span></h2>
                <p class="muted">{ format!("{} run for {}, attempt {}, on {} as {}", r.kind, r.run_date, r.attempt, r.target, r.run_as_user) }
                    { r.pid.map(|p| format!(", pid {p}")).unwrap_or_default() }
                    { r.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default() }</p>
                if let Some(why) = &r.reason { <p id="run-reason">{ why.clone() }</p> }
                <pre class="command">{ &r.command }</pre>
                if props.me.is_operator() {
                    <div class="actions" id="actions">
                        if active && r.status != RunStatus::Idle { <button id="terminate" onclick={act(Action::Terminate(r.id))}>{ "⛔ Terminate" }</button> }
                        if let Some(tid) = r.task_id {
                            <button id="force-run" onclick={act(Action::ForceRun(tid))}>{ "🚀 Force run" }</button>
                            <button id="freeze" onclick={act(Action::Freeze(tid))}>{ "🧊 Freeze today" }</button>
                            <button id="unfreeze" onclick={act(Action::Unfreeze(tid))}>{ "Unfreeze" }</button>
                        }
                        if ended && r.status != RunStatus::Success { <button id="set-success" onclick={act(Action::SetStatus(r.id, RunStatus::Success))}>{ "Set to Success" }</button> }
                        if ended && r.status != RunStatus::Failed { <button id="set-failed" onclick={act(Action::SetStatus(r.id, RunStatus::Failed))}>{ "Set to Failed" }</button> }
                    </div>
                }
                if let Some(n) = &*notice { <p class="notice" id="notice">{ n.clone() }</p> }
                <h3>{ "Timeline" }</h3>
                <ol class="timeline" id="timeline">
                    { for r.transitions.iter().map(|t| html! {
                        <li><span class="muted">{ &t.at }</span>{ " " }{ badge(t.from) }{ " → " }{ badge(t.to) }
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
                <Output id={id} stream={Stream::Stdout} />
                <Output id={id} stream={Stream::Stderr} />
            </div>
        </section>
    }
}

/// What an operator can do from a run's page.
#[derive(Clone, Copy)]
enum Action {
    Terminate(i64),
    ForceRun(i64),
    Freeze(i64),
    Unfreeze(i64),
    SetStatus(i64, RunStatus),
}

impl Action {
    async fn send(self) -> Result<(), gql::Error> {
        match self {
            Action::Terminate(id) => {
                gql::run::<ops::TerminateRun>(ops::terminate_run::Variables { id }).await.map(drop)
            }
            Action::ForceRun(tid) => gql::run::<ops::ForceRun>(ops::force_run::Variables { tid }).await.map(drop),
            Action::Freeze(tid) => gql::run::<ops::FreezeTask>(ops::freeze_task::Variables { tid }).await.map(drop),
            Action::Unfreeze(tid) => {
                gql::run::<ops::UnfreezeTask>(ops::unfreeze_task::Variables { tid }).await.map(drop)
            }
            Action::SetStatus(id, status) => {
                gql::run::<ops::ModifyRunStatus>(ops::modify_run_status::Variables { id, status }).await.map(drop)
            }
        }
    }
}
