ALTER TABLE integrations DROP COLUMN instance_id;
ALTER TABLE credentials DROP COLUMN instance_id;
