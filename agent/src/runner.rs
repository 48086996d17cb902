//! Runs dispatched work: accepts each (run, attempt) at most once, starts its shim, follows its
//! pid, output and exit through the files the shim writes, and turns them into logged events.
//! The files survive an agent restart, so a restarted agent picks up where it left off.

use crate::journal::{self, ExitRecord, Fact, Job, Journal, SecretEnv};
use crate::log::EventQueue;
use crate::shim::kill_group;
use anyhow::{Context, Result};
use baton_schema::agent::v1::{AgentEvent, AgentMsg, AttemptRef, CredentialVersion, Dispatch, Stream};
use baton_schema::ids::RunId;
use baton_schema::run::Outcome;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How often a running attempt's output files are read.
const OUTPUT_POLL: Duration = Duration::from_millis(25);

/// Largest output chunk per event.
const CHUNK: usize = 64 * 1024;

/// What stands in for the output of an attempt whose credentials a restarted agent could not get
/// back from the server.
pub const WITHHELD: &str =
    "[baton: output withheld from here: the agent restarted and could not get this run's credentials back to mask them]\n";

/// The server's answer about an attempt's credentials: their values, or none (withhold).
type SecretsAnswer = Option<Vec<String>>;

/// How a followed attempt's output is masked.
struct Mask {
    /// The credential values replaced by asterisks.
    secrets: Vec<String>,
    /// The values are not known (see `Runner::follow`): nothing is sent.
    withhold: bool,
    /// The values were asked for again and have not come yet: output waits.
    pending: Option<oneshot::Receiver<SecretsAnswer>>,
    /// Whether the notice was sent, per stream (stdout, stderr).
    noticed: [bool; 2],
}

impl Mask {
    /// Whether output may be read: the values are known, or known to be gone.
    fn settled(&mut self) -> bool {
        let Some(rx) = self.pending.as_mut() else { return true };
        match rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return false,
            Ok(Some(values)) => self.secrets = values,
            Ok(None) | Err(oneshot::error::TryRecvError::Closed) => self.withhold = true,
        }
        self.pending = None;
        true
    }
}

/// An attempt whose credentials were asked for again, and where the answer goes.
struct Wanted {
    credentials: Vec<CredentialVersion>,
    answer: oneshot::Sender<SecretsAnswer>,
}

#[derive(Clone)]
pub struct Runner {
    runs_dir: PathBuf,
    /// The event log's writer, which stores each event and then sends it.
    events: EventQueue,
    active: Arc<Mutex<HashSet<(i64, u32)>>>,
    launcher: Arc<Mutex<Option<Launcher>>>,
    /// The follower to wake when a shim has news, by attempt name.
    wakers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// The users jobs may run as here (`--allow-run-as`).
    allow_run_as: Arc<Vec<String>>,
    /// Resumed attempts waiting for their credentials, by (run, attempt); every server that
    /// welcomes the agent is asked for them (`secrets_wanted`) until one answers.
    wanted: Arc<Mutex<HashMap<(i64, u32), Wanted>>>,
}

/// The running `baton-agent launcher` and the pipe its requests go into.
struct Launcher {
    child: std::process::Child,
    requests: std::process::ChildStdin,
}

