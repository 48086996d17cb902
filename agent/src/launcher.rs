//! `baton-agent launcher RUNS_DIR`: starts shims by forking itself, so that an attempt costs one
//! `fork` of a small single-threaded process rather than an `exec` of the whole agent binary.
//! The agent writes an attempt's name (`RUN-ATTEMPT`) per line on the launcher's stdin, followed
//! by the job's credential variables when it has any (so they are never written to a file); the
//! forked child becomes that attempt's shim. The shims inherit the launcher's stdout, a pipe the agent reads,
//! and tell it there when their job started and when it ended. The launcher ends when the agent
//! closes its stdin (the agent went away); the shims it started go on.
//!
//! `fork` and signal dispositions need `unsafe`: this module is the agent's only place for it,
//! and it is sound because the launcher never starts a thread.
#![allow(unsafe_code)]

use nix::sys::signal::{signal, SigHandler, Signal};
use nix::unistd::{fork, ForkResult};
use std::io::BufRead;
use std::path::Path;

/// Serves requests until stdin closes.
pub fn serve(runs_dir: &Path) -> std::process::ExitCode {
    // Shims are reaped by the kernel as they end: the launcher never waits for them.
    // SAFETY: no other thread exists in this process; the handler is the default one.
    if unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) }.is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return std::process::ExitCode::SUCCESS,
            Ok(_) => {}
        }
        // `NAME`, or `NAME SECRET_ENV` with the job's credential variables as one JSON object.
        let request = line.trim_end_matches('\n');
        let (name, secrets) = request.split_once(' ').unwrap_or((request, ""));
        // An attempt's name is the only thing a launcher starts.
        if crate::journal::parse_name(name).is_none() {
            continue;
        }
        let secret_env: crate::journal::SecretEnv = if secrets.is_empty() {
            Default::default()
        } else {
            match serde_json::from_str(secrets) {
                Ok(env) => env,
                Err(e) => {
                    crate::shim::fail(&runs_dir.join(name), name, format!("reading the job's credentials: {e}"));
                    continue;
                }
            }
        };
        let base = runs_dir.join(name);
        // SAFETY: this process has a single thread, so the child may run any code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => std::process::exit(become_shim(&base, name, &secret_env)),
            Ok(ForkResult::Parent { .. }) => {}
            Err(e) => crate::shim::fail(&base, name, format!("starting the shim: {e}")),
        }
    }
}

/// In the forked child: leaves the launcher's process group and signal settings behind, then
/// supervises the attempt.
fn become_shim(base: &Path, name: &str, secret_env: &crate::journal::SecretEnv) -> i32 {
    // Its own process group: the shim outlives the agent and the launcher, and their signals.
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    // SAFETY: restoring the default disposition; the shim must be able to wait for its job.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
    // The launcher's stdin carries other attempts' requests; the shim has nothing to read.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null);
    }
    crate::shim::main(base, name, secret_env)
}

#[cfg(test)]
mod tests {
    use crate::journal::parse_name;

    #[test]
    fn only_attempt_names_are_started() {
        assert!(parse_name("12-1").is_some());
        for bad in ["", "12", "-1", "12-", "../12-1", "12-1/..", "a-1", "12-1 "] {
            assert!(parse_name(bad).is_none(), "{bad:?}");
        }
    }
}
