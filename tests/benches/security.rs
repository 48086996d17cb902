//! Whether floods an anonymous client can send leave the server answering: `/healthz` latency
//! (p50, p99) and the server's peak resident memory during each flood, beside the same figures
//! with no load measured in the same run. The floods are those that once stopped it: a fragment
//! bomb (fragments spreading each other, exponential if expanded), logins with 6 MiB user names
//! and with ever-new names, and thousands of GraphQL sockets that never send `connection_init`.
//! Goal: p99 under 50 ms and peak memory under 2x idle in every flood.
//!
//! ```sh
//! cargo build --release -p baton-server --bin baton && cargo bench -p baton-tests --bench security
//! ```
#![allow(clippy::unwrap_used)] // A bench that cannot run should stop loudly.

use baton_tests::Server;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `/healthz` probes per phase, one every `PROBE_EVERY`.
const PROBES: usize = 400;
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A connection from loopback address `from` to the server.
fn connect(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect(&to.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// One request written raw; the whole response (the server closes the connection).
fn request(from: Ipv4Addr, to: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = connect(from, to)?;
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn post(from: Ipv4Addr, to: SocketAddr, body: &str) -> std::io::Result<Vec<u8>> {
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    request(from, to, &head, body.as_bytes())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What one phase measured.
struct Phase {
    name: &'static str,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
    peak_kib: u64,
    /// Requests or sockets the flood sent.
    sent: u64,
    /// The server's resident memory before the flood.
    idle_kib: u64,
}

/// Starts a server of its own (so no flood inherits another's memory), and probes `/healthz`
/// while `flood` runs on `threads` threads (each calls it with the server's address until told
/// to stop).
fn phase(
    name: &'static str,
    threads: usize,
    flood: impl Fn(usize, SocketAddr, &AtomicBool, &AtomicU64) + Send + Sync + 'static,
) -> Phase {
    let server = Server::start().unwrap();
    let to: SocketAddr = server.base_url.trim_start_matches("http://").parse().unwrap();
    // Warm up (first requests allocate what every later one reuses), then measure idle.
    for _ in 0..50 {
        let _ = request(Ipv4Addr::LOCALHOST, to, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"");
    }
    let idle_kib = rss_kib(server.pid());
    let (stop, sent, flood) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(flood));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (stop, sent, flood) = (stop.clone(), sent.clone(), flood.clone());
            std::thread::spawn(move || flood(i, to, &stop, &sent))
        })
        .collect();
    // Let the flood build up before measuring.
    std::thread::sleep(Duration::from_secs(1));
    let (mut times, mut failed, mut peak) = (Vec::new(), 0, rss_kib(server.pid()));
    let probe = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for _ in 0..PROBES {
        let t = Instant::now();
        match request(Ipv4Addr::LOCALHOST, to, probe, b"") {
            Ok(r) if r.starts_with(b"HTTP/1.1 200") => times.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
        peak = peak.max(rss_kib(server.pid()));
        std::thread::sleep(PROBE_EVERY);
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied();
    Phase {
        name,
        p50_ms: at(0.5).unwrap_or(f64::NAN),
        p99_ms: at(0.99).unwrap_or(f64::NAN),
        failed,
        peak_kib: peak,
        sent: sent.load(Ordering::SeqCst),
        idle_kib,
    }
}

/// A document of `depth` fragments each spreading the next `width` times: width^depth fields
/// if expanded.
fn fragment_bomb(depth: usize, width: usize) -> String {
    let mut q = String::from("query { ...F0 }\n");
    for d in 0..depth {
        let spreads = format!(" ...F{}", d + 1).repeat(width);
        q.push_str(&format!("fragment F{d} on Query {{{spreads} }}\n"));
    }
    q.push_str(&format!("fragment F{depth} on Query {{ version }}\n"));
    serde_json::json!({ "query": q }).to_string()
}

/// A flooding client's address: 127.0.0.2 and up, one per thread, so the per-address limits
/// apply to each as to separate hosts.
fn address(thread: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + thread as u8)
}

fn main() {
    // `cargo bench --bench security -- NAME` runs the phases whose name contains NAME.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let mut phases = vec![phase("no load", 0, |_, _, _, _| {})];

    let bomb = fragment_bomb(16, 10);
    println!("fragment bomb: {} bytes, 10^16 fields if expanded", bomb.len());
    if wanted("fragment bomb, 4 clients") {
        phases.push(phase("fragment bomb, 4 clients", 4, move |i, to, stop, sent| {
            while !stop.load(Ordering::SeqCst) {
                let r = post(address(i), to, &bomb).unwrap();
                assert!(String::from_utf8_lossy(&r).contains("VALIDATION"), "refused as too costly");
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    let long = serde_json::json!({
        "query": "mutation($u: String!) { login(username: $u, password: \"x\") { token } }",
        "variables": { "u": "n".repeat(6 << 20) },
    })
    .to_string();
    if wanted("6 MiB user names, 4 clients") {
        phases.push(phase("6 MiB user names, 4 clients", 4, move |i, to, stop, sent| {
            while !stop.load(Ordering::SeqCst) {
                post(address(i), to, &long).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    if wanted("ever-new user names, 4 clients") {
        phases.push(phase("ever-new user names, 4 clients", 4, move |i, to, stop, sent| {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body = serde_json::json!({
                    "query": "mutation($u: String!) { login(username: $u, password: \"x\") { token } }",
                    "variables": { "u": format!("nobody-{i}-{n}") },
                });
                post(address(i), to, &body.to_string()).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    // Sockets that upgrade and then say nothing, from 10 addresses (each capped at 256), kept
    // open until the server closes them (5 s without connection_init) and then opened again.
    if wanted("idle GraphQL sockets, 10 clients") {
        phases.push(phase("idle GraphQL sockets, 10 clients", 10, move |i, to, stop, sent| {
            let mut open: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                // An idle socket has nothing to read; the server writes only to close it.
                open.retain(|s| {
                    let mut b = [0u8; 1];
                    s.set_nonblocking(true).unwrap();
                    let alive = matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
                    s.set_nonblocking(false).unwrap();
                    alive
                });
                if open.len() >= 256 {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let Ok(mut s) = connect(address(i), to) else { continue };
                let head = format!(
                    "GET /graphql/ws HTTP/1.1\r\nHost: {to}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
                );
                if s.write_all(head.as_bytes()).is_err() {
                    continue;
                }
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 101") {
                    sent.fetch_add(1, Ordering::SeqCst);
                    open.push(s);
                }
            }
        }));
    }

    let base = &phases[0];
    println!(
        "{:<34} {:>8} {:>9} {:>7} {:>8} {:>9} {:>9} {:>7} {:>7}",
        "phase", "sent", "p50 ms", "p99 ms", "p99 x", "idle MiB", "peak MiB", "x idle", "failed"
    );
    for p in &phases {
        println!(
            "{:<34} {:>8} {:>9.2} {:>7.2} {:>8.2} {:>9.1} {:>9.1} {:>7.2} {:>7}",
            p.name,
            p.sent,
            p.p50_ms,
            p.p99_ms,
            p.p99_ms / base.p99_ms,
            p.idle_kib as f64 / 1024.0,
            p.peak_kib as f64 / 1024.0,
            p.peak_kib as f64 / p.idle_kib as f64,
            p.failed
        );
    }
}
