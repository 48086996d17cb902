ALTER TABLE runs DROP COLUMN terminate_by;
