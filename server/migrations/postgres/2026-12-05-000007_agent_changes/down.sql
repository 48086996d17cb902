DROP TABLE agent_changes;
