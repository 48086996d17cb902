//! How many GraphQL sockets may be open: in total, per address and per user. A socket counts
//! from its upgrade until it closes, against its address at once and against its user as soon as
//! the user is known (the upgrade's cookie or bearer, or the token of `connection_init`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The caps (config keys `max_sockets`, `max_sockets_per_address`, `max_sockets_per_user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketCaps {
    pub total: usize,
    pub per_address: usize,
    pub per_user: usize,
}

impl Default for SocketCaps {
    fn default() -> Self {
        Self { total: 10_000, per_address: 256, per_user: 64 }
    }
}

/// The sockets open now.
#[derive(Debug, Default)]
pub struct SocketCounts {
    caps: SocketCaps,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<String, usize>,
    by_user: HashMap<String, usize>,
}

/// One open socket's place in the counts, given back when it is dropped.
#[derive(Debug)]
pub struct Admission {
    counts: Arc<SocketCounts>,
    address: String,
    user: Mutex<Option<String>>,
}

impl SocketCounts {
    pub fn new(caps: SocketCaps) -> Arc<SocketCounts> {
        Arc::new(SocketCounts { caps, open: Mutex::default() })
    }

    /// Counts a new socket from `address`, or says which cap it would pass.
    pub fn admit(self: &Arc<Self>, address: &str) -> Result<Admission, String> {
        let mut open = self.open.lock().map_err(|_| "internal error".to_string())?;
        if open.total >= self.caps.total {
            return Err(format!("the server has {} sockets open, its most (max_sockets)", self.caps.total));
        }
        let here = open.by_address.get(address).copied().unwrap_or(0);
        if here >= self.caps.per_address {
            return Err(format!("{here} sockets are open from this address, the most (max_sockets_per_address)"));
        }
        open.total += 1;
        *open.by_address.entry(address.to_string()).or_default() += 1;
        Ok(Admission { counts: self.clone(), address: address.to_string(), user: Mutex::new(None) })
    }

    /// How many sockets are open.
    pub fn total(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }
}

impl Admission {
    /// Counts the socket against `user` too (once; a second user replaces the first), or says
    /// that user has the most sockets already.
    pub fn of_user(&self, user: &str) -> Result<(), String> {
        let counts = &self.counts;
        let mut open = counts.open.lock().map_err(|_| "internal error".to_string())?;
        let Ok(mut mine) = self.user.lock() else { return Err("internal error".into()) };
        if mine.as_deref() == Some(user) {
            return Ok(());
        }
        let theirs = open.by_user.get(user).copied().unwrap_or(0);
        if theirs >= counts.caps.per_user {
            return Err(format!("{theirs} sockets are open for this user, the most (max_sockets_per_user)"));
        }
        if let Some(old) = mine.take() {
            release(&mut open.by_user, &old);
        }
        *open.by_user.entry(user.to_string()).or_default() += 1;
        *mine = Some(user.to_string());
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let Ok(mut open) = self.counts.open.lock() else { return };
        open.total = open.total.saturating_sub(1);
        release(&mut open.by_address, &self.address);
        if let Some(user) = self.user.lock().ok().and_then(|mut u| u.take()) {
            release(&mut open.by_user, &user);
        }
    }
}

/// One fewer under `key`; the key goes at zero, so the maps hold only what is open.
fn release(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_capped_in_total_per_address_and_per_user_and_given_back() {
        let counts = SocketCounts::new(SocketCaps { total: 4, per_address: 2, per_user: 1 });
        let a1 = counts.admit("10.0.0.1").unwrap();
        let a2 = counts.admit("10.0.0.1").unwrap();
        assert!(counts.admit("10.0.0.1").unwrap_err().contains("max_sockets_per_address"));
        let b1 = counts.admit("10.0.0.2").unwrap();
        let _b2 = counts.admit("10.0.0.2").unwrap();
        assert!(counts.admit("10.0.0.3").unwrap_err().contains("max_sockets"));
        a1.of_user("ada").unwrap();
        assert!(a2.of_user("ada").unwrap_err().contains("max_sockets_per_user"));
        b1.of_user("bob").unwrap();
        drop(a1);
        a2.of_user("ada").unwrap();
        assert!(counts.admit("10.0.0.3").is_ok(), "a closed socket gives its place back");
        drop((a2, b1));
        assert_eq!(counts.total(), 1);
        let open = counts.open.lock().unwrap();
        assert!(open.by_user.is_empty() && !open.by_address.contains_key("10.0.0.1"), "{open:?}");
    }
}
