//! Tasks & Groups: the 40/60 split. Left, the Tasks / Groups tabs with search, an active filter
//! and a paged table; right, the selected group's flow graph (layered, coloured by today's
//! status, live; connect two nodes to add a dependency) or the create/edit form with the server's
//! validation messages beside each field and a live schedule preview. Import and export in the
//! header.

mod alert_rules;
mod flow;
mod form;
mod group_form;
mod import;
mod task_form;

use crate::gql;
use crate::gql::Load;
use crate::ops::{self, export_definitions, group_list, task_list};
use crate::session::Me;
use flow::FlowGraph;
use group_form::GroupForm;
use import::Import;
use task_form::TaskForm;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

#[derive(Clone, PartialEq)]
enum Tab {
    Tasks,
    Groups,
}

/// What the right panel shows.
#[derive(Clone, PartialEq)]
enum Pane {
    Nothing,
    Group(i64),
    TaskForm(Option<i64>),
    GroupForm(Option<i64>),
    Import,
}

/// A row of either list.
#[derive(Clone, PartialEq)]
struct Row {
    tid: Option<i64>,
    gid: Option<i64>,
    name: String,
    active: bool,
    group: Option<String>,
    schedule: String,
}

/// A page of either list.
#[derive(Clone, PartialEq)]
struct Conn {
    nodes: Vec<Row>,
    total_count: i64,
    has_next_page: bool,
    end_cursor: Option<String>,
}

/// A schedule as one line of the list: its times and timezone.
fn schedule_text(s: Option<task_list::ScheduleLine>) -> String {
    let Some(s) = s else { return String::new() };
    s.trigger_times.or(s.run_frequency).or(s.cron).map(|v| format!("{v} {}", s.timezone)).unwrap_or_default()
}

/// Reads a page of tasks or of groups.
async fn read_page(
    tasks: bool,
    filter: task_list::DefinitionFilterInput,
    after: Option<String>,
) -> Result<Conn, gql::Error> {
    if tasks {
        let c = gql::run::<ops::TaskList>(task_list::Variables { filter: Some(filter), after }).await?.tasks;
        Ok(Conn {
            nodes: c
                .nodes
                .into_iter()
                .map(|t| Row {
                    tid: Some(t.tid),
                    gid: None,
                    name: t.name,
                    active: t.active,
                    group: t.group.map(|g| g.name),
                    schedule: schedule_text(t.schedule),
                })
                .collect(),
            total_count: c.total_count,
            has_next_page: c.page_info.has_next_page,
            end_cursor: c.page_info.end_cursor,
        })
    } else {
        let filter = group_list::DefinitionFilterInput {
            instance: filter.instance,
            group_id: filter.group_id,
            active: filter.active,
            search: filter.search,
        };
        let c = gql::run::<ops::GroupList>(group_list::Variables { filter: Some(filter), after }).await?.groups;
        Ok(Conn {
            nodes: c
                .nodes
                .into_iter()
                .map(|g| Row {
                    tid: None,
                    gid: Some(g.gid),
                    name: g.name,
                    active: g.active,
                    group: None,
                    schedule: schedule_text(g.schedule.map(|s| task_list::ScheduleLine {
                        trigger_times: s.trigger_times,
                        run_frequency: s.run_frequency,
                        cron: s.cron,
                        timezone: s.timezone,
                    })),
                })
                .collect(),
            total_count: c.total_count,
            has_next_page: c.page_info.has_next_page,
            end_cursor: c.page_info.end_cursor,
        })
    }
}

/// One alert rule from a line of the form: `ON INTEGRATION [HH:MM | MINUTES] [message]`.

#[derive(Properties, PartialEq)]
pub struct Props {
    pub me: Me,
}

