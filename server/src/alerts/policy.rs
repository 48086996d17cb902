//! How alert deliveries are retried (the attempts and the backoff between them), where they may
//! go, and how often deadlines are checked.

use chrono::{DateTime, Duration, Utc};

/// How alerts are delivered and deadlines watched.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPolicy {
    /// Attempts at one delivery before it is given up.
    pub attempts: u32,
    /// The wait before the first retry; each next one waits twice as long (at most an hour).
    pub retry_base: std::time::Duration,
    /// How often deadlines are checked.
    pub check_every: std::time::Duration,
    /// Hosts (names or addresses, as in the URL) webhooks may reach although they resolve to a
    /// loopback, private or link-local address (`alert_allowed_hosts`).
    pub allowed_hosts: std::sync::Arc<Vec<String>>,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            retry_base: std::time::Duration::from_secs(2),
            check_every: std::time::Duration::from_secs(15),
            allowed_hosts: std::sync::Arc::default(),
        }
    }
}

impl AlertPolicy {
    /// When attempt `attempt` (1-based) failed at `now`: when to try again, if at all.
    pub fn next_attempt(&self, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempt >= self.attempts {
            return None;
        }
        let factor = 1u32 << (attempt.saturating_sub(1)).min(20);
        let wait = self.retry_base.saturating_mul(factor).min(std::time::Duration::from_secs(3600));
        Some(now + Duration::from_std(wait).unwrap_or(Duration::hours(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_gives_up() {
        let p = AlertPolicy { attempts: 4, retry_base: std::time::Duration::from_millis(500), ..Default::default() };
        let now = Utc::now();
        let waits: Vec<_> = (1..=4).map(|a| p.next_attempt(a, now).map(|t| (t - now).num_milliseconds())).collect();
        assert_eq!(waits, [Some(500), Some(1000), Some(2000), None]);
    }
}