impl Runner {
    pub fn new(state_dir: &Path, events: EventQueue, allow_run_as: Vec<String>) -> Result<Runner> {
        let runs_dir = state_dir.join("runs");
        // The agent's alone: the shim opens an attempt's files here before it becomes the
        // run-as user, and the job gets them as open files only.
        crate::config::private_dir(&runs_dir).with_context(|| format!("creating {}", runs_dir.display()))?;
        Ok(Runner {
            allow_run_as: Arc::new(allow_run_as),
            runs_dir,
            events,
            active: Arc::new(Mutex::new(HashSet::new())),
            launcher: Arc::new(Mutex::new(None)),
            wakers: Arc::new(Mutex::new(HashMap::new())),
            wanted: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// What to ask a server that has just welcomed the agent: the credentials of every resumed
    /// attempt still waiting for them.
    pub fn secrets_wanted(&self) -> Vec<AgentMsg> {
        let Ok(wanted) = self.wanted.lock() else { return Vec::new() };
        wanted
            .iter()
            .map(|((run_id, attempt), w)| AgentMsg::SecretsWanted {
                run_id: RunId(*run_id),
                attempt: *attempt,
                credentials: w.credentials.clone(),
            })
            .collect()
    }

    /// The server's answer about an attempt's credentials.
    pub fn secrets_answered(&self, run_id: i64, attempt: u32, answer: SecretsAnswer) {
        let waiting = self.wanted.lock().ok().and_then(|mut w| w.remove(&(run_id, attempt)));
        if let Some(w) = waiting {
            let _ = w.answer.send(answer);
        }
    }

    /// Notes that a resumed attempt wants its credentials (attempts are resumed before the agent
    /// connects, so the first server to welcome it is asked); the answer comes through the
    /// receiver.
    fn want_secrets(
        &self,
        run_id: i64,
        attempt: u32,
        credentials: Vec<CredentialVersion>,
    ) -> oneshot::Receiver<SecretsAnswer> {
        let (answer, rx) = oneshot::channel();
        if let Ok(mut w) = self.wanted.lock() {
            w.insert((run_id, attempt), Wanted { credentials, answer });
        }
        rx
    }

    /// Starts the launcher, and a thread that reads its shims' news and wakes their followers.
    fn start_launcher(&self) -> std::io::Result<Launcher> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg("launcher")
            .arg(&self.runs_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let (Some(requests), Some(news)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the launcher has no pipes"));
        };
        let wakers = self.wakers.clone();
        let reader = std::thread::Builder::new().name("shim-news".into()).spawn(move || {
            // Ends when the launcher and every shim it started have closed the pipe.
            for line in std::io::BufReader::new(news).lines().map_while(Result::ok) {
                let name = line.split(' ').next().unwrap_or_default();
                if let Some(w) = wakers.lock().ok().and_then(|w| w.get(name).cloned()) {
                    w.notify_one();
                }
            }
        });
        if let Err(e) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Launcher { child, requests })
    }

    /// Has the launcher start the shim of the attempt `name`, starting the launcher
    /// first when there is none or it has gone.
    fn launch(&self, name: &str, secret_env: &SecretEnv) -> Result<(), String> {
        let request = if secret_env.is_empty() {
            format!("{name}\n")
        } else {
            let env = serde_json::to_string(secret_env).map_err(|e| format!("encoding the credentials: {e}"))?;
            format!("{name} {env}\n")
        };
        let mut launcher = self.launcher.lock().map_err(|_| "the launcher lock is poisoned".to_string())?;
        let mut last = String::new();
        for _ in 0..2 {
            if launcher.is_none() {
                *launcher = Some(self.start_launcher().map_err(|e| format!("starting the launcher: {e}"))?);
            }
            let Some(l) = launcher.as_mut() else { continue };
            match l.requests.write_all(request.as_bytes()) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "the launcher went away; starting another");
                    last = e.to_string();
                    if let Some(mut gone) = launcher.take() {
                        let _ = gone.child.kill();
                        let _ = gone.child.wait();
                    }
                }
            }
        }
        Err(format!("the launcher does not take requests: {last}"))
    }

    pub fn running(&self) -> u32 {
        self.active.lock().map(|a| u32::try_from(a.len()).unwrap_or(u32::MAX)).unwrap_or(0)
    }

    /// Logs an event; the log's writer hands it to the connection (if any) once it is stored.
    fn emit(&self, run_id: i64, attempt: u32, event: AgentEvent) {
        if !self.events.event((run_id, attempt, event)) {
            tracing::error!(run = run_id, "the event log writer has stopped");
        }
    }

    /// Records a fact in an attempt's journal once the events emitted before it are in the
    /// event log: the journal never says more was logged than a restarted agent would find.
    fn record_after_logged(&self, base: &Path, fact: Fact) {
        let base = base.to_path_buf();
        let record = Box::new(move || {
            if let Err(e) = journal::append(&base, &fact) {
                crate::stats::write_failed("an attempt's journal", &e);
            }
        });
        if !self.events.then(record) {
            tracing::error!("the event log writer has stopped");
        }
    }

    /// Accepts a dispatch once. A second dispatch of the same attempt (a restarted server sends
    /// again what it may not have sent) changes nothing: what became of the first is in the event
    /// log and reaches the server with the other events.
    pub fn accept(&self, d: Dispatch) {
        let (run_id, attempt) = (d.run_id.0, d.attempt);
        // Whatever the server says, jobs run only as the users this host allows.
        if !self.allow_run_as.contains(&d.run_as_user) {
            let allowed = if self.allow_run_as.is_empty() { "none".to_string() } else { self.allow_run_as.join(", ") };
            let reason =
                format!("run-as user {} is not allowed on this agent (--allow-run-as: {allowed})", d.run_as_user);
            tracing::warn!(run = run_id, attempt, %reason, "dispatch refused");
            self.emit(run_id, attempt, AgentEvent::Refused { reason });
            return;
        }
        let base = self.runs_dir.join(journal::name(run_id, attempt));
        // The journal is the agent's alone; the variables holding credentials stay out of it and
        // go to the shim through the launcher's pipe.
        let secrets = d.secrets;
        let (secret_env, env): (SecretEnv, _) =
            d.env.into_iter().partition(|(_, v)| secrets.iter().any(|s| !s.is_empty() && v.contains(s.as_str())));
        let job = Job {
            command: d.command,
            run_as_user: d.run_as_user,
            env,
            stdout_path: d.stdout_path.map(PathBuf::from).unwrap_or_else(|| journal::file(&base, "out")),
            stderr_path: d.stderr_path.map(PathBuf::from).unwrap_or_else(|| journal::file(&base, "err")),
            max_run_time_seconds: d.max_run_time_seconds,
            kill_grace_seconds: d.kill_grace_seconds,
            masked: !secrets.is_empty(),
            credentials: d.credentials,
        };
        match journal::create(&base, &job) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::info!(run = run_id, attempt, "dispatched again; already accepted here");
                return;
            }
            Err(e) => {
                self.emit(run_id, attempt, AgentEvent::Refused { reason: format!("cannot write the job: {e}") });
                return;
            }
        }
        self.emit(run_id, attempt, AgentEvent::Accepted);
        // The shim's news (its job's pid, then its exit) wakes the follower at once instead of
        // at its next look at the files.
        let name = journal::name(run_id, attempt);
        let wake = Arc::new(Notify::new());
        if let Ok(mut w) = self.wakers.lock() {
            w.insert(name.clone(), wake.clone());
        }
        if let Err(why) = self.launch(&name, &secret_env) {
            if let Err(e) = crate::shim::write_spawn_error(&base, why) {
                crate::stats::write_failed("an attempt's journal", &e);
            }
        }
        self.follow(run_id, attempt, base, Some(wake), Some(secrets));
    }

    /// The attempts whose files are here (told to each server in the hello).
    pub fn attempts(&self) -> Vec<AttemptRef> {
        journal::list(&self.runs_dir)
            .map(|(_, run_id, attempt, _)| AttemptRef { run_id: RunId(run_id), attempt })
            .collect()
    }

    /// Follows the attempts that were running when the agent stopped.
    pub fn resume(&self) {
        for (base, run_id, attempt, _) in journal::list(&self.runs_dir) {
            if journal::ends_reported(&base) {
                continue;
            }
            tracing::info!(run = run_id, attempt, "following a run started before this agent restarted");
            self.follow(run_id, attempt, base, None, None);
        }
    }

    /// Removes the files of attempts reported more than `keep` ago (the journal last, so an
    /// interrupted sweep is taken up by the next one); a task's own output paths are never
    /// touched. Returns how many attempts went.
    pub fn sweep(runs_dir: &Path, keep: Duration) -> usize {
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for (base, _, _, e) in journal::list(runs_dir) {
            let age = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| now.duration_since(t).ok());
            // The journal's last write is the `reported` line.
            if age.is_none_or(|a| a < keep) || !journal::ends_reported(&base) {
                continue;
            }
            for kind in ["out", "err", "terminate", "journal"] {
                let _ = std::fs::remove_file(journal::file(&base, kind));
            }
            removed += 1;
        }
        removed
    }

    /// Sweeps finished attempts' files now and then, for as long as the agent runs.
    pub fn sweep_forever(&self, keep: Duration) {
        let runs_dir = self.runs_dir.clone();
        let every = (keep / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        tokio::spawn(async move {
            // Not at start: `resume` has just read every journal.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let dir = runs_dir.clone();
                match tokio::task::spawn_blocking(move || Runner::sweep(&dir, keep)).await {
                    Ok(0) | Err(_) => {}
                    Ok(n) => tracing::info!(attempts = n, "removed the files of finished attempts"),
                }
            }
        });
    }

    /// Stops an attempt's whole process tree; its end is reported as terminated.
    pub fn terminate(&self, run_id: i64, attempt: u32, grace_seconds: u32, by: String) {
        let base = self.runs_dir.join(journal::name(run_id, attempt));
        if let Err(e) = std::fs::write(journal::file(&base, "terminate"), &by) {
            crate::stats::write_failed("a terminate request", &e);
        }
        let mut j = Journal::new(&base);
        j.refresh();
        if let Some(pid) = j.pid.and_then(|p| i32::try_from(p).ok()) {
            std::thread::spawn(move || kill_group(pid, Duration::from_secs(u64::from(grace_seconds))));
        }
    }

    /// `secrets`: the credential values to mask, when this agent accepted the attempt; a
    /// restarted agent has none (they are never on disk), so for an attempt that had credentials
    /// it asks the server for them again and sends no output until they come; if they cannot be
    /// given (rotated since), the rest of the output is withheld, with a notice in its place.
    fn follow(
        &self,
        run_id: i64,
        attempt: u32,
        base: PathBuf,
        wake: Option<Arc<Notify>>,
        secrets: Option<Vec<String>>,
    ) {
        if let Ok(mut a) = self.active.lock() {
            a.insert((run_id, attempt));
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut journal = Journal::new(&base);
            journal.refresh();
            let job: Option<Job> = journal.job.clone();
            let mut progress = journal.progress.clone();
            let (mut out_file, mut err_file) = (None, None);
            let lost = secrets.is_none() && job.as_ref().is_some_and(|j| j.masked);
            let ask = job.as_ref().map(|j| j.credentials.clone()).filter(|c| lost && !c.is_empty());
            let pending = ask.map(|c| me.want_secrets(run_id, attempt, c));
            let withhold = lost && pending.is_none();
            let mut mask = Mask { secrets: secrets.unwrap_or_default(), withhold, pending, noticed: [false; 2] };
            let (out_path, err_path) = match &job {
                Some(j) => (j.stdout_path.clone(), j.stderr_path.clone()),
                None => (journal::file(&base, "out"), journal::file(&base, "err")),
            };
            // With the shim's wake-ups (pid, exit), the files are only looked at for output, every
            // `OUTPUT_POLL`. Without them (an attempt resumed after a restart), look often while
            // things happen, less often while they do not.
            let mut wait = if wake.is_some() { OUTPUT_POLL } else { Duration::from_millis(1) };
            loop {
                match &wake {
                    Some(w) => {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = w.notified() => {}
                        }
                    }
                    None => tokio::time::sleep(wait).await,
                }
                let mut changed = false;
                journal.refresh();
                if !progress.spawned {
                    if let Some(pid) = journal.pid {
                        me.emit(run_id, attempt, AgentEvent::Spawned { pid });
                        progress.spawned = true;
                        changed = true;
                    }
                }
                if !mask.settled() {
                    // No output, and so no end, before the credentials to mask it are back.
                    if changed {
                        me.record_after_logged(&base, Fact::Progress(progress.clone()));
                    }
                    if wake.is_none() {
                        wait = (wait * 2).min(Duration::from_millis(25));
                    }
                    continue;
                }
                let exit: Option<ExitRecord> = journal.exit.clone();
                // After the exit, drain everything; before it, a chunk per stream per tick. While
                // the event log is far behind (its disk is full), the output waits in its files,
                // and the end with it.
                let mut drained = false;
                while !me.events.behind() {
                    let ended = exit.is_some();
                    let (o, e) = (&mut progress.stdout, &mut progress.stderr);
                    let (out_access, err_access) = access(&journal, &base, &out_path, &err_path);
                    let out = (out_path.as_path(), out_access, &mut out_file);
                    let err = (err_path.as_path(), err_access, &mut err_file);
                    let a = me.pump((run_id, attempt), Stream::Stdout, out, o, &mut mask, ended);
                    let b = me.pump((run_id, attempt), Stream::Stderr, err, e, &mut mask, ended);
                    changed |= a || b;
                    drained = !(a || b);
                    if exit.is_none() || drained {
                        break;
                    }
                }
                // Not needed once the end is logged: `Reported` says all.
                if changed && exit.is_none() {
                    me.record_after_logged(&base, Fact::Progress(progress.clone()));
                }
                if wake.is_none() {
                    // Until the process is known, look every millisecond: that is the
                    // dispatch-to-start latency.
                    wait = if changed || !progress.spawned {
                        Duration::from_millis(1)
                    } else {
                        (wait * 2).min(Duration::from_millis(25))
                    };
                }
                if let Some(exit) = exit.filter(|_| drained) {
                    let outcome = if let Some(e) = exit.spawn_error {
                        Outcome::SpawnFailed { message: e }
                    } else if let Ok(by) = std::fs::read_to_string(journal::file(&base, "terminate")) {
                        Outcome::Terminated { user: by }
                    } else if exit.timed_out {
                        Outcome::TimedOut { after_seconds: job.as_ref().map_or(0, |j| j.max_run_time_seconds) }
                    } else if let Some(sig) = exit.signal {
                        Outcome::Signalled { signal: sig }
                    } else {
                        Outcome::Exited { code: exit.code.unwrap_or(-1) }
                    };
                    me.emit(run_id, attempt, AgentEvent::Ended { outcome });
                    me.record_after_logged(&base, Fact::Reported);
                    if let Ok(mut a) = me.active.lock() {
                        a.remove(&(run_id, attempt));
                    }
                    if let Ok(mut w) = me.wakers.lock() {
                        w.remove(&journal::name(run_id, attempt));
                    }
                    return;
                }
            }
        });
    }

    /// Logs the next chunk of a stream from `offset`, secrets masked; returns whether there was
    /// one. Chunks end on whole UTF-8 characters; invalid bytes are replaced.
    fn pump(
        &self,
        (run_id, attempt): (i64, u32),
        stream: Stream,
        (path, access, file): (&Path, Access, &mut Option<std::fs::File>),
        offset: &mut u64,
        mask: &mut Mask,
        exited: bool,
    ) -> bool {
        use std::os::unix::fs::FileExt;
        // Opened once the shim recorded which file it opened, then kept open; read at the offset
        // logged so far. Only that file: the job may have put a link, or another file, at its
        // output path since, to something only the agent may read.
        if file.is_none() {
            *file = match access {
                Access::NotYet => None,
                Access::Unreadable => {
                    if *offset == 0 {
                        let data = format!("[baton: not sent: the run-as user may not read {}]\n", path.display());
                        self.emit(run_id, attempt, AgentEvent::Output { stream, offset: 0, data: data.clone() });
                        *offset = data.len() as u64;
                    }
                    return false;
                }
                Access::File(id) => crate::paths::open_identified(path, id),
                Access::Unchecked => crate::paths::open_no_links(path),
            };
        }
        let Some(f) = file.as_ref() else { return false };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len <= *offset {
            return false;
        }
        if mask.withhold {
            // Skipped unread; the first time, a notice says so where the output stops.
            let first = !std::mem::replace(&mut mask.noticed[usize::from(stream == Stream::Stderr)], true);
            if first {
                self.emit(run_id, attempt, AgentEvent::Output { stream, offset: *offset, data: WITHHELD.into() });
            }
            *offset = len;
            return true;
        }
        let mut buf = vec![0u8; usize::try_from(len - *offset).unwrap_or(CHUNK).min(CHUNK)];
        let n = match f.read_at(&mut buf, *offset) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.truncate(n);
        let take = match std::str::from_utf8(&buf) {
            Ok(_) => n,
            // Keep an incomplete character for the next read, unless the chunk is nothing else.
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
            Err(_) => n,
        };
        // The file is complete once the process exited and this read reached its end.
        let (masked, take) = crate::mask::mask(&buf[..take], &mask.secrets, exited && *offset + n as u64 >= len);
        if take == 0 {
            return false;
        }
        let data = String::from_utf8_lossy(&masked).into_owned();
        self.emit(run_id, attempt, AgentEvent::Output { stream, offset: *offset, data });
        *offset += take as u64;
        true
    }
}

