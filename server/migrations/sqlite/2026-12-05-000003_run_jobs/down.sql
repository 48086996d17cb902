DROP INDEX runs_by_scheduled_for;
ALTER TABLE runs DROP COLUMN job;
