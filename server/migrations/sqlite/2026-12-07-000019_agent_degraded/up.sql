-- Why an agent is degraded now (its last failed write to its own state), as its last heartbeat said.
ALTER TABLE agents ADD COLUMN degraded TEXT;
