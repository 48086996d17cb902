DROP FUNCTION baton_advance_run;
