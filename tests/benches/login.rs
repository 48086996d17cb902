//! What a failed login costs, for a user name that exists and for one that does not, measured
//! in the same run: they should cost the same, so that timing does not tell which names exist.
//! The limiter allows 30 failures per address in 15 minutes and 3 per name before it slows
//! them, so each side gets 9 names, one try each.
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p baton-tests --bench login
//! ```
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_tests::{data, error_code, Server};
use serde_json::json;
use std::time::Instant;

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let s = Server::start().unwrap();
    let admin = s.admin().unwrap();
    let tries = 9;
    for i in 0..tries {
        data(
            s.graphql_as(
                Some(&admin),
                "mutation($u: String!) { createUser(username: $u, password: \"password-123\", role: \"viewer\") { id } }",
                json!({ "u": format!("known{i}") }),
            )
            .unwrap(),
        );
    }
    // One wrong password per name, alternating the two kinds.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..tries {
        for (name, into) in [(format!("known{i}"), &mut known), (format!("unknown{i}"), &mut unknown)] {
            let t = Instant::now();
            let res = s.graphql(LOGIN, json!({ "u": name, "p": "wrong-password" })).unwrap();
            into.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(error_code(&res).as_deref(), Some("UNAUTHENTICATED"), "{res}");
        }
    }
    let (k, u) = (median(known), median(unknown));
    println!("failed login, existing user    median {k:>8.2} ms");
    println!("failed login, unknown user     median {u:>8.2} ms   ({:.2}x the existing user's)", u / k);
}
