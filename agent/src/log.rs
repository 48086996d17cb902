//! The durable event log: every run event is appended (with its sequence number) before it is
//! sent, and kept until the server acknowledges it, so a dropped connection, an agent restart or a
//! server restart loses nothing; the server ignores sequences it has already stored. A writer
//! thread appends what is queued in one write and one sync (a burst of runs shares them), off the
//! thread that talks to the server.

use anyhow::{Context, Result};
use baton_schema::agent::v1::{AgentEvent, AgentMsg};
use baton_schema::ids::RunId;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// At most this many events share a write and a sync.
const MAX_BATCH: usize = 512;

/// An event to log: run id, attempt, event.
pub type Entry = (i64, u32, AgentEvent);

/// What the writer is given, in order.
enum Work {
    /// An event to log and then send.
    Event(Entry),
    /// Something to do once every event given before it is written (and synced, if any was a
    /// lifecycle event): recording in an attempt's journal how far its events were logged.
    Then(Box<dyn FnOnce() + Send>),
}

pub struct EventLog {
    path: PathBuf,
    acked_path: PathBuf,
    file: Arc<File>,
    next_seq: u64,
    acked: u64,
    /// Written and synced, not acknowledged: what a new connection replays.
    pending: VecDeque<(u64, AgentMsg)>,
    /// The last sequence written and synced; beyond it, a write is still on its way to disk.
    published: u64,
    /// The last write failed, perhaps part way: the next one ends that line first.
    torn: bool,
}

impl EventLog {
    /// The name of this agent's state (`Hello::incarnation`): read from `DIR/incarnation`, or
    /// made (random) when the state directory has none, as on a fresh install.
    pub fn incarnation(dir: &Path) -> Result<String> {
        let path = dir.join("incarnation");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let id = text.trim();
            if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(id.to_string());
            }
        }
        let mut bytes = [0u8; 16];
        std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut bytes)
            .context("reading randomness for the agent's incarnation")?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join("incarnation.new");
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut f, id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(id)
    }

    /// Opens the log in `dir`, recovering what was not acknowledged.
    pub fn open(dir: &Path) -> Result<EventLog> {
        let path = dir.join("events.log");
        let acked_path = dir.join("acked");
        let acked: u64 = std::fs::read_to_string(&acked_path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let mut pending = VecDeque::new();
        let mut last = acked;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                // A torn last line (a crash mid-write) is skipped: its event was never sent.
                if let Ok(msg) = serde_json::from_str::<AgentMsg>(&line) {
                    if let AgentMsg::Event { seq, .. } = &msg {
                        last = last.max(*seq);
                        if *seq > acked {
                            pending.push_back((*seq, msg));
                        }
                    }
                }
            }
        }
        // The agent's alone: it holds every run's output.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
        Ok(EventLog {
            path,
            acked_path,
            file: Arc::new(file),
            next_seq: last + 1,
            acked,
            pending,
            published: last,
            torn: false,
        })
    }

    /// Appends events, numbered in order, in one write; returns their frames and the file to
    /// sync. They are not replayed (nor sent) until `publish`.
    fn write(&mut self, entries: Vec<Entry>) -> Result<(Vec<AgentMsg>, Arc<File>)> {
        // A line cut short by a failed write is ended, so it is skipped alone when read back.
        let mut text = if self.torn { "\n".to_string() } else { String::new() };
        let mut msgs = Vec::with_capacity(entries.len());
        for (i, (run_id, attempt, event)) in entries.into_iter().enumerate() {
            let msg = AgentMsg::Event { seq: self.next_seq + i as u64, run_id: RunId(run_id), attempt, event };
            text.push_str(&serde_json::to_string(&msg)?);
            text.push('\n');
            msgs.push(msg);
        }
        self.torn = true;
        (&*self.file).write_all(text.as_bytes())?;
        self.torn = false;
        self.next_seq += msgs.len() as u64;
        Ok((msgs, self.file.clone()))
    }

    /// Events written and synced: from now on they are replayed until acknowledged.
    fn publish(&mut self, msgs: &[AgentMsg]) {
        for m in msgs {
            if let AgentMsg::Event { seq, .. } = m {
                self.pending.push_back((*seq, m.clone()));
                self.published = *seq;
            }
        }
    }

    /// Everything up to `seq` is stored on the server.
    pub fn ack(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        // Never number an event at or below what the server has stored (a state restored from
        // an older copy): it would be taken for a duplicate.
        self.next_seq = self.next_seq.max(seq + 1);
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            self.pending.pop_front();
        }
        // Written aside and moved into place: a full disk leaves the old value, not an empty file.
        let aside = self.acked_path.with_extension("new");
        if let Err(e) = std::fs::write(&aside, seq.to_string()).and_then(|()| std::fs::rename(&aside, &self.acked_path))
        {
            crate::stats::write_failed("the acknowledged sequence", &e);
        }
        // Nothing left to replay (nor on its way to disk): start the file afresh rather than let it grow.
        let idle = self.pending.is_empty() && self.published + 1 == self.next_seq;
        if idle && self.file.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false) {
            if let Ok(f) = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&self.path) {
                self.file = Arc::new(f);
            }
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// What the server has not acknowledged, in order.
    pub fn pending(&self) -> Vec<AgentMsg> {
        self.pending.iter().map(|(_, m)| m.clone()).collect()
    }
}

