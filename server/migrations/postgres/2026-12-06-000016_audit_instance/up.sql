-- The instance an audit entry is about (none for users, tokens and other global things), so an
-- admin of some instances reads the entries of those.
ALTER TABLE audit_log ADD COLUMN instance_id BIGINT;
