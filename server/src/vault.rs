//! The credential store's cipher: secrets are sealed with ChaCha20-Poly1305 under a master key
//! kept outside the database (a file generated with mode 0600 on first start, or an environment
//! variable), each bound to its path key so a ciphertext cannot be moved to another key.

use crate::db::{self, DbConn};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use baton_schema::ids::InstanceId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::{Path, PathBuf};

/// The environment variable that holds the master key itself (base64 of 32 bytes).
pub const KEY_ENV: &str = "BATON_MASTER_KEY";

/// Where the master key came from, for messages (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => write!(f, "the {KEY_ENV} environment variable"),
            Self::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// Seals and opens credential values. Its `Debug` shows where the key came from, not the key.
pub struct Vault {
    cipher: ChaCha20Poly1305,
    pub source: KeySource,
    /// The opened values by key, for dispatches (which must not wait for storage) and deliveries.
    values: std::sync::RwLock<std::collections::HashMap<String, Held>>,
}

/// An opened value, with what says whether it is current and who may use it.
struct Held {
    value: String,
    version: i64,
    /// The instance it belongs to; none for a global one.
    instance: Option<InstanceId>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("source", &self.source).finish_non_exhaustive()
    }
}

/// A value that could not be opened: the wrong master key, or a damaged record.
#[derive(Debug, thiserror::Error)]
#[error(
    "credential {key} cannot be decrypted with the master key from {from}: the key is wrong or the record was altered"
)]
pub struct Undecryptable {
    pub key: String,
    pub from: KeySource,
}

fn parse_key(text: &str, source: &KeySource) -> anyhow::Result<[u8; 32]> {
    let bytes = B64.decode(text.trim()).map_err(|_| {
        anyhow::anyhow!("master key from {source}: not base64 (expected 32 bytes in base64, 44 characters)")
    })?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("master key from {source}: {} bytes, expected 32", bytes.len()))
}

impl Vault {
    /// A store holding nothing, under a fixed key (tests that need a driver but no credential).
    #[cfg(test)]
    pub fn empty() -> std::sync::Arc<Vault> {
        std::sync::Arc::new(Self::from_key([7; 32], KeySource::Env))
    }

