ALTER TABLE runs DROP COLUMN adhoc_instances;
