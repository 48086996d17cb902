//! Passwords, sessions, API tokens and login rate limits.
//!
//! Passwords are hashed with argon2; session and API tokens are random and stored only as SHA-256
//! hashes, so a database leak yields no usable credential.

use argon2::password_hash::{self, Output, PasswordHash, SaltString};
use argon2::{Argon2, Params};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| anyhow::anyhow!("encoding a salt: {e}"))?;
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| anyhow::anyhow!("a salt: {e}"))?;
    let output = Output::init_with(params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
        hash_into(&argon, password.as_bytes(), salt_bytes, out).map_err(|_| password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::default().ident(),
        version: Some(argon2::Version::default().into()),
        params: (&params).try_into().map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else { return false };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        argon2::Algorithm::try_from(phc.algorithm),
        phc.version.map(argon2::Version::try_from).transpose(),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return false };
    let computed = Output::init_with(expected.len(), |out| {
        hash_into(&argon, password.as_bytes(), salt_bytes, out).map_err(|_| password_hash::Error::Crypto)
    });
    // `Output`'s equality takes the same time wherever the bytes differ.
    computed.is_ok_and(|c| c == expected)
}

/// The most argon2 memory a stored hash may ask for, in 1 KiB blocks (64 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// This thread's argon2 memory, reused by each hash it computes: the allocator, asked for
    /// 19 MiB per hash, kept each one resident (19 MiB more per login, to hundreds of MiB).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `argon` into `out` with this thread's memory.
fn hash_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), argon2::Error> {
    let count = argon.params().block_count();
    if count > MAX_BLOCKS {
        return Err(argon2::Error::MemoryTooMuch);
    }
    // Only the hasher's threads keep theirs; another (a one-shot command) gives it back.
    if !std::thread::current().name().is_some_and(|n| n.starts_with("baton-hash-")) {
        let mut memory = vec![argon2::Block::default(); count];
        return argon.hash_password_into_with_memory(password, salt, out, &mut memory);
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < count {
            memory.resize(count, argon2::Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..count])
    })
}

/// Password hashes and checks on threads of their own, with a bounded queue. Each argon2 hash
/// needs 19 MiB; run anywhere, a flood of logins grew the server by that much per login, to
/// hundreds of MiB. Here at most `threads` run at once, each reusing one buffer (`hash_into`),
/// and at most `queue` wait; past that a login is refused, not queued without end.
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
    /// How long a check takes here, in nanoseconds: the median of the last few (0 before the
    /// first), so that the first check, slower while its memory is new, does not skew it.
    typical: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The last checks' durations.
    recent: std::sync::Arc<std::sync::Mutex<VecDeque<u64>>>,
    /// Jobs queued or running.
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Jobs waiting past which a decoy is timed, not computed.
const DECOYS_COMPUTED_UNDER: usize = 8;

/// Checks whose durations the typical one is the median of.
const TIMED: usize = 9;

/// The hasher's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Hasher {
    pub fn start(threads: usize, queue: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("baton-hash-{i}")).spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "starting a password hashing thread");
            }
        }
        Self { jobs, typical: Default::default(), recent: Default::default(), waiting: Default::default() }
    }

    /// Checks `password` against a stored hash (None: the decoy, which nothing matches) on a
    /// hashing thread, timing it. The decoy is made there too, in the thread's own memory.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let (typical, recent) = (self.typical.clone(), self.recent.clone());
        self.run(move || {
            // The decoy is made once, before timing: only the check itself is timed.
            let stored = hash.as_deref().unwrap_or_else(|| decoy_hash());
            let started = std::time::Instant::now();
            let ok = verify_password(&password, stored) && hash.is_some();
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if let Ok(mut recent) = recent.lock() {
                if recent.len() == TIMED {
                    recent.pop_front();
                }
                recent.push_back(took);
                let mut sorted: Vec<u64> = recent.iter().copied().collect();
                sorted.sort_unstable();
                typical.store(sorted[sorted.len() / 2], std::sync::atomic::Ordering::Relaxed);
            }
            ok
        })
        .await
    }

    /// Takes as long as a check, for a user who does not exist (or is disabled): a real check
    /// against the decoy hash while the hasher is not busy (so it costs exactly what a check
    /// costs), else a wait as long as the typical check without taking a hashing thread, so a
    /// flood of made-up names cannot crowd out owners' checks.
    pub async fn decoy(&self, password: String) -> Result<(), Busy> {
        let busy = self.waiting.load(std::sync::atomic::Ordering::Relaxed) >= DECOYS_COMPUTED_UNDER;
        match self.typical.load(std::sync::atomic::Ordering::Relaxed) {
            nanos if nanos == 0 || !busy => self.verify(password, None).await.map(|_| ()),
            nanos => {
                tokio::time::sleep(std::time::Duration::from_nanos(nanos)).await;
                Ok(())
            }
        }
    }

    /// Runs `f` on a hashing thread; `Busy` when the queue is full.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = self.waiting.clone();
        waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let done = waiting.clone();
        let sent = self.jobs.try_send(Box::new(move || {
            let _ = tx.send(f());
            done.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }));
        if sent.is_err() {
            waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Busy);
        }
        rx.await.map_err(|_| Busy)
    }
}

