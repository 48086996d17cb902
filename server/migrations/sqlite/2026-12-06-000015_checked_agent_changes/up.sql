-- An agent change's status is checked text too (AgentStatus's words), as agents.status.
CREATE TRIGGER agent_changes_status_known_insert BEFORE INSERT ON agent_changes WHEN NOT (NEW.status IN ('ONLINE', 'OFFLINE'))
BEGIN SELECT RAISE(ABORT, 'agent_changes.status: not ONLINE or OFFLINE'); END;
CREATE TRIGGER agent_changes_status_known_update BEFORE UPDATE OF status ON agent_changes WHEN NOT (NEW.status IN ('ONLINE', 'OFFLINE'))
BEGIN SELECT RAISE(ABORT, 'agent_changes.status: not ONLINE or OFFLINE'); END;
