ALTER TABLE agents DROP COLUMN incarnation;