impl Default for Hasher {
    /// One thread (19 MiB of argon2 memory, about 50 checks a second), 64 waiting: logins are
    /// few, and a flood of them costs no more memory than one.
    fn default() -> Self {
        Self::start(1, 64)
    }
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

/// The longest user name and password a login takes: longer ones are refused before anything
/// is looked up, hashed or counted.
pub const MAX_USERNAME_BYTES: usize = 64;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest token looked up (sessions, API and enrollment tokens are 67 bytes): a longer one
/// is no token, refused before it is hashed.
pub const MAX_TOKEN_BYTES: usize = 128;

/// Slows down repeated failed logins. Failures count per address and name (`ADDR NAME`) and per
/// address (`ADDR`), never per name alone: failures from one address never lock a user out from
/// another. After `FREE` failures of a key in the window, each further attempt waits a delay that
/// doubles with every failure, up to `MAX_DELAY`; an address that fails `ADDRESS_LIMIT` times in
/// the window, whatever the names, waits out the window. At most `MAX_KEYS` keys are kept: past
/// it, the keys whose last failure is oldest go first. Pure: time is an argument.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    failures: HashMap<String, Failures>,
    max_keys: usize,
}

/// One key's failures in the window, oldest first.
#[derive(Debug, Default)]
struct Failures {
    at: VecDeque<DateTime<Utc>>,
    /// A wait was reported since the last failure (the audit log has it once).
    reported: bool,
}

/// Failures of an (address, name) before attempts wait.
const FREE: usize = 3;
/// The longest wait between attempts of one (address, name).
const MAX_DELAY: i64 = 300;
/// Failures of one address, whatever the names, after which it waits out the window.
const ADDRESS_LIMIT: usize = 30;
/// How many keys the limiter keeps at most.
pub const MAX_KEYS: usize = 100_000;

impl Default for LoginLimiter {
    fn default() -> Self {
        Self { window: Duration::minutes(15), failures: HashMap::new(), max_keys: MAX_KEYS }
    }
}

/// Why a login must wait, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub seconds: i64,
    /// The address failed too often, whatever the names (else: this name from this address).
    pub address: bool,
    /// The first refusal since the key's last failure (worth recording once).
    pub first: bool,
}

impl LoginLimiter {
    /// The keys of a login: the (address, name) pair and the address.
    pub fn keys(address: &str, name: &str) -> [String; 2] {
        [format!("{address} {name}"), address.to_string()]
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let window = self.window;
        self.failures.retain(|_, f| {
            while f.at.front().is_some_and(|t| *t <= now - window) {
                f.at.pop_front();
            }
            !f.at.is_empty()
        });
    }

    /// How long the key `[pair, address]` must wait at `now`, if at all.
    fn wait(&self, keys: &[String; 2], now: DateTime<Utc>) -> Option<Wait> {
        if let Some(f) = self.failures.get(&keys[1]).filter(|f| f.at.len() >= ADDRESS_LIMIT) {
            let oldest = f.at.front().copied().unwrap_or(now);
            let seconds = (oldest + self.window - now).num_seconds().max(1);
            return Some(Wait { seconds, address: true, first: false });
        }
        let f = self.failures.get(&keys[0]).filter(|f| f.at.len() >= FREE)?;
        let doublings = u32::try_from(f.at.len() - FREE).unwrap_or(u32::MAX).min(16);
        let delay = Duration::seconds((1i64 << doublings).min(MAX_DELAY));
        let until = f.at.back().copied().unwrap_or(now) + delay;
        (until > now).then(|| Wait { seconds: (until - now).num_seconds().max(1), address: false, first: false })
    }

    /// Takes an attempt before the password is checked, counted as a failure until it
    /// succeeds: a burst of parallel attempts cannot pass the limit while each is being checked.
    pub fn reserve(&mut self, keys: &[String; 2], now: DateTime<Utc>) -> Result<(), Wait> {
        self.prune(now);
        if let Some(mut w) = self.wait(keys, now) {
            let key = if w.address { &keys[1] } else { &keys[0] };
            if let Some(f) = self.failures.get_mut(key) {
                w.first = !std::mem::replace(&mut f.reported, true);
            }
            return Err(w);
        }
        self.failed(keys, now);
        Ok(())
    }

    pub fn failed(&mut self, keys: &[String; 2], now: DateTime<Utc>) {
        for k in keys {
            if !self.failures.contains_key(k) && self.failures.len() >= self.max_keys {
                self.evict();
            }
            let f = self.failures.entry(k.clone()).or_default();
            f.at.push_back(now);
            f.reported = false;
        }
    }

    /// Drops the tenth of the keys whose last failure is oldest.
    fn evict(&mut self) {
        let mut last: Vec<(DateTime<Utc>, String)> =
            self.failures.iter().filter_map(|(k, f)| Some((*f.at.back()?, k.clone()))).collect();
        let n = (last.len() / 10).max(1);
        last.select_nth_unstable(n - 1);
        for (_, k) in last.into_iter().take(n) {
            self.failures.remove(&k);
        }
    }

