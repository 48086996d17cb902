//! Administration: users (role, instance access, disabled) and new users, the caller's API
//! tokens (a new one is shown once), and the audit log.

use crate::gql;
use crate::gql::Load;
use crate::ops::{self, admin_data, create_api_token, create_user, revoke_api_token, update_user};
use crate::session::Me;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

type User = admin_data::AdminDataUsers;
type Token = admin_data::AdminDataApiTokens;

/// What an administrator changes from this page.
enum Change {
    CreateUser(create_user::Variables),
    CreateToken(String),
    UpdateUser(update_user::Variables),
    RevokeToken(i64),
}

impl Change {
    /// Sends the change; a new token's secret, when one was made.
    async fn send(self) -> Result<Option<String>, gql::Error> {
        Ok(match self {
            Change::CreateUser(v) => gql::run::<ops::CreateUser>(v).await.map(|_| None)?,
            Change::CreateToken(name) => Some(
                gql::run::<ops::CreateApiToken>(create_api_token::Variables { name }).await?.create_api_token.token,
            ),
            Change::UpdateUser(v) => gql::run::<ops::UpdateUser>(v).await.map(|_| None)?,
            Change::RevokeToken(id) => {
                gql::run::<ops::RevokeApiToken>(revoke_api_token::Variables { id }).await.map(|_| None)?
            }
        })
    }
}

/// A change to one user: only what is given changes.
fn update(id: i64) -> update_user::Variables {
    update_user::Variables { id, disabled: None, role: None, instances: None }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub me: Me,
}

