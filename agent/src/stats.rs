//! CPU, memory and uptime of this host, from /proc, and the agent's failed writes to its own
//! state, for the heartbeat. Three numbers do not justify a dependency
//! such as sysinfo; Linux is the platform the agent runs on.

use baton_schema::agent::v1::AgentStats;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failed writes to the agent's own state, for the heartbeat.
static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The last failed write since the last heartbeat, which says why the agent is degraded.
static LAST_FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Logs a failed write to the agent's own state (`what` says which) and counts it for the
/// heartbeat: the agent carries on, but the server and its operators learn of it.
pub fn write_failed(what: &str, error: &dyn std::fmt::Display) {
    WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut last) = LAST_FAILURE.lock() {
        *last = Some(format!("writing {what}: {error}"));
    }
    tracing::error!(%error, "writing {what}");
}

/// Total and idle jiffies from the first line of /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let nums: Vec<u64> = line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
    let idle = nums.get(3)? + nums.get(4).unwrap_or(&0);
    Some((nums.iter().sum(), idle))
}

fn memory_percent() -> Option<f32> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    Some((100.0 * (total - available) / total) as f32)
}

fn uptime_seconds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next()?.parse::<f64>().ok().map(|s| s as u64)
}

/// Remembers the previous CPU reading, so each sample is the load since the last one.
#[derive(Default)]
pub struct Sampler {
    last: Option<(u64, u64)>,
}

impl Sampler {
    pub fn sample(&mut self, running: u32) -> AgentStats {
        let now = cpu_times();
        let cpu = match (self.last, now) {
            (Some((t0, i0)), Some((t1, i1))) if t1 > t0 => {
                100.0 * (1.0 - (i1.saturating_sub(i0)) as f32 / (t1 - t0) as f32)
            }
            _ => 0.0,
        };
        self.last = now;
        AgentStats {
            cpu_percent: cpu.clamp(0.0, 100.0),
            memory_percent: memory_percent().unwrap_or(0.0),
            uptime_seconds: uptime_seconds().unwrap_or(0),
            running,
            write_failures: WRITE_FAILURES.load(Ordering::Relaxed),
            degraded: LAST_FAILURE.lock().ok().and_then(|mut l| l.take()),
        }
    }
}
