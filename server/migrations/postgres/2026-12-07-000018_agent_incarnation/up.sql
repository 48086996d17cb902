-- The name of an agent's state, made with its state directory: a registration under a known name
-- with another incarnation is a rebuilt host, whose old attempts are lost and whose events are
-- numbered anew.
ALTER TABLE agents ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
