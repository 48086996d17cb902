//! Calendars: each instance's holiday calendars, and a form to create or replace one (a holiday
//! per line: `YYYY-MM-DD reason` or `YYYY-MM-DD..YYYY-MM-DD reason`).

use crate::gql;
use crate::gql::Load;
use crate::ops::{self, calendar_list, save_calendar};
use crate::session::Me;
use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

/// Reads the holiday lines of the form.
fn holidays(text: &str) -> Vec<save_calendar::HolidayInput> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (dates, reason) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
            let (start, end) = match dates.split_once("..") {
                Some((a, b)) => (a, Some(b.to_string())),
                None => (dates, None),
            };
            save_calendar::HolidayInput { start: start.to_string(), end, reason: reason.trim().to_string() }
        })
        .collect()
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub me: Me,
}

#[function_component(Calendars)]
pub fn calendars(props: &Props) -> Html {
    let data = use_state(|| Load::<calendar_list::ResponseData>::Loading);
    let bump = use_state(|| 0u32);
    let error = use_state(|| None::<gql::Error>);
    let (name, instance, lines) = (use_node_ref(), use_node_ref(), use_node_ref());
    {
        let data = data.clone();
        use_effect_with(*bump, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::CalendarList>(calendar_list::Variables).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    let save = {
        let (bump, error) = (bump.clone(), error.clone());
        let (name, instance, lines) = (name.clone(), instance.clone(), lines.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let v = |r: &NodeRef| r.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let text = lines.cast::<HtmlTextAreaElement>().map(|t| t.value()).unwrap_or_default();
            let input =
                save_calendar::CalendarInput { name: v(&name), description: String::new(), holidays: holidays(&text) };
            let vars = save_calendar::Variables { instance: v(&instance), input };
            let (bump, error) = (bump.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match gql::run::<ops::SaveCalendar>(vars).await {
                    Ok(_) => {
                        error.set(None);
                        bump.set(*bump + 1);
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let list = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) if d.calendars.is_empty() => {
            html! { <p class="muted" id="no-calendars">{ "No calendar yet." }</p> }
        }
        Load::Ready(d) => html! {
            <table id="calendars"><thead><tr><th>{ "Instance" }</th><th>{ "Calendar" }</th><th>{ "Holidays" }</th></tr></thead><tbody>
            { for d.calendars.iter().map(|c| html! {
                <tr id={format!("calendar-{}", c.name)}><td>{ &c.instance }</td><td>{ &c.name }<div class="muted">{ &c.description }</div></td>
                <td>{ for c.holidays.iter().map(|h| html! { <div>{ format!("{}{} {}", h.start, h.end.as_ref().map(|e| format!("..{e}")).unwrap_or_default(), h.reason) }</div> }) }</td></tr>
            }) }
            </tbody></table>
        },
    };
    html! {
        <section>
            <h2>{ "Calendars" }</h2>
            { list }
            if props.me.rank_at_least_user() {
                <form class="form" id="calendar-form" onsubmit={save}>
                    <h3>{ "Create or replace a calendar" }</h3>
                    <div class="grid">
                        <label>{ "Name" }<input id="cal-name" ref={name} required=true /></label>
                        <label>{ "Instance" }<input id="cal-instance" ref={instance} value="default" /></label>
                    </div>
                    <label>{ "Holidays, one per line: 2026-12-25 Christmas, or 2026-12-24..2026-12-26 Closed" }<textarea id="cal-holidays" ref={lines} /></label>
                    if let Some(e) = &*error { <p class="error" id="calendar-error">{ e.fields.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ") }{ if e.fields.is_empty() { e.message.clone() } else { String::new() } }</p> }
                    <button id="save-calendar" type="submit">{ "Save" }</button>
                </form>
            }
        </section>
    }
}
