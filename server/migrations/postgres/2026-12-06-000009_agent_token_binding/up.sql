-- The agent name a token enrolled (its first registration): the token registers no other name,
-- and no other live token takes that name.
ALTER TABLE agent_tokens ADD COLUMN agent_name TEXT;
CREATE UNIQUE INDEX agent_tokens_live_agent_name ON agent_tokens (agent_name) WHERE revoked_at IS NULL;
