ALTER TABLE agents DROP COLUMN degraded;
