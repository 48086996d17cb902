-- Who asked to terminate a run whose agent is connected to another server: that server (or the
-- lease holder, for a run on no agent) carries the request out.
ALTER TABLE runs ADD COLUMN terminate_by TEXT;
