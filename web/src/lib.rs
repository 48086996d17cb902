//! The Baton web UI: a Yew app rendered client-side from wasm, embedded in the `baton` binary,
//! talking to the server only through GraphQL (queries and mutations over `fetch`, live updates
//! over graphql-transport-ws). Pages are role-aware: what a role may not do is not offered.

mod gql;
mod live;
mod ops;
mod pages;
mod route;
mod session;
mod status;

use gql::Load;
use route::Route;
use session::Me;

use wasm_bindgen::prelude::*;
use yew::prelude::*;
use yew_router::prelude::*;

fn switch(route: Route, me: &Me) -> Html {
    match route {
        Route::Dashboard => html! { <pages::dashboard::Dashboard /> },
        Route::TaskRuns => html! { <pages::runs::RunList /> },
        Route::Run { id } => html! { <pages::runs::RunDetail {id} me={me.clone()} /> },
        Route::Agents => html! { <pages::agents::Agents /> },
        Route::Scheduler => html! { <pages::scheduler::Scheduler /> },
        Route::Tasks => html! { <pages::tasks::Tasks me={me.clone()} /> },
        Route::Adhoc => html! { <pages::adhoc::Adhoc /> },
        Route::Calendars => html! { <pages::calendars::Calendars me={me.clone()} /> },
        Route::Integrations => html! { <pages::integrations::Integrations me={me.clone()} /> },
        Route::Admin => html! { <pages::admin::Admin me={me.clone()} /> },
        Route::NotFound => html! { <section><h2>{ "Not found" }</h2></section> },
    }
}

#[function_component(Nav)]
fn nav(props: &NavProps) -> Html {
    let logout = {
        let on_logout = props.on_logout.clone();
        Callback::from(move |_| {
            let on_logout = on_logout.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = gql::run::<ops::Logout>(ops::logout::Variables).await;
                on_logout.emit(());
            });
        })
    };
    html! {
        <nav>
            <span class="brand">{ "Baton" }</span>
            <Link<Route> to={Route::Dashboard}>{ "Dashboard" }</Link<Route>>
            <Link<Route> to={Route::Tasks}>{ "Tasks & Groups" }</Link<Route>>
            <Link<Route> to={Route::TaskRuns}>{ "Task runs" }</Link<Route>>
            if props.me.is_operator() { <Link<Route> to={Route::Adhoc}>{ "Adhoc" }</Link<Route>> }
            <Link<Route> to={Route::Agents}>{ "Agents" }</Link<Route>>
            <Link<Route> to={Route::Calendars}>{ "Calendars" }</Link<Route>>
            <Link<Route> to={Route::Integrations}>{ "Integrations" }</Link<Route>>
            <Link<Route> to={Route::Scheduler}>{ "Scheduler" }</Link<Route>>
            if props.me.is_admin() { <Link<Route> to={Route::Admin}>{ "Administration" }</Link<Route>> }
            <span class="who" id="who">{ format!("{} ({})", props.me.username, props.me.role) }</span>
            <button class="link" id="logout" onclick={logout}>{ "Log out" }</button>
        </nav>
    }
}

#[derive(Properties, PartialEq)]
struct NavProps {
    me: Me,
    on_logout: Callback<()>,
}

#[function_component(App)]
fn app() -> Html {
    let me = use_state(|| Load::<Me>::Loading);
    let check = {
        let me = me.clone();
        Callback::from(move |()| {
            let me = me.clone();
            wasm_bindgen_futures::spawn_local(async move {
                me.set(match gql::run::<ops::Me>(ops::me::Variables).await {
                    Ok(d) => Load::Ready(Me { username: d.me.username, role: d.me.role }),
                    Err(e) => Load::Failed(e),
                });
            });
        })
    };
    {
        let check = check.clone();
        use_effect_with((), move |_| check.emit(()));
    }
    let body = match &*me {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) if e.code == "UNAUTHENTICATED" || e.code == "FORBIDDEN" => {
            html! { <pages::login::Login on_login={check.clone()} /> }
        }
        Load::Failed(e) => html! { <p class="error" id="error">{ e.to_string() }</p> },
        Load::Ready(m) => {
            let m2 = m.clone();
            let on_logout = {
                let me = me.clone();
                Callback::from(move |()| {
                    me.set(Load::Failed(gql::Error {
                        code: "UNAUTHENTICATED".into(),
                        message: String::new(),
                        fields: Vec::new(),
                    }))
                })
            };
            html! {
                <>
                    <Nav me={m.clone()} {on_logout} />
                    <main><Switch<Route> render={move |r| switch(r, &m2)} /></main>
                </>
            }
        }
    };
    html! { <BrowserRouter>{ body }</BrowserRouter> }
}

/// Entry point, called by the generated JavaScript once the wasm is loaded.
#[wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<App>::new().render();
}
