-- Failed writes to an agent's own state (journals, acknowledgements) it reported in its last heartbeat.
ALTER TABLE agents ADD COLUMN write_failures BIGINT NOT NULL DEFAULT 0;
