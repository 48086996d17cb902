-- A credential or an integration belongs to one instance (its admins manage it, and only that
-- instance's definitions may name it) or, with no instance, to all (a superadmin's).
ALTER TABLE credentials ADD COLUMN instance_id BIGINT;
ALTER TABLE integrations ADD COLUMN instance_id BIGINT;
