-- What a run needs to be carried out again after a restart (JSON: profile with `${C:key}`
-- unexpanded, output paths, limits, retries); the slot instant of scheduled runs is indexed so
-- the engine finds where it got to before the server stopped.
ALTER TABLE runs ADD COLUMN job TEXT;
CREATE INDEX runs_by_scheduled_for ON runs (scheduled_for);
