//! The real agent against a stand-in server the test drives frame by frame: an attempt is
//! accepted at most once, and events are replayed in order until acknowledged.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use baton_tests::Agent;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::time::Duration;
use tungstenite::Message;

type Ws = tungstenite::WebSocket<std::net::TcpStream>;

fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = listener.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut ws = tungstenite::accept(tcp).unwrap();
    let hello: Value = match ws.read().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected hello, got {other:?}"),
    };
    assert_eq!(hello["type"], "hello");
    ws
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).unwrap();
}

/// The next run event from the agent (heartbeats skipped).
fn next_event(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "event" {
                return v;
            }
        }
    }
}

fn dispatch(run_id: i64, attempt: u32, command: &str) -> Value {
    json!({"type": "dispatch", "run_id": run_id, "attempt": attempt, "task": "t", "command": command,
           "run_as_user": "root", "env": {}, "stdout_path": null, "stderr_path": null,
           "max_run_time_seconds": 60, "kill_grace_seconds": 1})
}

#[test]
fn an_attempt_is_accepted_once_and_unacknowledged_events_are_replayed() {
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("skipped: the dispatches run as root");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _agent = Agent::start(&url, "any-token", "solo", "q").unwrap();
    let mut ws = accept(&listener);
    send(
        &mut ws,
        json!({"type": "welcome", "protocol": 1, "server_version": "test", "heartbeat_seconds": 60, "acked_seq": 0}),
    );

    send(&mut ws, dispatch(41, 1, "echo hi"));
    let accepted = next_event(&mut ws);
    assert_eq!((accepted["run_id"].as_i64(), accepted["event"]["kind"].as_str()), (Some(41), Some("accepted")));
    // The same attempt again changes nothing (a restarted server sends again what it may not
    // have sent): no second acceptance, no refusal that would fail the run, no second process.
    send(&mut ws, dispatch(41, 1, "echo again"));
    let mut seen = Vec::new();
    let mut output = String::new();
    while !seen.iter().any(|(_, k): &(u64, String)| k == "ended") {
        let e = next_event(&mut ws);
        let kind = e["event"]["kind"].as_str().unwrap().to_string();
        if kind == "output" {
            output.push_str(e["event"]["data"].as_str().unwrap_or_default());
        }
        seen.push((e["seq"].as_u64().unwrap(), kind));
    }
    assert!(!seen.iter().any(|(_, k)| k == "refused" || k == "accepted"), "{seen:?}");
    assert_eq!(output, "hi\n", "the first dispatch ran, once; the second did not");
    let seqs: Vec<u64> =
        std::iter::once(accepted["seq"].as_u64().unwrap()).chain(seen.iter().map(|(s, _)| *s)).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "sequences in order, none skipped: {seqs:?}");

    // Nothing was acknowledged: after a reconnect the agent replays all of it, in order.
    drop(ws);
    let mut ws = accept(&listener);
    send(
        &mut ws,
        json!({"type": "welcome", "protocol": 1, "server_version": "test", "heartbeat_seconds": 60, "acked_seq": 1}),
    );
    let replayed: Vec<u64> = (0..seqs.len() - 1).map(|_| next_event(&mut ws)["seq"].as_u64().unwrap()).collect();
    assert_eq!(replayed, seqs[1..].to_vec(), "everything after the acknowledged sequence, in order");
}