    pub fn from_key(key: [u8; 32], source: KeySource) -> Vault {
        Vault { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)), source, values: Default::default() }
    }

    /// Opens the store: the key from `BATON_MASTER_KEY` (`env_key`) or from `key_file`, generated
    /// there when absent and nothing is stored yet. A missing or wrong key while credentials are
    /// stored is an error that names the problem, and nothing is decrypted.
    pub fn open(conn: &mut DbConn, env_key: Option<&str>, key_file: &Path) -> anyhow::Result<Vault> {
        let stored = db::credentials::keys(conn).map_err(|e| anyhow::anyhow!("reading credentials: {e}"))?;
        let vault = match env_key.filter(|k| !k.trim().is_empty()) {
            Some(text) => Self::from_key(parse_key(text, &KeySource::Env)?, KeySource::Env),
            None => {
                let source = KeySource::File(key_file.to_path_buf());
                match std::fs::read_to_string(key_file) {
                    Ok(text) => Self::from_key(parse_key(&text, &source)?, source),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !stored.is_empty() {
                            anyhow::bail!(
                                "master key missing: {} credential(s) are stored but {} does not exist; restore that file or set {KEY_ENV} (nothing was decrypted)",
                                stored.len(),
                                key_file.display()
                            );
                        }
                        Self::from_key(generate(key_file)?, source)
                    }
                    Err(e) => anyhow::bail!("reading the master key file {}: {e}", key_file.display()),
                }
            }
        };
        // Opens every value, as any later read of what changed does.
        vault.refresh(conn).map_err(|e| match e.downcast_ref::<Undecryptable>() {
            Some(_) => anyhow::anyhow!("wrong master key: {e}"),
            None => e,
        })?;
        Ok(vault)
    }

    /// Seals `value` for `key`: (nonce, ciphertext), both base64.
    pub fn seal(&self, key: &str, value: &str) -> anyhow::Result<(String, String)> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness for a nonce: {e}"))?;
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: key.as_bytes() })
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok((B64.encode(nonce), B64.encode(ct)))
    }

    pub fn open_row(&self, row: &db::credentials::CredentialRow) -> Result<String, Undecryptable> {
        let fail = || Undecryptable { key: row.key.clone(), from: self.source.clone() };
        let nonce = B64.decode(&row.nonce).map_err(|_| fail())?;
        let ct = B64.decode(&row.ciphertext).map_err(|_| fail())?;
        if nonce.len() != 12 {
            return Err(fail());
        }
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: row.key.as_bytes() })
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }

    /// The value under `key`, read from storage.
    pub fn get(&self, conn: &mut DbConn, key: &str) -> anyhow::Result<Option<String>> {
        match db::credentials::get(conn, key).map_err(|e| anyhow::anyhow!("{e}"))? {
            Some(row) => Ok(Some(self.open_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The value under `key` for a use in `instance` (none: a global use, such as a global
    /// integration or an adhoc run): a credential of another instance is not there for it.
    pub fn lookup_for(&self, key: &str, instance: Option<InstanceId>) -> Option<String> {
        self.held_for(key, instance).map(|(value, _)| value)
    }

    /// [`Vault::lookup_for`], with the value's version.
    pub fn held_for(&self, key: &str, instance: Option<InstanceId>) -> Option<(String, i64)> {
        let values = self.values.read().ok()?;
        let held = values.get(key)?;
        (held.instance.is_none() || held.instance == instance).then(|| (held.value.clone(), held.version))
    }

    /// Whether `key` is held as a global credential (of no instance).
    pub fn is_global(&self, key: &str) -> bool {
        self.values.read().is_ok_and(|v| v.get(key).is_some_and(|h| h.instance.is_none()))
    }

    /// Every value held, for masking.
    pub fn all_values(&self) -> Vec<String> {
        self.values.read().map(|v| v.values().map(|h| h.value.clone()).collect()).unwrap_or_default()
    }

    /// Seals and stores `value` under `key` in `instance` (a new version when it exists there);
    /// returns the version. A key of another instance is refused with the storage's
    /// [`db::DbError::Conflict`], which the error carries.
    pub fn set(
        &self,
        conn: &mut DbConn,
        key: &str,
        value: &str,
        instance: Option<InstanceId>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<i64> {
        let (nonce, ct) = self.seal(key, value)?;
        let sealed = db::credentials::Sealed { nonce: &nonce, ciphertext: &ct };
        let version = db::credentials::put(conn, key, &sealed, instance, now)?;
        if let Ok(mut v) = self.values.write() {
            v.insert(key.to_string(), Held { value: value.to_string(), version, instance });
        }
        Ok(version)
    }

    /// Reads again what changed in storage (set, rotated or deleted through another server
    /// sharing the database); returns how many keys changed.
    pub fn refresh(&self, conn: &mut DbConn) -> anyhow::Result<usize> {
        let stored = db::credentials::keys(conn).map_err(|e| anyhow::anyhow!("reading credentials: {e}"))?;
        let stale: Vec<&db::credentials::KeyRow> = {
            let held = self.values.read().map_err(|_| anyhow::anyhow!("the vault's lock is poisoned"))?;
            stored
                .iter()
                .filter(|k| held.get(&k.key).is_none_or(|h| h.version != k.version || h.instance != k.instance_id))
                .collect()
        };
        let mut opened = Vec::new();
        for k in stale {
            let row = db::credentials::get(conn, &k.key).map_err(|e| anyhow::anyhow!("reading credentials: {e}"))?;
            if let Some(row) = row {
                let value = self.open_row(&row)?;
                opened.push((row.key, Held { value, version: row.version, instance: row.instance_id }));
            }
        }
        let mut held = self.values.write().map_err(|_| anyhow::anyhow!("the vault's lock is poisoned"))?;
        let before = held.len();
        held.retain(|key, _| stored.iter().any(|k| k.key == *key));
        let changed = opened.len() + (before - held.len());
        held.extend(opened);
        Ok(changed)
    }

    /// [`Vault::refresh`] on the blocking pool; a failure is logged (the values held stay).
    pub async fn reread(self: &std::sync::Arc<Self>, db: &db::Db) -> usize {
        let vault = self.clone();
        match db.run(move |c| Ok(vault.refresh(c))).await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the credentials again");
                0
            }
        }
    }

    /// Keeps the held values current with storage, every second, until the server stops: with a
    /// shared database, credentials change through the other servers too.
    pub async fn follow(self: std::sync::Arc<Self>, db: db::Db) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let n = self.reread(&db).await;
            if n > 0 {
                tracing::info!(changed = n, "credentials changed through another server");
            }
        }
    }

    /// Forgets `key` (after its row was deleted).
    pub fn forget(&self, key: &str) {
        if let Ok(mut v) = self.values.write() {
            v.remove(key);
        }
    }
}

/// What a master key rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// Values sealed again under the new key.
    pub count: usize,
    /// The new key, base64, when the old one came from the environment (it is not written
    /// anywhere: the caller shows it once).
    pub new_env_key: Option<String>,
}

