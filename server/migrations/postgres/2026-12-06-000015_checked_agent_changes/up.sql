-- An agent change's status is checked text too (AgentStatus's words), as agents.status.
ALTER TABLE agent_changes ADD CONSTRAINT agent_changes_status_known CHECK (status IN ('ONLINE', 'OFFLINE'));
