-- What an enrollment token lets its agent be: the instances its agent serves when it first
-- registers (those of the admin who made it), and the hostname and queues it claimed at its
-- first registration (claims beyond them are refused).
ALTER TABLE agent_tokens ADD COLUMN instances TEXT NOT NULL DEFAULT '*';
ALTER TABLE agent_tokens ADD COLUMN hostname TEXT;
ALTER TABLE agent_tokens ADD COLUMN queues TEXT;
