-- Which server stored a transition or a chunk of output: the others publish it to their
-- subscribers and engines (live updates cross servers that share a PostgreSQL database).
ALTER TABLE run_transitions ADD COLUMN server TEXT;
ALTER TABLE run_output ADD COLUMN server TEXT;
