-- Statuses, streams and kinds are checked text: each column takes only the words its Rust enum
-- writes (RunStatus, Stream, the agent's status, ChangeKind), so no other writer can store a word
-- the server would not read.
ALTER TABLE runs ADD CONSTRAINT runs_status_known CHECK (status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'));
ALTER TABLE group_runs ADD CONSTRAINT group_runs_status_known CHECK (status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'));
ALTER TABLE run_transitions ADD CONSTRAINT run_transitions_status_known CHECK (from_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN') AND to_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'));
ALTER TABLE run_output ADD CONSTRAINT run_output_stream_known CHECK (stream IN ('stdout', 'stderr'));
ALTER TABLE agents ADD CONSTRAINT agents_status_known CHECK (status IN ('ONLINE', 'OFFLINE'));
ALTER TABLE definition_changes ADD CONSTRAINT definition_changes_kind_known CHECK (kind IN ('task', 'group', 'calendar', 'instance'));
