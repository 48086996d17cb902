//! Login: username and password; the server sets the session cookie.

use crate::gql;
use crate::ops::{login, version, Login as LoginOp, Version};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub on_login: Callback<()>,
}

#[function_component(Login)]
pub fn login(props: &Props) -> Html {
    let user = use_node_ref();
    let pass = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let version = use_state(String::new);
    {
        let version = version.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(v) = gql::run::<Version>(version::Variables).await {
                    version.set(v.version);
                }
            });
        });
    }
    let submit = {
        let (user, pass, error, busy, on_login) =
            (user.clone(), pass.clone(), error.clone(), busy.clone(), props.on_login.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let u = user.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let p = pass.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let (error, busy, on_login) = (error.clone(), busy.clone(), on_login.clone());
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let res = gql::run::<LoginOp>(login::Variables { username: u, password: p }).await;
                busy.set(false);
                match res {
                    Ok(_) => on_login.emit(()),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    html! {
        <section class="login">
            <h1>{ "Baton" }</h1>
            <form id="login" onsubmit={submit}>
                <label>{ "Username" }<input id="username" ref={user} autocomplete="username" required=true /></label>
                <label>{ "Password" }<input id="password" ref={pass} type="password" autocomplete="current-password" required=true /></label>
                <button id="login-submit" type="submit" disabled={*busy}>{ if *busy { "Logging in…" } else { "Log in" } }</button>
                if let Some(e) = &*error { <p class="error" id="login-error">{ e.clone() }</p> }
            </form>
            if !version.is_empty() { <p id="version">{ format!("Baton {}", *version) }</p> }
        </section>
    }
}
