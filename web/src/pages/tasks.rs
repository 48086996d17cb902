//! Tasks & Groups: the 40/60 split. Left, the Tasks / Groups tabs with search, an active filter
//! and a paged table; right, the selected group's flow graph (layered, coloured by today's
//! status, live; connect two nodes to add a dependency) or the create/edit form with the server's
//! validation messages beside each field and a live schedule preview. Import and export in the
//! header.

use super::{field_error, input_value};
use crate::gql;
use crate::live::use_subscription;
use crate::status::label;
use crate::{Load, Me};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
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

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(default)]
    tid: Option<i64>,
    #[serde(default)]
    gid: Option<i64>,
    name: String,
    active: bool,
    #[serde(default)]
    group: Option<Named>,
    #[serde(default)]
    schedule: Option<Value>,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Named {
    name: String,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conn {
    nodes: Vec<Row>,
    total_count: i64,
    page_info: PageInfo,
}

fn schedule_text(s: &Option<Value>) -> String {
    let Some(s) = s else { return String::new() };
    let tz = s["timezone"].as_str().unwrap_or_default();
    for k in ["triggerTimes", "runFrequency", "cron"] {
        if let Some(v) = s[k].as_str() {
            return format!("{v} {tz}");
        }
    }
    String::new()
}

/// One alert rule from a line of the form: `ON INTEGRATION [HH:MM | MINUTES] [message]`.
fn alert_rule(line: &str) -> Value {
    let mut words = line.split_whitespace();
    let on = words.next().unwrap_or_default().to_string();
    let integration = words.next().unwrap_or_default().to_string();
    let mut rest: Vec<&str> = words.collect();
    let (mut at, mut minutes) = (Value::Null, Value::Null);
    if let Some(first) = rest.first().copied() {
        if on == "longer_than" && first.parse::<i64>().is_ok() {
            minutes = json!(first.parse::<i64>().unwrap_or(0));
            rest.remove(0);
        } else if matches!(on.as_str(), "not_started_by" | "still_running_at") && first.contains(':') {
            at = json!(first);
            rest.remove(0);
        }
    }
    let message = rest.join(" ");
    json!({ "on": on, "integration": integration, "at": at, "minutes": minutes,
            "message": if message.is_empty() { Value::Null } else { json!(message) } })
}

/// A stored alert rule as a line of the form.
fn alert_line(r: &Value) -> String {
    let mut parts = vec![
        r["on"].as_str().unwrap_or_default().to_string(),
        r["integration"].as_str().unwrap_or_default().to_string(),
    ];
    if let Some(a) = r["at"].as_str() {
        parts.push(a.to_string());
    }
    if let Some(m) = r["minutes"].as_i64() {
        parts.push(m.to_string());
    }
    if let Some(m) = r["message"].as_str() {
        parts.push(m.to_string());
    }
    parts.join(" ")
}

#[derive(Properties, PartialEq)]
struct AlertSectionProps {
    /// The textarea of alert lines this section edits.
    lines: NodeRef,
    /// `f` in the task form, `g` in the group form.
    prefix: &'static str,
    editor: bool,
    error: Html,
}

/// The alert section of a form: the rules as lines, and a picker that adds one with an existing
/// integration.
#[function_component(AlertSection)]
fn alert_section(props: &AlertSectionProps) -> Html {
    let names = use_state(Vec::<String>::new);
    {
        let names = names.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(v) = gql::query::<Value>("{ integrations { name } }").await {
                    names.set(
                        v["integrations"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|i| i["name"].as_str().map(str::to_string)).collect())
                            .unwrap_or_default(),
                    );
                }
            });
        });
    }
    let (on, integration, when, message) = (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    let add = {
        let (lines, on, integration, when, message) =
            (props.lines.clone(), on.clone(), integration.clone(), when.clone(), message.clone());
        Callback::from(move |_: MouseEvent| {
            let parts: Vec<String> = [&on, &integration, &when, &message]
                .iter()
                .map(|r| input_value(r).trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            if let Some(t) = lines.cast::<HtmlTextAreaElement>() {
                let mut text = t.value().trim_end().to_string();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&parts.join(" "));
                t.set_value(&text);
            }
            for r in [&when, &message] {
                if let Some(i) = r.cast::<HtmlInputElement>() {
                    i.set_value("");
                }
            }
        })
    };
    let p = props.prefix;
    html! {
        <fieldset class="alerts" id={format!("{p}-alert-section")}>
            <legend>{ "Alerts" }</legend>
            <label>{ "One per line: ON INTEGRATION [HH:MM | MINUTES] [message] (on: failure, success, always, retry, timeout, not_started_by, still_running_at, longer_than)" }
                <textarea id={format!("{p}-alerts")} ref={props.lines.clone()} disabled={!props.editor} />{ props.error.clone() }</label>
            if props.editor {
                <div class="grid picker">
                    <label>{ "On" }<select id={format!("{p}-alert-on")} ref={on}>
                        { for ["failure", "success", "always", "retry", "timeout", "not_started_by", "still_running_at", "longer_than"].iter().map(|o| html! { <option value={*o}>{ *o }</option> }) }
                    </select></label>
                    <label>{ "Integration" }<select id={format!("{p}-alert-integration")} ref={integration}>
                        { for names.iter().map(|n| html! { <option value={n.clone()}>{ n }</option> }) }
                    </select></label>
                    <label>{ "At HH:MM or minutes" }<input id={format!("{p}-alert-when")} ref={when} /></label>
                    <label>{ "Message (placeholders: ${T:task_name}, ${P:status}, ${P:stdout}…)" }<input id={format!("{p}-alert-message")} ref={message} /></label>
                    <button type="button" class="small" id={format!("{p}-alert-add")} onclick={add} disabled={names.is_empty()}>{ "Add alert" }</button>
                </div>
                if names.is_empty() { <p class="muted">{ "No integration yet: define one on the Integrations page." }</p> }
            }
        </fieldset>
    }
}

