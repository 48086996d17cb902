-- PostgreSQL only (baton_advance_run tells the first seq it stored).
SELECT 1;