    /// A reserved attempt succeeded: the pair's failures are forgotten, and the attempt's
    /// reservation given back to the address.
    pub fn succeeded(&mut self, keys: &[String; 2]) {
        self.failures.remove(&keys[0]);
        if let Some(f) = self.failures.get_mut(&keys[1]) {
            f.at.pop_back();
        }
    }

    /// A reserved attempt was never checked (the hasher was busy): it is given back, so that
    /// what others cause never counts against a key.
    pub fn release(&mut self, keys: &[String; 2]) {
        for k in keys {
            if let Some(f) = self.failures.get_mut(k) {
                f.at.pop_back();
            }
        }
    }

    /// How many keys are kept.
    pub fn keys_kept(&self) -> usize {
        self.failures.len()
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
        // Hashes stored before (made by argon2's own hasher) still verify, and the reverse.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default().hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify_password("correct horse", &theirs) && !verify_password("wrong horse", &theirs));
        let ours = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &ours).is_ok());
        // A stored hash asking for more memory than any we make is refused, not computed.
        let greedy = theirs.replace("m=19456", "m=1048576");
        assert!(!verify_password("correct horse", &greedy));
    }

    #[test]
    fn an_attempt_never_checked_is_given_back() {
        let mut l = LoginLimiter::default();
        let keys = LoginLimiter::keys("10.0.0.1", "owner");
        let now = Utc::now();
        for _ in 0..FREE {
            l.reserve(&keys, now).unwrap();
            l.release(&keys);
        }
        assert!(l.reserve(&keys, now).is_ok(), "released attempts do not count");
    }

    #[tokio::test]
    async fn the_hasher_runs_a_bounded_number_and_refuses_past_its_queue() {
        let hasher = std::sync::Arc::new(Hasher::start(1, 1));
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let h = hasher.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    let _ = held.recv();
                })
                .await
            }
        });
        running.await.unwrap();
        // One runs, one waits; a third is refused at once.
        let second = tokio::spawn({
            let h = hasher.clone();
            async move { h.run(|| 2).await }
        });
        tokio::task::yield_now().await;
        let mut third = Err(Busy);
        for _ in 0..100 {
            third = hasher.run(|| 3).await;
            if third.is_err() {
                break;
            }
        }
        assert_eq!(third, Err(Busy));
        hold.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(second.await.unwrap(), Ok(2));
        let t = new_token("bt_").unwrap();
        assert_eq!(t.len(), 67);
        assert_ne!(t, new_token("bt_").unwrap());
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(new_password().unwrap().len(), 20);
    }

    #[test]
    fn failures_slow_their_address_and_name_not_the_user_elsewhere() {
        let t = |s: i64| "2026-11-28T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(s);
        let mut l = LoginLimiter::default();
        let from_attacker = LoginLimiter::keys("10.0.0.9", "admin");
        for i in 0..3 {
            assert!(l.reserve(&from_attacker, t(i)).is_ok(), "the first failures are free");
        }
        // Then each attempt waits after the last failure, the wait doubling with each failure.
        let wait = |seconds, first| Err(Wait { seconds, address: false, first });
        assert_eq!(l.reserve(&from_attacker, t(2)), wait(1, true));
        assert!(l.reserve(&from_attacker, t(3)).is_ok());
        assert_eq!(l.reserve(&from_attacker, t(3)), wait(2, true));
        assert_eq!(l.reserve(&from_attacker, t(4)), wait(1, false), "reported once");
        assert!(l.reserve(&from_attacker, t(5)).is_ok());
        assert_eq!(l.reserve(&from_attacker, t(5)), wait(4, true));
        // The owner, from another address, is not slowed at all.
        let from_owner = LoginLimiter::keys("192.168.1.5", "admin");
        assert!(l.reserve(&from_owner, t(7)).is_ok());
        l.succeeded(&from_owner);
        // Another name from the attacker's address is free too, until the address's own limit.
        for i in 0..ADDRESS_LIMIT {
            let _ = l.reserve(&LoginLimiter::keys("10.0.0.9", &format!("user{i}")), t(8));
        }
        assert!(matches!(l.reserve(&LoginLimiter::keys("10.0.0.9", "other"), t(9)), Err(Wait { address: true, .. })));
        assert!(l.reserve(&from_owner, t(9)).is_ok(), "the owner's address is its own");
        // The window slides past every failure.
        assert!(l.reserve(&from_attacker, t(9) + Duration::minutes(15)).is_ok());
    }

    #[test]
    fn the_limiter_keeps_a_bounded_number_of_keys() {
        let t0: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let mut l = LoginLimiter { max_keys: 1_000, ..LoginLimiter::default() };
        for i in 0..10_000 {
            let _ = l.reserve(&LoginLimiter::keys(&format!("10.0.{}.{}", i / 256, i % 256), "x"), t0);
        }
        assert!(l.keys_kept() <= 1_000, "{} keys kept", l.keys_kept());
    }
}