/// A form's text as an optional value: blank is absent.
fn optional(s: &str) -> Value {
    if s.trim().is_empty() {
        Value::Null
    } else {
        json!(s.trim())
    }
}

/// The kind of a stored schedule (`triggerTimes`, `runFrequency` or `cron`) and its text.
fn schedule_kind(s: &Value) -> (&'static str, String) {
    ["triggerTimes", "runFrequency", "cron"]
        .iter()
        .find_map(|k| s[*k].as_str().map(|v| (*k, v.to_string())))
        .unwrap_or(("triggerTimes", String::new()))
}

/// The schedule a form's fields describe (`kind`, `when`, `timezone`, `days`, `calendar`); no
/// `when` means no schedule.
fn schedule_input(v: &dyn Fn(&str) -> String) -> Value {
    let when = v("when");
    if when.trim().is_empty() {
        return Value::Null;
    }
    let mut s =
        json!({ "timezone": v("timezone"), "days": optional(&v("days")), "calendar": optional(&v("calendar")) });
    s[v("kind")] = json!(when.trim());
    s
}

/// Puts the stored values into the fields once (the fields are not bound to state, so a
/// re-render never overwrites what the user is typing).
fn fill_fields(refs: &HashMap<&'static str, NodeRef>, values: &[(&'static str, String)]) {
    for (k, v) in values {
        let Some(r) = refs.get(k) else { continue };
        if let Some(i) = r.cast::<HtmlInputElement>() {
            if i.type_() == "checkbox" {
                i.set_checked(v == "true");
            } else {
                i.set_value(v);
            }
        } else if let Some(t) = r.cast::<HtmlTextAreaElement>() {
            t.set_value(v);
        } else if let Some(sel) = r.cast::<HtmlSelectElement>() {
            sel.set_value(v);
        }
    }
}

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
            let mut f = json!({});
            if !search.is_empty() {
                f["search"] = json!(*search);
            }
            if !active.is_empty() {
                f["active"] = json!(*active == "active");
            }
            let q = if *tab == Tab::Tasks {
                "query($f: DefinitionFilterInput, $a: String) { conn: tasks(filter: $f, first: 50, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { tid name active group { name } schedule { triggerTimes runFrequency cron timezone } } } }"
            } else {
                "query($f: DefinitionFilterInput, $a: String) { conn: groups(filter: $f, first: 50, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { gid name active schedule { triggerTimes runFrequency cron timezone } } } }"
            };
            let vars = json!({ "f": f, "a": *cursor });
            wasm_bindgen_futures::spawn_local(async move {
                #[derive(Deserialize)]
                struct D {
                    conn: Conn,
                }
                list.set(match gql::request::<D>(q, vars).await {
                    Ok(d) => Load::Ready(d.conn),
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
            if let Ok(v) = gql::query::<Value>("{ exportDefinitions }").await {
                let text = serde_json::to_string_pretty(&v["exportDefinitions"]).unwrap_or_default();
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
                let (cursor, end) = (cursor.clone(), c.page_info.end_cursor.clone());
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
                            if *tab == Tab::Tasks { <td>{ r.group.as_ref().map(|g| g.name.clone()).unwrap_or_default() }</td> }
                            <td>{ schedule_text(&r.schedule) }</td>
                            <td>{ if r.active { "🚀 Active" } else { "Inactive" } }</td>
                        </tr>
                    }
                }) }
                </tbody></table>
                <p class="muted">{ format!("{} in all", c.total_count) }
                    if cursor.is_some() { <button class="link-dark" onclick={{ let cursor = cursor.clone(); Callback::from(move |_: MouseEvent| cursor.set(None)) }}>{ "First page" }</button> }
                    if c.page_info.has_next_page { <button class="link-dark" id="next-page" onclick={next}>{ "Next page" }</button> }
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

#[derive(Properties, PartialEq)]
struct FlowProps {
    gid: i64,
    editor: bool,
    on_open: Callback<i64>,
    on_edit: Callback<()>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    tid: i64,
    name: String,
    active: bool,
    dependency: Option<String>,
    x: f64,
    y: f64,
}

#[derive(Clone, PartialEq, Deserialize)]
struct Edge {
    from: i64,
    to: i64,
    state: String,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Graph {
    group: Named,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    width: f64,
    height: f64,
    node_width: f64,
    node_height: f64,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TodayRun {
    task_name: String,
    status: String,
}

#[derive(Clone, PartialEq, Deserialize)]
struct GraphData {
    graph: Graph,
    runs: RunConn,
}

#[derive(Clone, PartialEq, Deserialize)]
struct RunConn {
    nodes: Vec<TodayRun>,
}

/// The group's tasks as a layered graph, each node coloured by today's latest status.
#[function_component(FlowGraph)]
fn flow_graph(props: &FlowProps) -> Html {
    let data = use_state(|| Load::<GraphData>::Loading);
    let from = use_state(|| None::<i64>);
    let connecting = use_state(|| false);
    // (message, whether it reports a refusal)
    let notice = use_state(|| None::<(String, bool)>);
    let gid = props.gid;
    let reload = {
        let data = data.clone();
        Callback::from(move |_: Value| {
            let data = data.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let q = "query($g: Int!) { graph: flowGraph(gid: $g) { group { name } width height nodeWidth nodeHeight nodes { tid name active dependency x y } edges { from to state } } runs(first: 500, filter: {groupId: $g, sinceHours: 24}) { nodes { taskName status } } }";
                data.set(match gql::request::<GraphData>(q, json!({ "g": gid })).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(gid, move |_| reload.emit(Value::Null));
    }
    use_subscription("subscription { runEvents { runId to } }", Value::Null, reload.clone());
    let Load::Ready(d) = &*data else {
        return match &*data {
            Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
            _ => html! { <p class="muted">{ "Loading…" }</p> },
        };
    };
    let g = &d.graph;
    // Newest run of each task (runs come newest first).
    let mut today: HashMap<&str, &str> = HashMap::new();
    for r in &d.runs.nodes {
        today.entry(r.task_name.as_str()).or_insert(r.status.as_str());
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
                            reload.emit(Value::Null);
                        });
                    }
                }
            })
        }
    };
    let remove_edge = {
        let (notice, reload) = (notice.clone(), reload.clone());
        let nodes = g.nodes.clone();
        let edges = g.edges.clone();
        move |e: &Edge| {
            let (notice, reload, nodes, edges) = (notice.clone(), reload.clone(), nodes.clone(), edges.clone());
            let (dependant, upstream) = (e.from, e.to);
            Callback::from(move |_: MouseEvent| {
                // What remains: the other edges of that task, all required.
                let terms: Vec<String> = edges
                    .iter()
                    .filter(|x| x.from == dependant && x.to != upstream)
                    .filter_map(|x| nodes.iter().find(|n| n.tid == x.to).map(|n| format!("{}:{}", x.state, n.name)))
                    .collect();
                let expr = (!terms.is_empty()).then(|| terms.join(" and "));
                let (notice, reload) = (notice.clone(), reload.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    notice.set(Some(match set_dependency(dependant, expr).await {
                        Ok(()) => ("Dependency removed.".into(), false),
                        Err(e) => (e.message, true),
                    }));
                    reload.emit(Value::Null);
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
                    let status = today.get(n.name.as_str()).copied().unwrap_or("NONE");
                    let (icon, word) = if status == "NONE" { ("", "no run today") } else { label(status) };
                    let class = classes!("node", format!("node-{}", status.to_lowercase()), (!n.active).then_some("inactive"), (*from == Some(n.tid)).then_some("picked"));
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
async fn set_dependency(tid: i64, dependency: Option<String>) -> Result<(), gql::Error> {
    let mut input = load_task_input(tid).await?;
    input["dependency"] = json!(dependency);
    gql::request::<Value>(
        "mutation($t: Int!, $i: TaskInput!) { updateTask(tid: $t, input: $i) { tid } }",
        json!({ "t": tid, "i": input }),
    )
    .await
    .map(|_| ())
}

const TASK_FIELDS: &str = "name description owner team instance group { name } command target runAsUser stdoutPath stderrPath profile { name value } active schedule { triggerTimes runFrequency cron days timezone calendar } retryAttempts retryDelaySeconds maxRunTimeSeconds acceptExpirySeconds dependency misfirePolicy alerts { on at minutes integration message }";

/// A stored task as the input that saves it unchanged.
async fn load_task_input(tid: i64) -> Result<Value, gql::Error> {
    let q = format!("query($t: Int!) {{ task(tid: $t) {{ {TASK_FIELDS} }} }}");
    let v = gql::request::<Value>(&q, json!({ "t": tid })).await?;
    let mut t = v["task"].clone();
    t["group"] = t["group"]["name"].clone();
    Ok(t)
}

#[derive(Properties, PartialEq)]
struct TaskFormProps {
    tid: Option<i64>,
    editor: bool,
    on_saved: Callback<()>,
}

/// Every field of a task; the server validates, and its messages appear beside the fields.
#[function_component(TaskForm)]
fn task_form(props: &TaskFormProps) -> Html {
    let loaded = use_state(|| {
        props.tid.is_none().then(|| json!({"instance": "default", "active": true, "retryAttempts": 0, "retryDelaySeconds": 60, "maxRunTimeSeconds": 3600, "acceptExpirySeconds": 300, "misfirePolicy": "run_once"}))
    });
    let error = use_state(|| None::<gql::Error>);
    let saved = use_state(|| None::<String>);
    let preview = use_state(Vec::<Value>::new);
    let calendars = use_state(Vec::<String>::new);
    {
        let calendars = calendars.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(v) = gql::query::<Value>("{ calendars { name } }").await {
                    let names = v["calendars"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    calendars.set(names);
                }
            });
        });
    }
    let refs: HashMap<&'static str, NodeRef> = (*use_state(|| {
        [
            "name",
            "description",
            "owner",
            "team",
            "instance",
            "group",
            "command",
            "target",
            "runAsUser",
            "stdoutPath",
            "stderrPath",
            "profile",
            "kind",
            "when",
            "days",
            "timezone",
            "calendar",
            "retryAttempts",
            "retryDelaySeconds",
            "maxRunTimeSeconds",
            "acceptExpirySeconds",
            "dependency",
            "misfirePolicy",
            "active",
            "alerts",
        ]
        .into_iter()
        .map(|k| (k, NodeRef::default()))
        .collect::<HashMap<_, _>>()
    }))
    .clone();
    {
        let (loaded, tid) = (loaded.clone(), props.tid);
        use_effect_with(tid, move |_| {
            if let Some(t) = tid {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(v) = load_task_input(t).await {
                        loaded.set(Some(v));
                    }
                });
            }
        });
    }
    let Some(t) = (*loaded).clone() else { return html! { <p class="muted">{ "Loading…" }</p> } };
    let collect = {
        let refs = refs.clone();
        move || -> Value {
            let v = |k: &str| input_value(&refs[k]);
            let opt = |k: &str| optional(&v(k));
            let num = |k: &str| v(k).trim().parse::<i64>().map(Value::from).unwrap_or(Value::Null);
            let profile: Vec<Value> = v("profile")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, val)| json!({ "name": k.trim(), "value": val }))
                .collect();
            let schedule = schedule_input(&v);
            let active = refs["active"].cast::<HtmlInputElement>().is_none_or(|i| i.checked());
            let alerts: Vec<Value> = v("alerts").lines().filter(|l| !l.trim().is_empty()).map(alert_rule).collect();
            json!({
                "alerts": alerts,
                "name": v("name"), "description": v("description"), "owner": v("owner"), "team": v("team"),
                "instance": v("instance"), "group": opt("group"), "command": v("command"), "target": v("target"),
                "runAsUser": v("runAsUser"), "stdoutPath": opt("stdoutPath"), "stderrPath": opt("stderrPath"),
                "profile": profile, "active": active, "schedule": schedule,
                "retryAttempts": num("retryAttempts"), "retryDelaySeconds": num("retryDelaySeconds"),
                "maxRunTimeSeconds": num("maxRunTimeSeconds"), "acceptExpirySeconds": num("acceptExpirySeconds"),
                "dependency": opt("dependency"), "misfirePolicy": v("misfirePolicy"),
            })
        }
    };
    let on_preview = {
        let (collect, preview) = (collect.clone(), preview.clone());
        Callback::from(move |_: Event| {
            let input = collect();
            let preview = preview.clone();
            if input["schedule"].is_null() {
                preview.set(Vec::new());
                return;
            }
            wasm_bindgen_futures::spawn_local(async move {
                let q = "query($s: ScheduleInput!, $i: String!) { schedulePreview(schedule: $s, instance: $i, count: 8) { runDate localTime utc dst holiday } }";
                if let Ok(v) = gql::request::<Value>(q, json!({ "s": input["schedule"], "i": input["instance"] })).await
                {
                    preview.set(v["schedulePreview"].as_array().cloned().unwrap_or_default());
                }
            });
        })
    };
    let submit = {
        let (collect, error, saved, on_saved, tid) =
            (collect.clone(), error.clone(), saved.clone(), props.on_saved.clone(), props.tid);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let input = collect();
            let (error, saved, on_saved) = (error.clone(), saved.clone(), on_saved.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let res =
                    match tid {
                        Some(t) => gql::request::<Value>(
                            "mutation($t: Int!, $i: TaskInput!) { saved: updateTask(tid: $t, input: $i) { tid name } }",
                            json!({ "t": t, "i": input }),
                        )
                        .await,
                        None => {
                            gql::request::<Value>(
                                "mutation($i: TaskInput!) { saved: createTask(input: $i) { tid name } }",
                                json!({ "i": input }),
                            )
                            .await
                        }
                    };
                match res {
                    Ok(v) => {
                        error.set(None);
                        saved.set(Some(format!("Saved task {}.", v["saved"]["name"].as_str().unwrap_or_default())));
                        on_saved.emit(());
                    }
                    Err(e) => {
                        saved.set(None);
                        error.set(Some(e));
                    }
                }
            });
        })
    };
    let s = &t["schedule"];
    let (kind, when) = schedule_kind(s);
    let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
    let num = |k: &str| t[k].as_i64().map(|n| n.to_string()).unwrap_or_default();
    let profile_text = t["profile"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!("{}={}", p["name"].as_str().unwrap_or_default(), p["value"].as_str().unwrap_or_default())
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let initial: Vec<(&'static str, String)> = vec![
        ("name", text("name")),
        ("group", text("group")),
        ("instance", text("instance")),
        ("owner", text("owner")),
        ("team", text("team")),
        ("description", text("description")),
        ("command", text("command")),
        ("target", text("target")),
        ("runAsUser", text("runAsUser")),
        ("stdoutPath", text("stdoutPath")),
        ("stderrPath", text("stderrPath")),
        ("profile", profile_text),
        ("kind", kind.to_string()),
        ("when", when),
        ("days", s["days"].as_str().unwrap_or_default().to_string()),
        ("timezone", s["timezone"].as_str().unwrap_or("UTC").to_string()),
        ("calendar", s["calendar"].as_str().unwrap_or_default().to_string()),
        ("retryAttempts", num("retryAttempts")),
        ("retryDelaySeconds", num("retryDelaySeconds")),
        ("maxRunTimeSeconds", num("maxRunTimeSeconds")),
        ("acceptExpirySeconds", num("acceptExpirySeconds")),
        ("dependency", text("dependency")),
        ("misfirePolicy", text("misfirePolicy")),
        ("active", t["active"].as_bool().unwrap_or(true).to_string()),
        (
            "alerts",
            t["alerts"].as_array().map(|a| a.iter().map(alert_line).collect::<Vec<_>>().join("\n")).unwrap_or_default(),
        ),
    ];
    {
        // Once per loaded definition: later renders never overwrite what was typed.
        let refs = refs.clone();
        use_effect_with(t.to_string(), move |_| fill_fields(&refs, &initial));
    }
    let err = |k: &str| field_error(&error, k);
    let field = |label_text: &str, k: &'static str| {
        html! {
            <label>{ label_text.to_string() }<input id={format!("f-{k}")} list={(k == "calendar").then_some("calendar-names")} ref={refs[k].clone()} disabled={!props.editor} onchange={on_preview.clone()} />{ err(k) }</label>
        }
    };
    html! {
        <form id="task-form" class="form" onsubmit={submit}>
            <h3>{ if props.tid.is_some() { format!("Task {}", text("name")) } else { "New task".to_string() } }</h3>
            <div class="grid">
                { field("Name", "name") }
                { field("Group (inherits its schedule)", "group") }
                { field("Instance", "instance") }
                { field("Owner", "owner") }
                { field("Team", "team") }
                { field("Description", "description") }
            </div>
            <label>{ "Command" }<textarea id="f-command" ref={refs["command"].clone()} disabled={!props.editor} />{ err("command") }</label>
            <div class="grid">
                { field("Target (agent, host or queue)", "target") }
                { field("Run as user", "runAsUser") }
                { field("Stdout file", "stdoutPath") }
                { field("Stderr file", "stderrPath") }
            </div>
            <label>{ "Profile (NAME=value per line)" }<textarea id="f-profile" ref={refs["profile"].clone()} disabled={!props.editor} />{ err("profile") }</label>
            <fieldset><legend>{ "Schedule" }</legend>
                <div class="grid">
                    <label>{ "Kind" }<select id="f-kind" ref={refs["kind"].clone()} onchange={on_preview.clone()} disabled={!props.editor}>
                        { for [("triggerTimes", "Trigger times (HH:MM,…)"), ("runFrequency", "Run frequency (START-END-MINUTES)"), ("cron", "Cron")].iter().map(|(k, l)| html! { <option value={*k}>{ *l }</option> }) }
                    </select></label>
                    { field("When", "when") }
                    { field("Days (mask, ordinal or blank)", "days") }
                    { field("Timezone", "timezone") }
                    { field("Calendar", "calendar") }
                </div>
                { err("schedule") }{ err("triggerTimes") }{ err("runFrequency") }{ err("cron") }{ err("timezone") }
                if !preview.is_empty() {
                    <table id="preview" class="preview"><thead><tr><th>{ "Run date" }</th><th>{ "Local" }</th><th>{ "UTC" }</th><th>{ "" }</th></tr></thead><tbody>
                    { for preview.iter().map(|p| html! { <tr>
                        <td>{ p["runDate"].as_str().unwrap_or_default() }</td><td>{ p["localTime"].as_str().unwrap_or_default() }</td>
                        <td>{ p["utc"].as_str().unwrap_or_default() }</td>
                        <td>{ p["dst"].as_str().map(|d| format!("DST: {d}")).unwrap_or_default() }{ p["holiday"].as_str().map(|h| format!(" holiday: {h}")).unwrap_or_default() }</td>
                    </tr> }) }
                    </tbody></table>
                }
            </fieldset>
            <div class="grid">
                { field("Retry attempts", "retryAttempts") }
                { field("Retry delay (s)", "retryDelaySeconds") }
                { field("Max run time (s)", "maxRunTimeSeconds") }
                { field("Accept expiry (s)", "acceptExpirySeconds") }
                { field("Dependency (e.g. S:extract and F:load)", "dependency") }
                <label>{ "Misfire policy" }<select id="f-misfirePolicy" ref={refs["misfirePolicy"].clone()} disabled={!props.editor}>
                    { for ["run_once", "run_all", "skip"].iter().map(|p| html! { <option value={*p}>{ *p }</option> }) }
                </select></label>
                <label class="check"><input type="checkbox" id="f-active" ref={refs["active"].clone()} disabled={!props.editor} />{ " Active" }</label>
            </div>
            <datalist id="calendar-names">{ for calendars.iter().map(|c| html! { <option value={c.clone()} /> }) }</datalist>
            <AlertSection lines={refs["alerts"].clone()} prefix="f" editor={props.editor} error={err("alerts")} />
            if let Some(e) = &*error { if e.fields.is_empty() { <p class="error" id="form-error">{ e.message.clone() }</p> } else { <p class="error" id="form-error">{ "Please correct the fields marked below or above." }</p> } }
            if let Some(m) = &*saved { <p class="notice" id="form-saved">{ m.clone() }</p> }
            if props.editor { <button id="save-task" type="submit">{ "Save" }</button> }
        </form>
    }
}

