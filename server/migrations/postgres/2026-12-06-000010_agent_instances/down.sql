ALTER TABLE agents DROP COLUMN instances;
