ALTER TABLE agents DROP COLUMN write_failures;
