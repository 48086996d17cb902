-- PostgreSQL only (baton_advance_run); SQLite runs a step's statements in a transaction.
SELECT 1;
