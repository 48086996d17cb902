DROP INDEX audit_log_instance;
ALTER TABLE audit_log DROP COLUMN instance_id;
