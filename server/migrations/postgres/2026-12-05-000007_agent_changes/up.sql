-- Agents going online or offline as each server sees them, so the servers sharing a PostgreSQL
-- database publish each other's to their agentEvents subscribers.
CREATE TABLE agent_changes (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    server TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
