-- baton_advance_run also tells the `seq` of the first transition it stored: a server publishes
-- each run's transitions in `seq` order and, seeing a gap, first reads what it has not published.
-- Its answer: `refused` NULL when stored ('fence', 'changed' as before), and `first_seq`.
DROP FUNCTION baton_advance_run;
CREATE FUNCTION baton_advance_run(
    p_run BIGINT, p_was_status TEXT, p_was_attempt INTEGER, p_was_agent BIGINT,
    p_status TEXT, p_attempt INTEGER, p_updated_at TIMESTAMP,
    p_set_reason BOOLEAN, p_reason TEXT,
    p_set_agent BOOLEAN, p_agent BIGINT,
    p_set_pid BOOLEAN, p_pid BIGINT,
    p_set_exit BOOLEAN, p_exit INTEGER,
    p_set_triggered BOOLEAN, p_triggered TIMESTAMP,
    p_set_started BOOLEAN, p_started TIMESTAMP,
    p_set_ended BOOLEAN, p_ended TIMESTAMP,
    p_from TEXT[], p_to TEXT[], p_attempts INTEGER[], p_at TIMESTAMP[], p_reasons TEXT[], p_server TEXT,
    p_fence_instance BIGINT, p_fence_owner TEXT, p_fence_token BIGINT, p_now TIMESTAMP,
    OUT refused TEXT, OUT first_seq INTEGER
) LANGUAGE plpgsql AS $$
DECLARE
    last_seq INTEGER;
BEGIN
    IF p_fence_instance IS NOT NULL THEN
        PERFORM 1 FROM instance_leases
         WHERE instance_id = p_fence_instance AND owner = p_fence_owner
           AND fencing_token = p_fence_token AND expires_at > p_now
           FOR SHARE;
        IF NOT FOUND THEN
            refused := 'fence';
            RETURN;
        END IF;
    END IF;
    UPDATE runs SET
        status = p_status,
        attempt = p_attempt,
        updated_at = p_updated_at,
        reason = CASE WHEN p_set_reason THEN p_reason ELSE reason END,
        agent_id = CASE WHEN p_set_agent THEN p_agent ELSE agent_id END,
        pid = CASE WHEN p_set_pid THEN p_pid ELSE pid END,
        exit_code = CASE WHEN p_set_exit THEN p_exit ELSE exit_code END,
        triggered_at = CASE WHEN p_set_triggered THEN p_triggered ELSE triggered_at END,
        started_at = CASE WHEN p_set_started THEN p_started ELSE started_at END,
        ended_at = CASE WHEN p_set_ended THEN p_ended ELSE ended_at END
     WHERE id = p_run AND status = p_was_status AND attempt = p_was_attempt
       AND agent_id IS NOT DISTINCT FROM p_was_agent;
    IF NOT FOUND THEN
        refused := 'changed';
        RETURN;
    END IF;
    SELECT COALESCE(MAX(seq), 0) INTO last_seq FROM run_transitions WHERE run_id = p_run;
    INSERT INTO run_transitions (run_id, seq, from_status, to_status, attempt, at, reason, server)
    SELECT p_run, last_seq + i, p_from[i], p_to[i], p_attempts[i], p_at[i], p_reasons[i], p_server
      FROM generate_subscripts(p_to, 1) AS i;
    first_seq := last_seq + 1;
END
$$;
