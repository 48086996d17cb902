//! An attempt's journal: one file of JSON lines that the agent and the shim append to (the
//! job, the job's pid, its exit, how far its events were logged, that its end was reported). It
//! is all a restarted agent needs to pick an attempt up again, and one file instead of one per
//! fact, since creating files is what an attempt's bookkeeping spends most on. An attempt's files
//! lie side by side in the runs directory, named after it (`RUN-ATTEMPT.journal`, `.out`, `.err`),
//! with no directory of their own: one file fewer to create. The journal owns its record types
//! (`Job`, `ExitRecord`), which the shim and the runner write and read.

use baton_schema::agent::v1::CredentialVersion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An attempt's name, which its files are named after: `RUN-ATTEMPT`.
pub fn name(run_id: i64, attempt: u32) -> String {
    format!("{run_id}-{attempt}")
}

/// The run and attempt an attempt's name stands for; None for anything else (digits and one
/// dash only, so a name can never lead out of the runs directory).
pub fn parse_name(name: &str) -> Option<(i64, u32)> {
    let (r, a) = name.split_once('-')?;
    if r.is_empty() || a.is_empty() || !r.bytes().chain(a.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((r.parse().ok()?, a.parse().ok()?))
}

/// The attempts that have a journal in `runs_dir`: base (`RUNS_DIR/RUN-ATTEMPT`), run, attempt,
/// and the journal's directory entry.
pub fn list(runs_dir: &Path) -> impl Iterator<Item = (PathBuf, i64, u32, std::fs::DirEntry)> + '_ {
    std::fs::read_dir(runs_dir).into_iter().flatten().flatten().filter_map(move |e| {
        let file_name = e.file_name();
        let (run_id, attempt) = parse_name(file_name.to_str()?.strip_suffix(".journal")?)?;
        Some((runs_dir.join(name(run_id, attempt)), run_id, attempt, e))
    })
}

/// An attempt's file of the given kind: `BASE.KIND`, beside the others (`base` is
/// `RUNS_DIR/RUN-ATTEMPT`).
pub fn file(base: &Path, kind: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(kind);
    PathBuf::from(name)
}

/// What the agent asks the shim to run (the journal's first line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub command: String,
    pub run_as_user: String,
    pub env: BTreeMap<String, String>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub max_run_time_seconds: u32,
    pub kill_grace_seconds: u32,
    /// The job had credentials: their values, and the variables holding them, are not in the
    /// journal (they reach the shim through the launcher's pipe and the agent keeps them in
    /// memory to mask the output), so an agent restarted mid-attempt asks the server for them
    /// again by `credentials` before it sends more output.
    #[serde(default)]
    pub masked: bool,
    /// The keys and versions of those credentials (never their values).
    #[serde(default)]
    pub credentials: Vec<CredentialVersion>,
}

/// The variables of a job that hold credentials: given to the shim in memory, never on disk.
pub type SecretEnv = BTreeMap<String, String>;

#[cfg(test)]
impl Job {
    /// `true` as root, writing to a task's own output paths (which nothing creates).
    pub fn for_tests() -> Job {
        Job {
            command: "true".into(),
            run_as_user: "root".into(),
            env: Default::default(),
            stdout_path: "/nonexistent/own.log".into(),
            stderr_path: "/nonexistent/own.err".into(),
            max_run_time_seconds: 5,
            kill_grace_seconds: 1,
            masked: false,
            credentials: Vec::new(),
        }
    }
}

/// How the attempt ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub spawn_error: Option<String>,
}

/// How far the events of one attempt have been logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub spawned: bool,
    pub stdout: u64,
    pub stderr: u64,
}

/// Which file the shim opened for a stream, as the run-as user for a task's own path: the agent
/// reads that file and no other (a path the job controls may lead elsewhere by the time the
/// agent looks), and only when the run-as user could read it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// The files of an attempt's two streams as the shim opened them: None for a file the run-as
/// user may write but not read (its output is not sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    pub stdout: Option<FileId>,
    pub stderr: Option<FileId>,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// The output files the job writes to (the shim, before it starts the job).
    Opened(Opened),
    /// What to run (the agent, when it accepts the attempt; always the first line).
    Job(Job),
    /// The job's process id (the shim, once the job started).
    Pid(u32),
    /// How the attempt ended (the shim).
    Exit(ExitRecord),
    /// How far the attempt's events were logged (the agent).
    Progress(Progress),
    /// The attempt's end was logged (the agent): nothing is left to follow.
    Reported,
}

/// A fact as a journal line.
fn line(fact: &Fact) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(fact).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// Appends one fact in one write (appends of several writers do not interleave).
pub fn append(base: &Path, fact: &Fact) -> std::io::Result<()> {
    append_to(&mut open_for_append(base)?, fact)
}

/// The journal, open for appending (the shim opens it before it becomes the run-as user, who
/// may not open it).
pub fn open_for_append(base: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().append(true).open(file(base, "journal"))
}