/// Which file of a stream the agent may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The shim has not said which file it opened yet.
    NotYet,
    /// The run-as user may not read it: its content is not sent.
    Unreadable,
    /// This one, and only if the file at its path still is this one.
    File(journal::FileId),
    /// An attempt whose shim predates `Fact::Opened` (started before the agent was upgraded):
    /// its files in the state directory, through no link.
    Unchecked,
}

/// What the agent may read of each stream of an attempt, from its journal.
fn access(journal: &Journal, base: &Path, out: &Path, err: &Path) -> (Access, Access) {
    let of = |id: Option<journal::FileId>| id.map_or(Access::Unreadable, Access::File);
    match journal.opened {
        Some(o) => (of(o.stdout), of(o.stderr)),
        None if journal.pid.is_some() || journal.exit.as_ref().is_some_and(|e| e.spawn_error.is_none()) => {
            let own =
                |p: &Path, kind| if p == journal::file(base, kind) { Access::Unchecked } else { Access::Unreadable };
            (own(out, "out"), own(err, "err"))
        }
        None => (Access::NotYet, Access::NotYet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_only_attempts_reported_long_enough_ago() {
        let dir = tempfile::tempdir().unwrap();
        let job = Job::for_tests();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let make = |name: &str, reported: bool, at: Option<std::time::SystemTime>| {
            let base = dir.path().join(name);
            journal::create(&base, &job).unwrap();
            std::fs::write(journal::file(&base, "out"), "x").unwrap();
            if reported {
                journal::append(&base, &Fact::Reported).unwrap();
            }
            if let Some(at) = at {
                let f = std::fs::OpenOptions::new().append(true).open(journal::file(&base, "journal")).unwrap();
                f.set_modified(at).unwrap();
            }
            base
        };
        let old = make("1-1", true, Some(hour_ago));
        let recent = make("2-1", true, None);
        let running = make("3-1", false, Some(hour_ago));
        std::fs::write(dir.path().join("notes.txt"), "not an attempt's").unwrap();

        assert_eq!(Runner::sweep(dir.path(), Duration::from_secs(600)), 1);
        assert!(!journal::file(&old, "journal").exists() && !journal::file(&old, "out").exists());
        for kept in [&recent, &running] {
            assert!(journal::file(kept, "journal").exists() && journal::file(kept, "out").exists());
        }
        assert!(dir.path().join("notes.txt").exists());
        assert_eq!(Runner::sweep(dir.path(), Duration::from_secs(600)), 0, "nothing left to sweep");
    }
}
