ALTER TABLE agent_tokens DROP COLUMN queues;
ALTER TABLE agent_tokens DROP COLUMN hostname;
ALTER TABLE agent_tokens DROP COLUMN instances;
