//! Passwords, sessions, API tokens and login rate limits.
//!
//! Passwords are hashed with argon2; session and API tokens are random and stored only as SHA-256
//! hashes, so a database leak yields no usable credential.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| anyhow::anyhow!("encoding a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, checked for unknown and disabled users so that a login costs the
/// same whether the name exists or not.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let secret = new_token("").unwrap_or_else(|_| "decoy".into());
        hash_password(&secret).unwrap_or_default()
    })
}

/// A new random secret, `prefix` + 64 hex digits (256 bits).
pub fn new_token(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// What is stored for a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A password readable enough to type once: 20 characters from an unambiguous alphabet.
pub fn new_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

pub const MIN_PASSWORD_LEN: usize = 8;

/// Counts failed logins in a sliding window, per key (`user:NAME`, `ip:ADDR`). Pure: time is an
/// argument.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    limits: Vec<(&'static str, usize)>,
    failures: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl Default for LoginLimiter {
    /// 5 failures per user name and 20 per address in 5 minutes.
    fn default() -> Self {
        Self { window: Duration::minutes(5), limits: vec![("user:", 5), ("ip:", 20)], failures: HashMap::new() }
    }
}

impl LoginLimiter {
    fn limit(&self, key: &str) -> usize {
        self.limits.iter().find(|(p, _)| key.starts_with(p)).map_or(5, |(_, n)| *n)
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let window = self.window;
        self.failures.retain(|_, q| {
            while q.front().is_some_and(|t| *t <= now - window) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }

    /// Takes an attempt before the password is checked, counted as a failure until it
    /// succeeds: a burst of parallel attempts cannot pass the limit while each is being checked.
    /// `Err(seconds to wait)` when a key has used up its attempts.
    pub fn reserve(&mut self, keys: &[String], now: DateTime<Utc>) -> Result<(), i64> {
        self.check(keys, now)?;
        self.failed(keys, now);
        Ok(())
    }

    /// `Err(seconds to wait)` when any key has used up its attempts.
    pub fn check(&mut self, keys: &[String], now: DateTime<Utc>) -> Result<(), i64> {
        self.prune(now);
        for k in keys {
            if let Some(q) = self.failures.get(k) {
                if q.len() >= self.limit(k) {
                    let oldest = q.front().copied().unwrap_or(now);
                    return Err((oldest + self.window - now).num_seconds().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn failed(&mut self, keys: &[String], now: DateTime<Utc>) {
        for k in keys {
            self.failures.entry(k.clone()).or_default().push_back(now);
        }
    }

    /// A reserved attempt succeeded: the user's failures are forgotten, and the attempt's
    /// reservation given back to the other keys.
    pub fn succeeded(&mut self, keys: &[String]) {
        for (i, k) in keys.iter().enumerate() {
            if i == 0 {
                self.failures.remove(k);
            } else if let Some(q) = self.failures.get_mut(k) {
                q.pop_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
        let t = new_token("bt_").unwrap();
        assert_eq!(t.len(), 67);
        assert_ne!(t, new_token("bt_").unwrap());
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(new_password().unwrap().len(), 20);
    }

    #[test]
    fn limiter_blocks_then_forgets() {
        let t0: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let mut l = LoginLimiter::default();
        let keys = vec!["user:ada".to_string(), "ip:127.0.0.1".to_string()];
        for i in 0..5 {
            assert!(l.check(&keys, t0 + Duration::seconds(i)).is_ok());
            l.failed(&keys, t0 + Duration::seconds(i));
        }
        assert_eq!(l.check(&keys, t0 + Duration::seconds(10)), Err(290));
        // Another user from the same address is still allowed (the address limit is 20).
        assert!(l.check(&["user:bob".to_string(), "ip:127.0.0.1".to_string()], t0 + Duration::seconds(10)).is_ok());
        assert!(l.check(&keys, t0 + Duration::seconds(301)).is_ok(), "the window slid past the first failure");
        l.succeeded(&keys);
        assert!(l.check(&keys, t0 + Duration::seconds(11)).is_ok());
    }
}