#[function_component(Admin)]
pub fn admin(props: &Props) -> Html {
    let data = use_state(|| Load::<admin_data::ResponseData>::Loading);
    let bump = use_state(|| 0u32);
    let notice = use_state(|| None::<(String, bool)>);
    let (uname, upass, urole, uinst, tname) =
        (use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref(), use_node_ref());
    {
        let data = data.clone();
        use_effect_with(*bump, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                data.set(match gql::run::<ops::AdminData>(admin_data::Variables).await {
                    Ok(d) => Load::Ready(d),
                    Err(e) => Load::Failed(e),
                });
            });
        });
    }
    let run = {
        let (bump, notice) = (bump.clone(), notice.clone());
        move |change: Change, ok: &'static str| {
            let (bump, notice) = (bump.clone(), notice.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match change.send().await {
                    Ok(token) => {
                        let token = token.map(|t| format!(" Copy it now, it is not shown again: {t}"));
                        notice.set(Some((format!("{ok}{}", token.unwrap_or_default()), false)));
                        bump.set(*bump + 1);
                    }
                    Err(e) => notice.set(Some((e.message, true))),
                }
            });
        }
    };
    let create_user = {
        let run = run.clone();
        let (uname, upass, urole, uinst) = (uname.clone(), upass.clone(), urole.clone(), uinst.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let v = |r: &NodeRef| r.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let role = urole.cast::<HtmlSelectElement>().map(|s| s.value()).unwrap_or_default();
            let user = create_user::Variables { username: v(&uname), password: v(&upass), role, instances: v(&uinst) };
            run(Change::CreateUser(user), "User created.");
        })
    };
    let create_token = {
        let run = run.clone();
        let tname = tname.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let n = tname.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            run(Change::CreateToken(n), "Token created.");
        })
    };
    let body = match &*data {
        Load::Loading => html! { <p class="muted">{ "Loading…" }</p> },
        Load::Failed(e) => html! { <p class="error">{ e.to_string() }</p> },
        Load::Ready(d) => {
            let toggle = |u: &User| {
                let run = run.clone();
                let (id, disabled) = (u.id, !u.disabled);
                Callback::from(move |_: MouseEvent| {
                    run(
                        Change::UpdateUser(update_user::Variables { disabled: Some(disabled), ..update(id) }),
                        "User updated.",
                    )
                })
            };
            let set_role = |u: &User| {
                let run = run.clone();
                let id = u.id;
                Callback::from(move |e: Event| {
                    if let Some(sel) = e.target_dyn_into::<HtmlSelectElement>() {
                        let role = Some(sel.value());
                        run(Change::UpdateUser(update_user::Variables { role, ..update(id) }), "Role changed.");
                    }
                })
            };
            let set_instances = |u: &User| {
                let run = run.clone();
                let id = u.id;
                Callback::from(move |e: Event| {
                    if let Some(i) = e.target_dyn_into::<HtmlInputElement>() {
                        let instances = Some(i.value());
                        let change = Change::UpdateUser(update_user::Variables { instances, ..update(id) });
                        run(change, "Instance access changed.");
                    }
                })
            };
            let revoke = |t: &Token| {
                let run = run.clone();
                let id = t.id;
                Callback::from(move |_: MouseEvent| run(Change::RevokeToken(id), "Token revoked."))
            };
            html! {
                <>
                <h3>{ "Users" }</h3>
                <table id="users"><thead><tr><th>{ "User" }</th><th>{ "Role" }</th><th>{ "Instances" }</th><th>{ "" }</th></tr></thead><tbody>
                { for d.users.iter().map(|u| html! {
                    <tr id={format!("user-{}", u.username)}><td>{ &u.username }</td>
                    if props.me.is_admin() && u.username != props.me.username && u.role != "superadmin" {
                        <td><select id={format!("role-{}", u.username)} onchange={set_role(u)}>
                            { for ["viewer", "user", "operator", "admin"].iter().map(|r| html! { <option value={*r} selected={u.role == *r}>{ *r }</option> }) }
                        </select></td>
                        <td><input id={format!("instances-{}", u.username)} value={u.instances.clone()} onchange={set_instances(u)} /></td>
                    } else {
                        <td>{ &u.role }</td><td>{ &u.instances }</td>
                    }
                    <td>{ if u.disabled { "disabled " } else { "" } }
                        if props.me.is_admin() && u.username != props.me.username { <button onclick={toggle(u)}>{ if u.disabled { "Enable" } else { "Disable" } }</button> }</td></tr>
                }) }
                </tbody></table>
                <h3>{ "My API tokens" }</h3>
                <table id="tokens"><tbody>
                { for d.api_tokens.iter().map(|t| html! {
                    <tr><td>{ &t.name }</td><td class="muted">{ format!("created {}", t.created_at) }</td>
                    <td>{ t.expires_at.clone().map(|e| format!("expires {e}")).unwrap_or_default() }</td>
                    <td>{ match &t.revoked_at { Some(r) => html! { { format!("revoked {r}") } }, None => html! { <button onclick={revoke(t)}>{ "Revoke" }</button> } } }</td></tr>
                }) }
                </tbody></table>
                <h3>{ "Audit log" }</h3>
                <table id="audit"><tbody>
                { for d.audit_log.nodes.iter().map(|e| html! { <tr><td class="muted">{ &e.at }</td><td>{ &e.actor }</td><td>{ &e.action }</td><td>{ &e.target }</td></tr> }) }
                </tbody></table>
                </>
            }
        }
    };
    html! {
        <section id="admin">
            <h2>{ "Administration" }</h2>
            if let Some((n, bad)) = &*notice { <p class={if *bad { "error" } else { "notice" }} id="admin-notice">{ n.clone() }</p> }
            <div class="grid2">
                <form class="form" id="user-form" onsubmit={create_user}>
                    <h3>{ "New user" }</h3>
                    <label>{ "Username" }<input id="new-username" ref={uname} required=true /></label>
                    <label>{ "Password" }<input id="new-password" type="password" ref={upass} required=true /></label>
                    <label>{ "Role" }<select id="new-role" ref={urole}>
                        { for ["viewer", "user", "operator", "admin"].iter().map(|r| html! { <option value={*r} selected={*r == "viewer"}>{ *r }</option> }) }
                    </select></label>
                    <label>{ "Instances (* or a comma-separated list)" }<input id="new-instances" ref={uinst} value="*" /></label>
                    <button id="create-user" type="submit">{ "Create user" }</button>
                </form>
                <form class="form" id="token-form" onsubmit={create_token}>
                    <h3>{ "New API token" }</h3>
                    <label>{ "Name" }<input id="token-name" ref={tname} required=true /></label>
                    <button id="create-token" type="submit">{ "Create token" }</button>
                </form>
            </div>
            { body }
        </section>
    }
}
