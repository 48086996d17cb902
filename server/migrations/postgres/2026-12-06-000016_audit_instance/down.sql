ALTER TABLE audit_log DROP COLUMN instance_id;
