-- The instances of the agent an adhoc run went to, when it went ("*" or ",a,b,"): who may
-- see the run and its output. NULL for runs of tasks and adhoc runs made before it was kept.
ALTER TABLE runs ADD COLUMN adhoc_instances TEXT;
