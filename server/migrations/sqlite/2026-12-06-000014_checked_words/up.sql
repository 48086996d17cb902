-- Statuses, streams and kinds are checked text: each column takes only the words its Rust enum
-- writes (RunStatus, Stream, the agent's status, ChangeKind), so no other writer can store a word
-- the server would not read. Triggers, as SQLite adds no CHECK to a table without rebuilding it.
CREATE TRIGGER runs_status_known_insert BEFORE INSERT ON runs WHEN NOT (NEW.status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'runs.status: not a run status'); END;
CREATE TRIGGER runs_status_known_update BEFORE UPDATE OF status ON runs WHEN NOT (NEW.status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'runs.status: not a run status'); END;
CREATE TRIGGER group_runs_status_known_insert BEFORE INSERT ON group_runs WHEN NOT (NEW.status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'group_runs.status: not a run status'); END;
CREATE TRIGGER group_runs_status_known_update BEFORE UPDATE OF status ON group_runs WHEN NOT (NEW.status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'group_runs.status: not a run status'); END;
CREATE TRIGGER run_transitions_status_known_insert BEFORE INSERT ON run_transitions WHEN NOT (NEW.from_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN') AND NEW.to_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'run_transitions: not a run status'); END;
CREATE TRIGGER run_transitions_status_known_update BEFORE UPDATE OF from_status, to_status ON run_transitions WHEN NOT (NEW.from_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN') AND NEW.to_status IN ('IDLE', 'TRIGGERED', 'STARTED', 'RUNNING', 'SUCCESS', 'FAILED', 'TERMINATED', 'SKIPPED', 'FROZEN'))
BEGIN SELECT RAISE(ABORT, 'run_transitions: not a run status'); END;
CREATE TRIGGER run_output_stream_known_insert BEFORE INSERT ON run_output WHEN NOT (NEW.stream IN ('stdout', 'stderr'))
BEGIN SELECT RAISE(ABORT, 'run_output.stream: not stdout or stderr'); END;
CREATE TRIGGER run_output_stream_known_update BEFORE UPDATE OF stream ON run_output WHEN NOT (NEW.stream IN ('stdout', 'stderr'))
BEGIN SELECT RAISE(ABORT, 'run_output.stream: not stdout or stderr'); END;
CREATE TRIGGER agents_status_known_insert BEFORE INSERT ON agents WHEN NOT (NEW.status IN ('ONLINE', 'OFFLINE'))
BEGIN SELECT RAISE(ABORT, 'agents.status: not ONLINE or OFFLINE'); END;
CREATE TRIGGER agents_status_known_update BEFORE UPDATE OF status ON agents WHEN NOT (NEW.status IN ('ONLINE', 'OFFLINE'))
BEGIN SELECT RAISE(ABORT, 'agents.status: not ONLINE or OFFLINE'); END;
CREATE TRIGGER definition_changes_kind_known_insert BEFORE INSERT ON definition_changes WHEN NOT (NEW.kind IN ('task', 'group', 'calendar', 'instance'))
BEGIN SELECT RAISE(ABORT, 'definition_changes.kind: not a kind of definition'); END;
CREATE TRIGGER definition_changes_kind_known_update BEFORE UPDATE OF kind ON definition_changes WHEN NOT (NEW.kind IN ('task', 'group', 'calendar', 'instance'))
BEGIN SELECT RAISE(ABORT, 'definition_changes.kind: not a kind of definition'); END;
