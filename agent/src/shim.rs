//! The shim: the small process, forked by the launcher, that supervises one attempt. It outlives
//! the agent (it runs in its own process group), becomes the run-as user, starts `sh -c COMMAND`
//! in a new process group with stdout and stderr in files, enforces the maximum run time by
//! killing the whole group (SIGTERM, a grace period, SIGKILL), and records the job's pid and how
//! it ended in the attempt's journal, so an agent that restarts still learns the result. On its
//! stdout it tells the agent `NAME pid PID` when the job started and `NAME exit` when the result
//! is recorded (an agent that went away no longer listens; the journal is what counts). The
//! job's credential variables come from the launcher in memory, never from a file.

use crate::journal::{self, ExitRecord, Fact, Journal, SecretEnv};
use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, Uid, User};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn write_exit(base: &Path, rec: &ExitRecord) -> Result<()> {
    let mut journal = journal::open_for_append(base).context("opening the journal")?;
    journal::append_waiting(&mut journal, &Fact::Exit(rec.clone())).context("recording the exit")
}

/// Records that the attempt's job could not be started, and why.
pub fn write_spawn_error(base: &Path, why: String) -> Result<()> {
    write_exit(base, &ExitRecord { spawn_error: Some(why), ..Default::default() })
}

/// Kills a process group: SIGTERM, up to `grace` for it to go, then SIGKILL.
pub fn kill_group(pgid: i32, grace: Duration) {
    let pg = Pid::from_raw(pgid);
    if killpg(pg, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        // Signal 0 probes whether any member is left.
        if killpg(pg, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
}

/// Becomes `user` (supplementary groups, group, user, HOME) when running as root; otherwise
/// the job must be for the user the agent already is. Nothing is given to the user: what the
/// shim opened before stays open, and the rest is opened as the user.
fn become_user(name: &str) -> Result<Option<PathBuf>, String> {
    let user = User::from_name(name)
        .map_err(|e| format!("looking up user {name}: {e}"))?
        .ok_or_else(|| format!("no user named {name} on this host"))?;
    let me = Uid::current();
    if user.uid == me {
        return Ok(Some(user.dir));
    }
    if !me.is_root() {
        let current = User::from_uid(me).ok().flatten().map(|u| u.name).unwrap_or_else(|| me.to_string());
        return Err(format!("the agent runs as {current} and cannot become {name}"));
    }
    let cname = std::ffi::CString::new(name).map_err(|_| "bad user name".to_string())?;
    nix::unistd::initgroups(&cname, user.gid).map_err(|e| format!("setting {name}'s groups: {e}"))?;
    nix::unistd::setgid(user.gid).map_err(|e| format!("becoming group {}: {e}", user.gid))?;
    nix::unistd::setuid(user.uid).map_err(|e| format!("becoming {name}: {e}"))?;
    Ok(Some(user.dir))
}

/// Writes one line of news on stdout for the agent; nobody listening is not an error.
fn announce(name: &str, news: &str) {
    use std::io::Write;
    // One write per line: lines of several shims on one pipe do not interleave.
    let line = format!("{name} {news}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Records that the attempt could not start, and says so.
pub fn fail(base: &Path, name: &str, why: String) {
    let _ = write_spawn_error(base, why);
    announce(name, "exit");
}

/// Supervises the attempt `base` (`name` in the news) to its end, with the job's credential
/// variables `secret_env`; the shim's exit code.
pub fn main(base: &Path, name: &str, secret_env: &SecretEnv) -> i32 {
    let res = run(base, name, secret_env);
    announce(name, "exit");
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("baton-agent shim: error: {e:#}");
            1
        }
    }
}

fn run(base: &Path, name: &str, secret_env: &SecretEnv) -> Result<()> {
    let mut journal = Journal::new(base);
    journal.refresh();
    let job = journal.job.context("the journal has no job")?;
    // Opened while the shim is still the agent's user: the run-as user may neither open the
    // journal nor the attempt's own output files, and the job inherits none of these handles
    // (they close on exec), so what the journal says about the job comes from the shim alone.
    let mut record = journal::open_for_append(base).context("opening the journal")?;
    let defaults = [journal::file(base, "out"), journal::file(base, "err")];
    let own = |p: &Path| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW).open(p)
    };
    let mut opened = Vec::new();
    for p in [&job.stdout_path, &job.stderr_path] {
        opened.push(if defaults.iter().any(|d| d == p) { Some(own(p)) } else { None });
    }
    let home = match become_user(&job.run_as_user) {
        Ok(h) => h,
        Err(why) => return write_exit_to(&mut record, ExitRecord { spawn_error: Some(why), ..Default::default() }),
    };
    // A task's own output paths are opened as the run-as user: a link there leads only where
    // that user may write. Opened to read as well where the user may, which tells the agent
    // (by the file's identity in the journal) that it may send that file's content.
    let as_user = |p: &Path| {
        let open = |read| std::fs::OpenOptions::new().create(true).append(true).read(read).open(p);
        open(true).map(|f| (f, true)).or_else(|_| open(false).map(|f| (f, false)))
    };
    let mut files = Vec::new();
    let mut ids = Vec::new();
    for (p, o) in [&job.stdout_path, &job.stderr_path].into_iter().zip(opened) {
        match o.map(|r| r.map(|f| (f, true))).unwrap_or_else(|| as_user(p)) {
            Ok((f, readable)) => {
                ids.push(f.metadata().ok().filter(|_| readable).map(|m| journal::FileId::of(&m)));
                files.push(f);
            }
            Err(e) => {
                let why = format!("opening the output file {}: {e}", p.display());
                return write_exit_to(&mut record, ExitRecord { spawn_error: Some(why), ..Default::default() });
            }
        }
    }
    let opened = journal::Opened { stdout: ids.first().copied().flatten(), stderr: ids.get(1).copied().flatten() };
    journal::append_waiting(&mut record, &Fact::Opened(opened)).context("recording the output files")?;
    let (Some(err), Some(out)) = (files.pop(), files.pop()) else {
        return write_exit_to(
            &mut record,
            ExitRecord { spawn_error: Some("no output files".into()), ..Default::default() },
        );
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&job.command)
        .envs(&job.env)
        .envs(secret_env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if let Some(h) = home {
        cmd.env("HOME", &h).env("USER", &job.run_as_user).env("LOGNAME", &job.run_as_user);
        if h.is_dir() {
            cmd.current_dir(h);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return write_exit_to(
                &mut record,
                ExitRecord { spawn_error: Some(format!("starting sh: {e}")), ..Default::default() },
            )
        }
    };
    let pid = child.id();
    journal::append_waiting(&mut record, &Fact::Pid(pid)).context("recording the pid")?;
    // Wake the agent at once (it reads the pid from the journal, as a restarted agent would).
    announce(name, &format!("pid {pid}"));
    // A watchdog enforces the maximum run time while this thread waits for the exit.
    let done = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    {
        let (done, timed_out) = (done.clone(), timed_out.clone());
        let limit = Duration::from_secs(u64::from(job.max_run_time_seconds.max(1)));
        let grace = Duration::from_secs(u64::from(job.kill_grace_seconds));
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if !done.load(Ordering::SeqCst) {
                timed_out.store(true, Ordering::SeqCst);
                kill_group(i32::try_from(pid).unwrap_or(0), grace);
            }
        });
    }
    let status = child.wait()?;
    done.store(true, Ordering::SeqCst);
    let timed_out = timed_out.load(Ordering::SeqCst);
    if timed_out {
        // Whatever of the group survived the grace period goes too.
        let _ = killpg(Pid::from_raw(i32::try_from(pid).unwrap_or(0)), Signal::SIGKILL);
    }
    write_exit_to(
        &mut record,
        ExitRecord { code: status.code(), signal: status.signal(), timed_out, spawn_error: None },
    )
}

/// Records how the attempt ended through the journal the shim holds open.
fn write_exit_to(journal: &mut std::fs::File, rec: ExitRecord) -> Result<()> {
    journal::append_waiting(journal, &Fact::Exit(rec)).context("recording the exit")
}