/// Bytes of output waiting to be written to the log beyond which no more is read from the jobs'
/// files (`EventQueue::behind`): while the log's disk is full, output waits where it is.
const MAX_BACKLOG: usize = 8 << 20;

/// The queue of the writer thread, and how much output waits in it.
#[derive(Clone)]
pub struct EventQueue {
    tx: std::sync::mpsc::Sender<Work>,
    backlog: Arc<AtomicUsize>,
}

impl EventQueue {
    /// Queues an event; false when the writer has stopped.
    pub fn event(&self, entry: Entry) -> bool {
        let size = output_bytes(&entry);
        self.backlog.fetch_add(size, Ordering::Relaxed);
        let sent = self.tx.send(Work::Event(entry)).is_ok();
        if !sent {
            self.backlog.fetch_sub(size, Ordering::Relaxed);
        }
        sent
    }

    /// Queues work to do once every event queued before it is written; false when the writer
    /// has stopped.
    pub fn then(&self, f: Box<dyn FnOnce() + Send>) -> bool {
        self.tx.send(Work::Then(f)).is_ok()
    }

    /// Whether so much output waits to be written (the log's disk is full, or slow) that no more
    /// should be read for now: memory stays bounded, and the output stays in the job's file.
    pub fn behind(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) > MAX_BACKLOG
    }
}

fn output_bytes((_, _, event): &Entry) -> usize {
    match event {
        AgentEvent::Output { data, .. } => data.len(),
        _ => 0,
    }
}

/// Starts the writer thread: events sent to the returned queue are written, synced when a
/// lifecycle event is among them (output chunks alone are only written: a crash loses at most
/// output the job's file on disk still has), then made pending and handed to `out` for sending,
/// both under the log's lock, so a new connection's replay and the queue never miss one; then
/// what was given to do after them is done.
pub fn start_writer(
    log: Arc<Mutex<EventLog>>,
    out: tokio::sync::mpsc::UnboundedSender<AgentMsg>,
) -> Result<EventQueue> {
    let (tx, rx) = std::sync::mpsc::channel::<Work>();
    let backlog = Arc::new(AtomicUsize::new(0));
    let written = backlog.clone();
    std::thread::Builder::new()
        .name("event-log".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = Vec::new();
                let mut then = Vec::new();
                let mut next = Some(first);
                while let Some(work) = next {
                    match work {
                        Work::Event(e) => batch.push(e),
                        Work::Then(f) => then.push(f),
                    }
                    next = if batch.len() < MAX_BATCH { rx.try_recv().ok() } else { None };
                }
                // A batch that cannot be written (a full disk) is tried again, with a growing
                // pause, until it is: events are never dropped. Meanwhile the events that come
                // wait in the queue, and what vouches for them (`then`) is not done.
                let mut pause = std::time::Duration::from_millis(50);
                loop {
                    let stored = if batch.is_empty() { Some(true) } else { write_batch(&log, &out, &batch) };
                    match stored {
                        None => return,
                        Some(true) => {
                            written.fetch_sub(batch.iter().map(output_bytes).sum(), Ordering::Relaxed);
                            break;
                        }
                        Some(false) => {
                            std::thread::sleep(pause);
                            pause = (pause * 2).min(std::time::Duration::from_secs(2));
                        }
                    }
                }
                then.into_iter().for_each(|f| f());
            }
        })
        .context("starting the event log writer")?;
    Ok(EventQueue { tx, backlog })
}

