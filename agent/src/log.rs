//! The durable event log: every run event is appended (with its sequence number) before it is
//! sent, and kept until the server acknowledges it, so a dropped connection, an agent restart or a
//! server restart loses nothing; the server ignores sequences it has already stored.

use anyhow::{Context, Result};
use baton_schema::agent::v1::{AgentEvent, AgentMsg};
use baton_schema::ids::RunId;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub struct EventLog {
    path: PathBuf,
    acked_path: PathBuf,
    file: File,
    next_seq: u64,
    acked: u64,
    pending: VecDeque<(u64, AgentMsg)>,
}

impl EventLog {
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
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(EventLog { path, acked_path, file, next_seq: last + 1, acked, pending })
    }

    /// Appends an event and returns the frame to send. Lifecycle events are synced to disk;
    /// output chunks are flushed (a crash loses at most output the file on disk still has).
    pub fn append(&mut self, run_id: i64, attempt: u32, event: AgentEvent) -> Result<AgentMsg> {
        let durable = !matches!(event, AgentEvent::Output { .. });
        let msg = AgentMsg::Event { seq: self.next_seq, run_id: RunId(run_id), attempt, event };
        let mut line = serde_json::to_string(&msg)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        if durable {
            self.file.sync_data()?;
        }
        self.pending.push_back((self.next_seq, msg.clone()));
        self.next_seq += 1;
        Ok(msg)
    }

    /// Everything up to `seq` is stored on the server.
    pub fn ack(&mut self, seq: u64) {
        if seq <= self.acked {
            return;
        }
        self.acked = seq;
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            self.pending.pop_front();
        }
        let _ = std::fs::write(&self.acked_path, seq.to_string());
        // Nothing left to replay: start the file afresh rather than let it grow.
        if self.pending.is_empty() && self.file.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false) {
            if let Ok(f) = OpenOptions::new().create(true).write(true).truncate(true).open(&self.path) {
                self.file = f;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacknowledged_events_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = EventLog::open(dir.path()).unwrap();
            for i in 0..5 {
                log.append(7, 1, AgentEvent::Spawned { pid: 100 + i }).unwrap();
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
        let next = log.append(7, 1, AgentEvent::Accepted).unwrap();
        assert!(matches!(next, AgentMsg::Event { seq: 6, .. }));
        log.ack(6);
        log.ack(3);
        assert_eq!((log.acked(), log.pending().len()), (6, 0));
    }
}