#[derive(Properties, PartialEq)]
struct GroupFormProps {
    gid: Option<i64>,
    editor: bool,
    on_saved: Callback<i64>,
}

#[function_component(GroupForm)]
fn group_form(props: &GroupFormProps) -> Html {
    let loaded = use_state(|| props.gid.is_none().then(|| json!({"instance": "default", "active": true})));
    let error = use_state(|| None::<gql::Error>);
    let refs: HashMap<&'static str, NodeRef> = (*use_state(|| {
        [
            "name",
            "description",
            "owner",
            "team",
            "instance",
            "kind",
            "when",
            "days",
            "timezone",
            "calendar",
            "dependency",
            "active",
            "alerts",
        ]
        .into_iter()
        .map(|k| (k, NodeRef::default()))
        .collect::<HashMap<_, _>>()
    }))
    .clone();
    {
        let (loaded, gid) = (loaded.clone(), props.gid);
        use_effect_with(gid, move |_| {
            if let Some(g) = gid {
                wasm_bindgen_futures::spawn_local(async move {
                    let q = "query($g: Int!) { group(gid: $g) { name description owner team instance active dependency schedule { triggerTimes runFrequency cron days timezone calendar } alerts { on at minutes integration message } } }";
                    if let Ok(v) = gql::request::<Value>(q, json!({ "g": g })).await {
                        loaded.set(Some(v["group"].clone()));
                    }
                });
            }
        });
    }
    let Some(t) = (*loaded).clone() else { return html! { <p class="muted">{ "Loading…" }</p> } };
    let submit = {
        let (refs, error, on_saved, gid) = (refs.clone(), error.clone(), props.on_saved.clone(), props.gid);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let v = |k: &str| input_value(&refs[k]);
            let opt = |k: &str| optional(&v(k));
            let schedule = schedule_input(&v);
            let active = refs["active"].cast::<HtmlInputElement>().is_none_or(|i| i.checked());
            let alerts: Vec<Value> = v("alerts").lines().filter(|l| !l.trim().is_empty()).map(alert_rule).collect();
            let input = json!({ "name": v("name"), "description": v("description"), "owner": v("owner"), "team": v("team"),
                "instance": v("instance"), "active": active, "schedule": schedule, "dependency": opt("dependency"), "alerts": alerts });
            let (error, on_saved) = (error.clone(), on_saved.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let res =
                    match gid {
                        Some(g) => gql::request::<Value>(
                            "mutation($g: Int!, $i: GroupInput!) { saved: updateGroup(gid: $g, input: $i) { gid } }",
                            json!({ "g": g, "i": input }),
                        )
                        .await,
                        None => {
                            gql::request::<Value>(
                                "mutation($i: GroupInput!) { saved: createGroup(input: $i) { gid } }",
                                json!({ "i": input }),
                            )
                            .await
                        }
                    };
                match res {
                    Ok(v) => on_saved.emit(v["saved"]["gid"].as_i64().unwrap_or(0)),
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let s = &t["schedule"];
    let (kind, when) = schedule_kind(s);
    let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
    let initial: Vec<(&'static str, String)> = vec![
        ("name", text("name")),
        ("instance", text("instance")),
        ("owner", text("owner")),
        ("team", text("team")),
        ("description", text("description")),
        ("dependency", text("dependency")),
        ("kind", kind.to_string()),
        ("when", when),
        ("days", s["days"].as_str().unwrap_or_default().to_string()),
        ("timezone", s["timezone"].as_str().unwrap_or("UTC").to_string()),
        ("calendar", s["calendar"].as_str().unwrap_or_default().to_string()),
        ("active", t["active"].as_bool().unwrap_or(true).to_string()),
        (
            "alerts",
            t["alerts"].as_array().map(|a| a.iter().map(alert_line).collect::<Vec<_>>().join("\n")).unwrap_or_default(),
        ),
    ];
    {
        // Once per loaded definition: later renders never overwrite what was typed.
        let refs = refs.clone();
        use_effect_with(t.to_string(), move |_| fill_fields(&refs, &initial));
    }
    let err = |k: &str| field_error(&error, k);
    let field = |label_text: &str, k: &'static str| {
        html! {
            <label>{ label_text.to_string() }<input id={format!("g-{k}")} ref={refs[k].clone()} disabled={!props.editor} />{ err(k) }</label>
        }
    };
    html! {
        <form id="group-form" class="form" onsubmit={submit}>
            <h3>{ if props.gid.is_some() { format!("Group {}", text("name")) } else { "New group".to_string() } }</h3>
            <div class="grid">
                { field("Name", "name") }
                { field("Instance", "instance") }
                { field("Owner", "owner") }
                { field("Team", "team") }
                { field("Description", "description") }
                { field("Dependency on other groups", "dependency") }
                <label>{ "Schedule kind" }<select id="g-kind" ref={refs["kind"].clone()} disabled={!props.editor}>
                    { for [("triggerTimes", "Trigger times"), ("runFrequency", "Run frequency"), ("cron", "Cron")].iter().map(|(k, l)| html! { <option value={*k}>{ *l }</option> }) }
                </select></label>
                { field("When", "when") }
                { field("Days", "days") }
                { field("Timezone", "timezone") }
                { field("Calendar", "calendar") }
                <label class="check"><input type="checkbox" id="g-active" ref={refs["active"].clone()} disabled={!props.editor} />{ " Active (an inactive group freezes all its tasks)" }</label>
            </div>
            { err("schedule") }
            <AlertSection lines={refs["alerts"].clone()} prefix="g" editor={props.editor} error={err("alerts")} />
            if let Some(e) = &*error { <p class="error" id="group-error">{ e.message.clone() }</p> }
            if props.editor { <button id="save-group" type="submit">{ "Save" }</button> }
        </form>
    }
}

#[derive(Properties, PartialEq)]
struct ImportProps {
    on_done: Callback<()>,
}

/// Upload a document: its dry-run plan is shown, and applied only on confirmation.
#[function_component(Import)]
fn import(props: &ImportProps) -> Html {
    let doc = use_state(|| None::<Value>);
    let plan = use_state(|| None::<Value>);
    let error = use_state(|| None::<String>);
    let file = use_node_ref();
    let on_file = {
        let (file, doc, plan, error) = (file.clone(), doc.clone(), plan.clone(), error.clone());
        Callback::from(move |_: Event| {
            let Some(f) = file.cast::<HtmlInputElement>().and_then(|i| i.files()).and_then(|l| l.get(0)) else {
                return;
            };
            let (doc, plan, error) = (doc.clone(), plan.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let text = match gloo_file::futures::read_as_text(&gloo_file::Blob::from(f)).await {
                    Ok(t) => t,
                    Err(e) => return error.set(Some(e.to_string())),
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    return error.set(Some("the file is not JSON".into()));
                };
                let q = "mutation($d: JSON!) { importDefinitions(document: $d, dryRun: true) { applied created { kind instance name } changed { item { kind instance name } } deleted { kind instance name } errors { path message } } }";
                match gql::request::<Value>(q, json!({ "d": v })).await {
                    Ok(p) => {
                        error.set(None);
                        plan.set(Some(p["importDefinitions"].clone()));
                        doc.set(Some(v));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let apply = {
        let (doc, plan, error, on_done) = (doc.clone(), plan.clone(), error.clone(), props.on_done.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(d) = (*doc).clone() else { return };
            let (plan, error, on_done) = (plan.clone(), error.clone(), on_done.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let q = "mutation($d: JSON!) { importDefinitions(document: $d) { applied errors { path message } } }";
                match gql::request::<Value>(q, json!({ "d": d })).await {
                    Ok(p) if p["importDefinitions"]["applied"] == true => {
                        plan.set(Some(json!({ "done": true })));
                        on_done.emit(());
                    }
                    Ok(p) => error.set(Some(p["importDefinitions"]["errors"].to_string())),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let list = |p: &Value, k: &str| -> Html {
        // A change carries its item; created and deleted entries are items.
        let items: Vec<Value> = p[k]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|i| if i["item"].is_object() { i["item"].clone() } else { i })
            .collect();
        html! { <li id={format!("plan-{k}")}>{ format!("{k}: {}", items.len()) }{ " " }<span class="muted">{ items.iter().map(|i| format!("{} {}", i["kind"].as_str().unwrap_or_default(), i["name"].as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ") }</span></li> }
    };
    html! {
        <div class="form" id="import-pane">
            <h3>{ "Import definitions" }</h3>
            <input type="file" id="import-file" accept="application/json" ref={file} onchange={on_file} />
            if let Some(e) = &*error { <p class="error" id="import-error">{ e.clone() }</p> }
            if let Some(p) = &*plan {
                if p["done"] == true { <p class="notice" id="import-done">{ "Imported." }</p> } else {
                    <ul id="plan">{ list(p, "created") }{ list(p, "changed") }{ list(p, "deleted") }
                        { for p["errors"].as_array().cloned().unwrap_or_default().iter().map(|e| html! { <li class="error">{ format!("{}: {}", e["path"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default()) }</li> }) }
                    </ul>
                    if p["errors"].as_array().is_none_or(|e| e.is_empty()) { <button id="apply-import" onclick={apply}>{ "Apply this plan" }</button> }
                }
            }
        </div>
    }
}
