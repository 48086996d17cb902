ALTER TABLE run_transitions DROP COLUMN server;