/// Writes, syncs and publishes a batch of events: whether they were written; None when the
/// log's lock is poisoned.
fn write_batch(
    log: &Mutex<EventLog>,
    out: &tokio::sync::mpsc::UnboundedSender<AgentMsg>,
    batch: &[Entry],
) -> Option<bool> {
    let durable = batch.iter().any(|(_, _, e)| !matches!(e, AgentEvent::Output { .. }));
    let written = log.lock().ok()?.write(batch.to_vec());
    let (msgs, file) = match written {
        Ok(w) => w,
        Err(e) => {
            crate::stats::write_failed("the event log (tried again)", &e);
            return Some(false);
        }
    };
    if durable {
        if let Err(e) = file.sync_data() {
            tracing::error!(error = %e, "syncing the event log");
        }
    }
    let mut l = log.lock().ok()?;
    l.publish(&msgs);
    for m in msgs {
        let _ = out.send(m);
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(log: &mut EventLog, event: AgentEvent) -> AgentMsg {
        let (msgs, file) = log.write(vec![(7, 1, event)]).unwrap();
        file.sync_data().unwrap();
        log.publish(&msgs);
        msgs.into_iter().next().unwrap()
    }

    #[test]
    fn unacknowledged_events_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = EventLog::open(dir.path()).unwrap();
            for i in 0..5 {
                append(&mut log, AgentEvent::Spawned { pid: 100 + i });
            }
            log.ack(2);
            assert_eq!(log.pending().len(), 3);
        }
        // A torn last line, as after a crash mid-write, is skipped.
        let mut f = OpenOptions::new().append(true).open(dir.path().join("events.log")).unwrap();
        f.write_all(b"{\"type\":\"event\",\"seq\":6,\"run").unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let seqs: Vec<u64> =
            log.pending().iter().map(|m| if let AgentMsg::Event { seq, .. } = m { *seq } else { 0 }).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(log.acked(), 2);
        // New events continue the sequence; acks are never taken back.
        let next = append(&mut log, AgentEvent::Accepted);
        assert!(matches!(next, AgentMsg::Event { seq: 6, .. }));
        log.ack(6);
        log.ack(3);
        assert_eq!((log.acked(), log.pending().len()), (6, 0));
    }

    #[test]
    fn the_writer_numbers_stores_and_sends_every_event_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(EventLog::open(dir.path()).unwrap()));
        let (out, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let events = start_writer(log.clone(), out).unwrap();
        for pid in 0..2000 {
            assert!(events.event((pid as i64, 1, AgentEvent::Spawned { pid })));
        }
        let mut seqs = Vec::new();
        while seqs.len() < 2000 {
            match sent.blocking_recv().unwrap() {
                AgentMsg::Event { seq, run_id, event: AgentEvent::Spawned { pid }, .. } => {
                    assert_eq!(run_id.0, i64::from(pid));
                    seqs.push(seq);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>());
        // Everything sent is pending until acknowledged, and is in the file for a restart.
        assert_eq!(log.lock().unwrap().pending().len(), 2000);
        drop(events);
        let reopened = EventLog::open(dir.path()).unwrap();
        assert_eq!(reopened.pending().len(), 2000);
    }

    #[test]
    fn work_given_after_events_is_done_once_they_are_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(EventLog::open(dir.path()).unwrap()));
        let (out, _sent) = tokio::sync::mpsc::unbounded_channel();
        let events = start_writer(log, out).unwrap();
        let (seen, on_disk) = std::sync::mpsc::channel();
        for round in 1..=3usize {
            for pid in 0..100 {
                assert!(events.event((i64::from(pid), 1, AgentEvent::Spawned { pid })));
            }
            let (path, seen) = (dir.path().to_path_buf(), seen.clone());
            assert!(events.then(Box::new(move || {
                seen.send(EventLog::open(&path).unwrap().pending().len()).unwrap();
            })));
            assert_eq!(on_disk.recv().unwrap(), round * 100, "every event given before it is in the file");
        }
    }
}
