//! The delivery worker: a thread that sends what is due, records each attempt with its outcome
//! and the next try (backoff), and sleeps until then or until something is queued.

use super::{send, Alerts};
use crate::db;
use std::sync::{Condvar, Mutex};

/// Wakes the delivery worker when something is queued.
#[derive(Default)]
pub(super) struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    pub(super) fn ring(&self) {
        if let Ok(mut r) = self.rung.lock() {
            *r = true;
            self.cv.notify_all();
        }
    }

    pub(super) fn wait(&self, at_most: std::time::Duration) {
        if let Ok(r) = self.rung.lock() {
            if let Ok((mut r, _)) = self.cv.wait_timeout_while(r, at_most, |rung| !*rung) {
                *r = false;
            }
        }
    }
}

impl Alerts {
    /// The worker: sends what is due, records each attempt, sleeps until the next is due or
    /// something is queued.
    pub(super) fn deliver_forever(&self) {
        loop {
            let now = self.clock.now();
            let due = self
                .db
                .conn()
                .map_err(|e| e.to_string())
                .and_then(|mut c| db::alert_deliveries::due(&mut c, now, 32).map_err(|e| e.to_string()));
            let due = match due {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "reading the alert queue");
                    self.bell.wait(std::time::Duration::from_secs(5));
                    continue;
                }
            };
            for d in &due {
                self.deliver(d);
            }
            if due.len() == 32 {
                continue;
            }
            let next = self
                .db
                .conn()
                .ok()
                .and_then(|mut c| db::alert_deliveries::next_due(&mut c).ok().flatten())
                .map(db::utc);
            let wait = match next {
                Some(at) => {
                    (at - self.clock.now()).to_std().unwrap_or_default().min(std::time::Duration::from_secs(60))
                }
                None => std::time::Duration::from_secs(60),
            };
            if !wait.is_zero() {
                self.bell.wait(wait);
            }
        }
    }

    fn deliver(&self, d: &db::alert_deliveries::DeliveryRow) {
        let attempt = d.attempts + 1;
        // The connection is given back before sending: with SQLite there is only one, and a slow
        // endpoint must not hold up the engine.
        let prepared = match self.db.conn() {
            Ok(mut c) => send::prepare(&mut c, &self.vault, d),
            Err(e) => Err(send::Failure::Retry(format!("reading the integration: {e}"))),
        };
        let result = prepared.and_then(|p| p.send(d, &self.policy.allowed_hosts));
        let now = self.clock.now();
        let next = match &result {
            Ok(_) => None,
            Err(send::Failure::Permanent(_)) => None,
            Err(send::Failure::Retry(_)) => self.policy.next_attempt(u32::try_from(attempt).unwrap_or(u32::MAX), now),
        };
        let outcome = result.map_err(|f| f.to_string());
        match &outcome {
            Ok(detail) => {
                tracing::info!(delivery = %d.id, integration = %d.integration, attempt, %detail, "alert sent")
            }
            Err(e) => {
                tracing::warn!(delivery = %d.id, integration = %d.integration, attempt, error = %e, "alert not sent")
            }
        }
        let recorded = self.db.conn().map_err(|e| e.to_string()).and_then(|mut c| {
            db::alert_deliveries::record_attempt(&mut c, d.id, attempt, outcome, next, now).map_err(|e| e.to_string())
        });
        if let Err(e) = recorded {
            tracing::error!(delivery = %d.id, error = %e, "recording an alert attempt");
        }
        self.attempted.send_replace(Some(d.id));
    }
}