/// Seals every value again under a new master key. The old key must open every value first.
/// With a key file, the new key is written beside it (`.new`, 0600) before the database changes
/// and replaces it after the commit, so no moment leaves values without their key on disk.
pub fn rotate(conn: &mut DbConn, env_key: Option<&str>, key_file: &Path) -> anyhow::Result<Rotated> {
    let old = Vault::open(conn, env_key, key_file)?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a master key: {e}"))?;
    let from_env = old.source == KeySource::Env;
    let pending = key_file.with_extension("key.new");
    if !from_env {
        let _ = std::fs::remove_file(&pending);
        write_key(&pending, &key)?;
    }
    let new = Vault::from_key(key, if from_env { KeySource::Env } else { KeySource::File(key_file.to_path_buf()) });
    let resealed = db::transaction(conn, |c| -> anyhow::Result<usize> {
        let keys = db::credentials::keys(c).map_err(|e| anyhow::anyhow!("{e}"))?;
        for k in keys.iter().map(|k| &k.key) {
            let value = old.get(c, k)?.ok_or_else(|| anyhow::anyhow!("credential {k} vanished"))?;
            let (nonce, ct) = new.seal(k, &value)?;
            db::credentials::reseal(c, k, &nonce, &ct).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(keys.len())
    });
    let count = match resealed {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            return Err(e.context("nothing was changed"));
        }
    };
    if from_env {
        return Ok(Rotated { count, new_env_key: Some(B64.encode(key)) });
    }
    std::fs::rename(&pending, key_file).map_err(|e| {
        anyhow::anyhow!(
            "the values are sealed under the new key in {}, but it could not replace {}: {e}; move it there yourself",
            pending.display(),
            key_file.display()
        )
    })?;
    Ok(Rotated { count, new_env_key: None })
}

/// Writes a new random key to `path`, readable by its owner only.
fn generate(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a master key: {e}"))?;
    write_key(path, &key)?;
    tracing::info!(path = %path.display(), "generated a new master key for the credential store");
    Ok(key)
}

