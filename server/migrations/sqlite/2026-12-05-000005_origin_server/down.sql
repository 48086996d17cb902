ALTER TABLE run_output DROP COLUMN server;
ALTER TABLE run_transitions DROP COLUMN server;