/// Appends one fact through an open journal, in one write.
pub fn append_to(journal: &mut File, fact: &Fact) -> std::io::Result<()> {
    journal.write_all(&line(fact)?)
}

/// As `append_to`, waiting out a full disk (no space, or over quota): the shim's facts are the
/// attempt's result, written once there is room again rather than lost. A line cut short by the
/// failed write is ended first, so it is skipped alone when read.
pub fn append_waiting(journal: &mut File, fact: &Fact) -> std::io::Result<()> {
    let mut pause = std::time::Duration::from_millis(100);
    let mut torn = false;
    loop {
        let res = if torn {
            journal.write_all(b"\n").and_then(|()| append_to(journal, fact))
        } else {
            append_to(journal, fact)
        };
        match res {
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOSPC | nix::libc::EDQUOT)) => {
                torn = true;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Starts the journal of a new attempt with its job, for the agent only (what it says the agent
/// trusts); fails if there is one already (an attempt is accepted once). The job holds no
/// credential values: those reach the shim through the launcher's pipe only.
pub fn create(base: &Path, job: &Job) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file(base, "journal"))?;
    f.write_all(&line(&Fact::Job(job.clone()))?)
}

/// Whether the attempt `base` was reported to its end (`Reported` is the journal's last line:
/// nothing is appended after it), read from the file's end only.
pub fn ends_reported(base: &Path) -> bool {
    const TAIL: &[u8] = b"\"reported\"\n";
    let Ok(mut f) = File::open(file(base, "journal")) else { return false };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return false };
    if len < TAIL.len() as u64 || f.seek(SeekFrom::Start(len - TAIL.len() as u64)).is_err() {
        return false;
    }
    let mut end = [0u8; TAIL.len()];
    f.read_exact(&mut end).is_ok() && end == TAIL
}

/// What the journal says so far, read incrementally: each `refresh` reads only what was
/// appended since the last one, from a handle kept open.
#[derive(Debug, Default)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// Bytes read and understood (up to the end of the last whole line).
    offset: u64,
    pub job: Option<Job>,
    pub pid: Option<u32>,
    pub exit: Option<ExitRecord>,
    pub progress: Progress,
    pub reported: bool,
    pub opened: Option<Opened>,
}

impl Journal {
    pub fn new(base: &Path) -> Journal {
        Journal { path: file(base, "journal"), ..Default::default() }
    }

    /// Reads what was appended. A last line without its newline is being written (or was torn
    /// by a crash) and is left for later.
    pub fn refresh(&mut self) {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(mut f) = self.file.as_ref() else { return };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if f.read_to_end(&mut bytes).is_err() {
            return;
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else { return };
        for line in bytes[..end].split(|b| *b == b'\n') {
            match serde_json::from_slice::<Fact>(line) {
                Ok(Fact::Job(j)) => self.job = Some(j),
                Ok(Fact::Pid(p)) => self.pid = Some(p),
                Ok(Fact::Exit(e)) => self.exit = Some(e),
                Ok(Fact::Progress(p)) => self.progress = p,
                Ok(Fact::Reported) => self.reported = true,
                Ok(Fact::Opened(o)) => self.opened = Some(o),
                // A line torn by a crash mid-write; what follows it is whole.
                Err(_) => {}
            }
        }
        self.offset += end as u64 + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes appended as they are, as a writer caught mid-line leaves them.
    fn raw(base: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new().append(true).open(file(base, "journal")).unwrap().write_all(bytes).unwrap();
    }

    #[test]
    fn facts_are_read_as_they_are_appended_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("7-1");
        create(&base, &Job::for_tests()).unwrap();
        assert!(create(&base, &Job::for_tests()).is_err(), "an attempt's journal is started once");
        let mut j = Journal::new(&base);
        j.refresh();
        assert_eq!(j.job.as_ref().map(|j| j.command.as_str()), Some("true"));
        assert_eq!((j.pid, j.exit.is_some(), j.reported), (None, false, false));

        append(&base, &Fact::Pid(42)).unwrap();
        // Half a line, as while it is being written: not read yet.
        raw(&base, b"{\"exit\":");
        j.refresh();
        assert_eq!((j.pid, j.exit.is_some()), (Some(42), false));
        raw(&base, b"{\"code\":3,\"signal\":null,\"timed_out\":false,\"spawn_error\":null}}\n");
        append(&base, &Fact::Progress(Progress { spawned: true, stdout: 7, stderr: 0 })).unwrap();
        assert!(!ends_reported(&base));
        append(&base, &Fact::Reported).unwrap();
        assert!(ends_reported(&base));
        j.refresh();
        assert_eq!(j.exit.as_ref().and_then(|e| e.code), Some(3));
        assert_eq!(j.progress, Progress { spawned: true, stdout: 7, stderr: 0 });
        assert!(j.reported);

        // A reader from the start (a restarted agent) sees the same.
        let mut again = Journal::new(&base);
        again.refresh();
        assert_eq!((again.pid, again.progress.stdout, again.reported), (Some(42), 7, true));
    }
}