/// Writes a key to a new file, readable by its owner only, synced to disk.
fn write_key(path: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating the master key file {}: {e}", path.display()))?;
    f.write_all(format!("{}\n", B64.encode(key)).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| anyhow::anyhow!("writing the master key file {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DatabaseUrl, Db};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_key_seals_opens_and_refuses_the_wrong_or_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::Sqlite(dir.path().join("b.db"))).unwrap();
        let mut c = db.conn().unwrap();
        let key_file = dir.path().join("keys/master.key");
        let vault = Vault::open(&mut c, None, &key_file).unwrap();
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (nonce, ct) = vault.seal("alerts/email", "hunter2-secret").unwrap();
        assert!(!ct.contains("hunter2"));
        let sealed = db::credentials::Sealed { nonce: &nonce, ciphertext: &ct };
        db::credentials::put(&mut c, "alerts/email", &sealed, None, chrono::Utc::now()).unwrap();
        assert_eq!(vault.get(&mut c, "alerts/email").unwrap().as_deref(), Some("hunter2-secret"));
        // Bound to its key: the same ciphertext under another key does not open.
        db::credentials::put(&mut c, "alerts/other", &sealed, None, chrono::Utc::now()).unwrap();
        assert!(vault.get(&mut c, "alerts/other").is_err());
        db::credentials::delete(&mut c, "alerts/other").unwrap();

        // The same file opens again.
        assert!(Vault::open(&mut c, None, &key_file).is_ok());
        // Missing: a clear error, no new key written over the old secrets.
        let elsewhere = dir.path().join("missing.key");
        let e = Vault::open(&mut c, None, &elsewhere).unwrap_err().to_string();
        assert!(e.starts_with("master key missing: 1 credential(s) are stored"), "{e}");
        assert!(!elsewhere.exists());
        // Wrong: a clear error naming the credential it could not open.
        let wrong = B64.encode([7u8; 32]);
        let e = Vault::open(&mut c, Some(&wrong), &key_file).unwrap_err().to_string();
        assert!(e.starts_with("wrong master key: credential alerts/email cannot be decrypted"), "{e}");
        assert!(!e.contains("hunter2"));
        let e = Vault::open(&mut c, Some("short"), &key_file).unwrap_err().to_string();
        assert!(e.contains("BATON_MASTER_KEY") && e.contains("32 bytes"), "{e}");

        // Rotation with a key from the environment: the new key is handed back, not written.
        let env_key = std::fs::read_to_string(&key_file).unwrap();
        let done = rotate(&mut c, Some(env_key.trim()), &elsewhere).unwrap();
        assert_eq!(done.count, 1);
        let new_key = done.new_env_key.unwrap();
        assert!(!elsewhere.exists() && !elsewhere.with_extension("key.new").exists());
        assert!(Vault::open(&mut c, Some(env_key.trim()), &key_file).is_err());
        let vault = Vault::open(&mut c, Some(&new_key), &key_file).unwrap();
        assert_eq!(vault.lookup_for("alerts/email", None).as_deref(), Some("hunter2-secret"));
    }

    #[test]
    fn a_value_serves_its_instance_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::Sqlite(dir.path().join("b.db"))).unwrap();
        let mut c = db.conn().unwrap();
        let here = Vault::open(&mut c, None, &dir.path().join("master.key")).unwrap();
        let default = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        let other = db::instances::ensure(&mut c, "other", chrono::Utc::now()).unwrap().id;
        here.set(&mut c, "db/default", "v1", Some(default), chrono::Utc::now()).unwrap();
        here.set(&mut c, "shared", "g1", None, chrono::Utc::now()).unwrap();
        assert_eq!(here.lookup_for("db/default", Some(default)).as_deref(), Some("v1"));
        assert_eq!(here.lookup_for("db/default", Some(other)), None, "another instance's");
        assert_eq!(here.lookup_for("db/default", None), None, "a global use");
        assert_eq!(here.lookup_for("shared", Some(other)).as_deref(), Some("g1"));
        // A rotation keeps the key's instance.
        here.set(&mut c, "db/default", "v2", Some(default), chrono::Utc::now()).unwrap();
        assert_eq!(here.lookup_for("db/default", Some(default)).as_deref(), Some("v2"));
        assert_eq!(here.lookup_for("db/default", None), None);
        // Set as global or as another instance's, the key is not touched.
        for elsewhere in [None, Some(other)] {
            let e = here.set(&mut c, "db/default", "stolen", elsewhere, chrono::Utc::now()).unwrap_err();
            assert!(matches!(e.downcast_ref::<db::DbError>(), Some(db::DbError::Conflict(_))), "{e}");
        }
        assert_eq!(here.lookup_for("db/default", Some(default)).as_deref(), Some("v2"));
    }

    #[test]
    fn changes_made_through_another_server_are_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(DatabaseUrl::Sqlite(dir.path().join("b.db"))).unwrap();
        let mut c = db.conn().unwrap();
        let key_file = dir.path().join("master.key");
        let here = Vault::open(&mut c, None, &key_file).unwrap();
        // Another server on the same database and key.
        let there = Vault::open(&mut c, None, &key_file).unwrap();
        let default = db::instances::by_name(&mut c, "default").unwrap().unwrap().id;
        here.set(&mut c, "db/default", "v1", Some(default), chrono::Utc::now()).unwrap();
        here.set(&mut c, "shared", "g1", None, chrono::Utc::now()).unwrap();
        assert_eq!(there.lookup_for("shared", None), None, "not read yet");
        assert_eq!(there.refresh(&mut c).unwrap(), 2);
        assert_eq!(there.lookup_for("db/default", Some(default)).as_deref(), Some("v1"));
        assert_eq!(there.refresh(&mut c).unwrap(), 0, "nothing changed since");
        // A rotation and a deletion through the first reach the second at its next read.
        here.set(&mut c, "db/default", "v2", Some(default), chrono::Utc::now()).unwrap();
        db::credentials::delete(&mut c, "shared").unwrap();
        here.forget("shared");
        assert_eq!(there.refresh(&mut c).unwrap(), 2);
        assert_eq!(there.lookup_for("db/default", Some(default)).as_deref(), Some("v2"), "it keeps its instance");
        assert_eq!(there.lookup_for("shared", None), None);
        assert_eq!(there.all_values(), ["v2"]);
    }
}
