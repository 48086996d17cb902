//! The Baton web UI: a Yew app rendered client-side from wasm, embedded in the `baton` binary,
//! talking to the server only through GraphQL.

mod gql;

use serde::Deserialize;
use wasm_bindgen::prelude::*;
use yew::prelude::*;

/// What a page shows while its data is on the way.
#[derive(Clone, PartialEq)]
enum Load<T> {
    Loading,
    Ready(T),
    Failed(String),
}

#[derive(Clone, PartialEq, Deserialize)]
struct About {
    version: String,
}

#[function_component(App)]
fn app() -> Html {
    let about = use_state(|| Load::<About>::Loading);
    {
        let about = about.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                about.set(match gql::query::<About>("{ version }").await {
                    Ok(a) => Load::Ready(a),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    let body = match &*about {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error" id="error">{ format!("Cannot reach the server: {e}") }</p> },
        Load::Ready(a) => html! {
            <p id="version">{ format!("Baton {}", a.version) }</p>
        },
    };
    html! {
        <main>
            <header><h1>{ "Baton" }</h1></header>
            { body }
        </main>
    }
}

/// Entry point, called by the generated JavaScript once the wasm is loaded.
#[wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<App>::new().render();
}
