DROP INDEX agent_tokens_live_agent_name;
ALTER TABLE agent_tokens DROP COLUMN agent_name;
