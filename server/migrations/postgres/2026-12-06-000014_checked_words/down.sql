ALTER TABLE runs DROP CONSTRAINT runs_status_known;
ALTER TABLE group_runs DROP CONSTRAINT group_runs_status_known;
ALTER TABLE run_transitions DROP CONSTRAINT run_transitions_status_known;
ALTER TABLE run_output DROP CONSTRAINT run_output_stream_known;
ALTER TABLE agents DROP CONSTRAINT agents_status_known;
ALTER TABLE definition_changes DROP CONSTRAINT definition_changes_kind_known;
