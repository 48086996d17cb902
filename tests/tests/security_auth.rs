//! Logins and passwords under attack, over the real server: a parallel burst of wrong passwords
//! gets no more tries than the limit, failures slow their address and never the owner elsewhere,
//! changing one's own password needs the current one, an admin's reset ends the user's
//! sessions and revokes their API tokens, and checking passwords does not grow the server.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::{data, error_code, graphql_at, Server};
use serde_json::{json, Value};

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

#[test]
fn a_parallel_burst_of_wrong_passwords_gets_only_the_limit() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    data(s.graphql_as(Some(&admin), "mutation { createUser(username: \"ada\", password: \"password-123\", role: \"viewer\", instances: \"*\") { id } }", json!({})).unwrap());
    // Thirty wrong passwords for one user from one address at once: each attempt is reserved
    // before its hash is checked, so no more than the 3 free ones are checked at all; the rest
    // wait (the delay after the third failure).
    let codes: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let base = s.base_url.clone();
                scope.spawn(move || {
                    let res = graphql_at(&base, None, LOGIN, json!({ "u": "ada", "p": format!("wrong-{i}") })).unwrap();
                    error_code(&res).unwrap_or_default()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = codes.iter().filter(|c| *c == "UNAUTHENTICATED").count();
    let refused = codes.iter().filter(|c| *c == "FORBIDDEN").count();
    assert_eq!((checked, refused), (3, 27), "{codes:?}");
    // Unknown names are limited the same way (and cost the same to check).
    let unknown = (0..6)
        .map(|_| error_code(&s.graphql(LOGIN, json!({ "u": "nobody_here", "p": "x" })).unwrap()).unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(unknown.iter().filter(|c| *c == "UNAUTHENTICATED").count(), 3, "{unknown:?}");
    assert_eq!(unknown.last().map(String::as_str), Some("FORBIDDEN"));
}

#[test]
fn own_password_changes_need_the_current_one_and_resets_revoke_tokens() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let id = data(s.graphql_as(Some(&admin), "mutation { createUser(username: \"bob\", password: \"password-123\", role: \"operator\", instances: \"*\") { id } }", json!({})).unwrap())["createUser"]["id"]
        .as_i64()
        .unwrap();
    let bob = s.login("bob", "password-123").unwrap();
    let set =
        "mutation($id: Int!, $p: String!, $c: String) { setPassword(id: $id, password: $p, currentPassword: $c) }";
    // A stolen session alone cannot change the password.
    let res = s.graphql_as(Some(&bob), set, json!({ "id": id, "p": "new-password-456" })).unwrap();
    assert_eq!(res["errors"][0]["extensions"]["field"], "currentPassword", "{res}");
    let res = s.graphql_as(Some(&bob), set, json!({ "id": id, "p": "new-password-456", "c": "guess-789" })).unwrap();
    assert_eq!(res["errors"][0]["extensions"]["rule"], "mismatch", "{res}");
    let res = s.graphql_as(Some(&bob), set, json!({ "id": id, "p": "new-password-456", "c": "password-123" })).unwrap();
    assert_eq!(data(res)["setPassword"], true);
    let bob = s.login("bob", "new-password-456").unwrap();
    let api = data(s.graphql_as(Some(&bob), "mutation { createApiToken(name: \"ci\") { token } }", json!({})).unwrap())
        ["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(data(s.graphql_as(Some(&api), "{ me { username } }", json!({})).unwrap())["me"]["username"] == "bob");
    // An admin's reset (no current password needed) ends bob's sessions and his API tokens.
    data(s.graphql_as(Some(&admin), set, json!({ "id": id, "p": "reset-password-1" })).unwrap());
    for token in [&bob, &api] {
        let res = s.graphql_as(Some(token), "{ me { username } }", json!({})).unwrap();
        assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "{res}");
    }
    assert!(s.login("bob", "reset-password-1").is_ok());
}

/// Failed logins slow down the address they come from for that user name (a delay that grows
/// with each failure), and are recorded once in the audit log; they never lock the owner out from
/// another address. Names and passwords longer than a login takes are refused before anything.
#[test]
fn failed_logins_slow_their_address_not_the_owner_elsewhere() {
    let s = Server::start().unwrap();
    let login = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
    let here = |p: &str| s.graphql(login, json!({ "u": "admin", "p": p })).unwrap();
    for _ in 0..3 {
        assert_eq!(error_code(&here("nope-nope")).as_deref(), Some("UNAUTHENTICATED"));
    }
    // From this address, even the right password waits now.
    let res = here(&s.admin_password);
    assert_eq!(error_code(&res).as_deref(), Some("FORBIDDEN"), "{res}");
    assert!(res["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("too many failed logins for this user from this address"));
    // From another address, the owner logs in at once.
    let elsewhere = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let res = baton_tests::graphql_from(elsewhere, &s.base_url, login, json!({ "u": "admin", "p": s.admin_password }))
        .unwrap();
    let token = res["data"]["login"]["token"].as_str().unwrap_or_else(|| panic!("{res}")).to_string();
    let audit = data(
        s.graphql_as(Some(&token), "{ auditLog(first: 50) { edges { node { action actor target } } } }", json!({}))
            .unwrap(),
    );
    let slowed: Vec<&Value> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["action"] == "loginSlowed")
        .collect();
    assert_eq!(slowed.len(), 1, "recorded once: {audit}");
    assert_eq!(
        (slowed[0]["node"]["actor"].as_str(), slowed[0]["node"]["target"].as_str()),
        (Some("127.0.0.1"), Some("admin"))
    );
    // Oversized names and passwords are refused before any work, naming the field and the rule
    // (a body over 64 KiB, before it is read whole: see `security_web.rs`).
    let huge = "a".repeat(10_000);
    let res = s.graphql(login, json!({ "u": huge, "p": "x" })).unwrap();
    assert_eq!(error_code(&res).as_deref(), Some("VALIDATION"), "{}", &res.to_string()[..200]);
    assert_eq!(res["errors"][0]["extensions"]["field"], "username");
    let res = s.graphql(login, json!({ "u": "admin", "p": huge })).unwrap();
    assert_eq!(
        (res["errors"][0]["extensions"]["field"].as_str(), res["errors"][0]["extensions"]["rule"].as_str()),
        (Some("password"), Some("length"))
    );
}

/// Each password check needs 19 MiB of argon2 memory: failed logins (each checked against a
/// hash, an unknown name's against a decoy) must not keep that much more per login, as they
/// once did (a flood of new names took the server to 470 MiB).
#[test]
fn failed_logins_do_not_grow_the_servers_memory() {
    let s = Server::start().unwrap();
    let fail = |name: &str| {
        let res = s.graphql(LOGIN, json!({ "u": name, "p": "wrong-password" })).unwrap();
        assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "{res}");
    };
    // The first check allocates the hasher's one 19 MiB buffer; nothing else may stay.
    let before = baton_tests::resident_bytes(s.pid());
    for i in 0..20 {
        fail(&format!("nobody-{i}"));
    }
    let after = baton_tests::resident_bytes(s.pid());
    assert!(
        after < before + (30 << 20),
        "20 failed logins grew the server from {} MiB to {} MiB",
        before >> 20,
        after >> 20
    );
}

/// A flood of failed logins for names that do not exist, from many addresses, neither crowds
/// out the owner's password check nor counts against the owner's own address: they log in
/// every time.
#[test]
fn a_login_flood_from_elsewhere_leaves_the_owner_logging_in() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    data(
        s.graphql_as(
            Some(&admin),
            "mutation { createUser(username: \"owner\", password: \"owner-password\", role: \"viewer\") { id } }",
            json!({}),
        )
        .unwrap(),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..80u8)
        .map(|i| {
            let (stop, url) = (stop.clone(), s.base_url.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    // More at once than the hasher queues; a new address every 25 tries, under the
                    // per-address limit.
                    let from = std::net::Ipv4Addr::new(127, 50 + (n / 25) as u8 % 100, 1, 10 + i);
                    let _ = baton_tests::graphql_from(
                        from,
                        &url,
                        LOGIN,
                        json!({ "u": format!("ghost-{i}-{n}"), "p": "x" }),
                    );
                    n += 1;
                }
            })
        })
        .collect();
    let owner = std::net::Ipv4Addr::new(127, 9, 9, 9);
    let mut refused = Vec::new();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for _ in 0..10 {
        let res = baton_tests::graphql_from(owner, &s.base_url, LOGIN, json!({ "u": "owner", "p": "owner-password" }))
            .unwrap();
        if !res["data"]["login"]["token"].is_string() {
            refused.push(res.to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for f in flooders {
        f.join().unwrap();
    }
    assert!(refused.is_empty(), "the owner was refused {} of 10 times: {:?}", refused.len(), refused.first());
}
