-- The instances whose operators' adhoc runs may reach an agent: `*` (every one) or a
-- comma-separated list.
ALTER TABLE agents ADD COLUMN instances TEXT NOT NULL DEFAULT '*';