#[function_component(Tasks)]
pub fn tasks(props: &Props) -> Html {
    let tab = use_state(|| Tab::Tasks);
    let search = use_state(String::new);
    let active = use_state(String::new);
    let cursor = use_state(|| None::<String>);
    let list = use_state(|| Load::<Conn>::Loading);
    let pane = use_state(|| Pane::Nothing);
    // Raised each time a form is opened, so "New task" twice gives two fresh forms.
    let opened = use_state(|| 0u32);
    let bump = use_state(|| 0u32);
    // Sorting of the page shown: by name, ascending or descending; None keeps the TID order.
    let sort = use_state(|| None::<bool>);
    let editor = props.me.rank_at_least_user();
    {
        let (tab, search, active, cursor, list) =
            (tab.clone(), search.clone(), active.clone(), cursor.clone(), list.clone());
        let key = (matches!(*tab, Tab::Tasks), (*search).clone(), (*active).clone(), (*cursor).clone(), *bump);
        use_effect_with(key, move |_| {
            let filter = task_list::DefinitionFilterInput {
                instance: None,
                group_id: None,
                active: (!active.is_empty()).then(|| *active == "active"),
                search: Some((*search).clone()).filter(|s| !s.is_empty()),
            };
            let (tasks, after) = (*tab == Tab::Tasks, (*cursor).clone());
            wasm_bindgen_futures::spawn_local(async move {
                list.set(match read_page(tasks, filter, after).await {
                    Ok(c) => Load::Ready(c),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    let refresh = {
        let bump = bump.clone();
        Callback::from(move |()| bump.set(*bump + 1))
    };
    let on_search = {
        let (search, cursor) = (search.clone(), cursor.clone());
        Callback::from(move |e: InputEvent| {
            if let Some(i) = e.target_dyn_into::<HtmlInputElement>() {
                cursor.set(None);
                search.set(i.value());
            }
        })
    };
    let on_active = {
        let (active, cursor) = (active.clone(), cursor.clone());
        Callback::from(move |e: Event| {
            if let Some(s) = e.target_dyn_into::<HtmlSelectElement>() {
                cursor.set(None);
                active.set(s.value());
            }
        })
    };
    let set_tab = |t: Tab| {
        let (tab, cursor) = (tab.clone(), cursor.clone());
        Callback::from(move |_: MouseEvent| {
            cursor.set(None);
            tab.set(t.clone());
        })
    };
    let open = |p: Pane| {
        let (pane, opened) = (pane.clone(), opened.clone());
        Callback::from(move |_: MouseEvent| {
            opened.set(*opened + 1);
            pane.set(p.clone())
        })
    };
    let export = Callback::from(|_: MouseEvent| {
        wasm_bindgen_futures::spawn_local(async move {
            if let Ok(d) = gql::run::<ops::ExportDefinitions>(export_definitions::Variables).await {
                let text = serde_json::to_string_pretty(&d.export_definitions).unwrap_or_default();
                download("baton-definitions.json", &text);
            }
        });
    });
    let table = match &*list {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(c) if c.nodes.is_empty() => html! { <p class="muted" id="empty">{ "Nothing here yet." }</p> },
        Load::Ready(c) => {
            let next = {
                let (cursor, end) = (cursor.clone(), c.end_cursor.clone());
                Callback::from(move |_: MouseEvent| cursor.set(end.clone()))
            };
            let mut rows: Vec<&Row> = c.nodes.iter().collect();
            if let Some(asc) = *sort {
                rows.sort_by(|a, b| if asc { a.name.cmp(&b.name) } else { b.name.cmp(&a.name) });
            }
            let toggle_sort = {
                let sort = sort.clone();
                Callback::from(move |_: MouseEvent| sort.set(Some(!(*sort).unwrap_or(false))))
            };
            let arrow = match *sort {
                Some(true) => " ▲",
                Some(false) => " ▼",
                None => "",
            };
            html! {
                <>
                <table id="definitions"><thead><tr>
                    <th class="sortable" id="sort-name" onclick={toggle_sort}>{ format!("Name{arrow}") }</th>
                    if *tab == Tab::Tasks { <th>{ "Group" }</th> }
                    <th>{ "Schedule" }</th><th>{ "Active" }</th>
                </tr></thead><tbody>
                { for rows.into_iter().map(|r| {
                    let target = match (r.tid, r.gid) {
                        (Some(t), _) => Pane::TaskForm(Some(t)),
                        (_, Some(g)) => Pane::Group(g),
                        _ => Pane::Nothing,
                    };
                    let id = r.tid.map(|t| format!("task-{t}")).or(r.gid.map(|g| format!("group-{g}"))).unwrap_or_default();
                    html! {
                        <tr id={id} class="clickable" onclick={open(target)}>
                            <td>{ &r.name }</td>
                            if *tab == Tab::Tasks { <td>{ r.group.clone().unwrap_or_default() }</td> }
                            <td>{ &r.schedule }</td>
                            <td>{ if r.active { "🚀 Active" } else { "Inactive" } }</td>
                        </tr>
                    }
                }) }
                </tbody></table>
                <p class="muted">{ format!("{} in all", c.total_count) }
                    if cursor.is_some() { <button class="link-dark" onclick={{ let cursor = cursor.clone(); Callback::from(move |_: MouseEvent| cursor.set(None)) }}>{ "First page" }</button> }
                    if c.has_next_page { <button class="link-dark" id="next-page" onclick={next}>{ "Next page" }</button> }
                </p>
                </>
            }
        }
    };
    let right = match &*pane {
        Pane::Nothing => {
            html! { <p class="muted">{ "Select a group to see its flow graph, or a task to edit it." }</p> }
        }
        Pane::Group(g) => {
            html! { <FlowGraph gid={*g} editor={editor} on_open={{ let pane = pane.clone(); Callback::from(move |t: i64| pane.set(Pane::TaskForm(Some(t)))) }} on_edit={{ let pane = pane.clone(); let g = *g; Callback::from(move |()| pane.set(Pane::GroupForm(Some(g)))) }} /> }
        }
        Pane::TaskForm(t) => {
            html! { <TaskForm key={format!("t{t:?}-{}", *opened)} tid={*t} editor={editor} on_saved={refresh.clone()} /> }
        }
        Pane::GroupForm(g) => {
            html! { <GroupForm key={format!("g{g:?}-{}", *opened)} gid={*g} editor={editor} on_saved={{ let (pane, refresh) = (pane.clone(), refresh.clone()); Callback::from(move |gid: i64| { refresh.emit(()); pane.set(Pane::Group(gid)) }) }} /> }
        }
        Pane::Import => html! { <Import on_done={refresh.clone()} /> },
    };
    html! {
        <section id="tasks-page">
            <div class="page-head">
                <h2>{ "Tasks & Groups" }</h2>
                if editor {
                    <button id="new-task" onclick={open(Pane::TaskForm(None))}>{ "New task" }</button>
                    <button id="new-group" onclick={open(Pane::GroupForm(None))}>{ "New group" }</button>
                    <button id="import" onclick={open(Pane::Import)}>{ "Import" }</button>
                }
                <button id="export" onclick={export}>{ "Export" }</button>
            </div>
            <div class="split">
                <div class="left">
                    <div class="tabs">
                        <button id="tab-tasks" class={classes!((*tab == Tab::Tasks).then_some("on"))} onclick={set_tab(Tab::Tasks)}>{ "Tasks" }</button>
                        <button id="tab-groups" class={classes!((*tab == Tab::Groups).then_some("on"))} onclick={set_tab(Tab::Groups)}>{ "Groups" }</button>
                    </div>
                    <div class="filters">
                        <input id="search" placeholder="Search by name" value={(*search).clone()} oninput={on_search} />
                        <select id="active-filter" onchange={on_active}>
                            <option value="" selected={active.is_empty()}>{ "all" }</option>
                            <option value="active" selected={*active == "active"}>{ "active" }</option>
                            <option value="inactive" selected={*active == "inactive"}>{ "inactive" }</option>
                        </select>
                    </div>
                    { table }
                </div>
                <div class="right">{ right }</div>
            </div>
        </section>
    }
}

/// Offers a text as a file download.
fn download(name: &str, text: &str) {
    let href = format!("data:application/json;charset=utf-8,{}", js_sys_encode(text));
    let doc = gloo_utils::document();
    if let Ok(a) = doc.create_element("a") {
        let _ = a.set_attribute("href", &href);
        let _ = a.set_attribute("download", name);
        if let Some(body) = doc.body() {
            let _ = body.append_child(&a);
            if let Ok(el) = wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(a) {
                el.click();
                el.remove();
            }
        }
    }
}

fn js_sys_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
