//! Diesel's view of the tables, shared by both backends (the migrations create them per backend).

diesel::table! {
    instances (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    calendars (id) {
        id -> BigInt,
        instance_id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    calendar_dates (id) {
        id -> BigInt,
        calendar_id -> BigInt,
        start_date -> Date,
        end_date -> Date,
        reason -> Text,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        instance_id -> BigInt,
        name -> Text,
        description -> Text,
        owner -> Text,
        team -> Text,
        active -> Bool,
        schedule -> Nullable<Text>,
        dependency -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tasks (id) {
        id -> BigInt,
        instance_id -> BigInt,
        group_id -> Nullable<BigInt>,
        name -> Text,
        description -> Text,
        owner -> Text,
        team -> Text,
        command -> Text,
        target -> Text,
        run_as_user -> Text,
        stdout_path -> Nullable<Text>,
        stderr_path -> Nullable<Text>,
        profile -> Text,
        active -> Bool,
        schedule -> Nullable<Text>,
        retry_attempts -> Integer,
        retry_delay_seconds -> Integer,
        max_run_time_seconds -> Integer,
        accept_expiry_seconds -> Integer,
        dependency -> Nullable<Text>,
        misfire_policy -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    dependencies (id) {
        id -> BigInt,
        task_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        depends_on_task_id -> Nullable<BigInt>,
        depends_on_group_id -> Nullable<BigInt>,
        state -> Text,
    }
}

diesel::table! {
    integrations (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        config -> Text,
        credential_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        instance_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    alert_rules (id) {
        id -> BigInt,
        task_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        trigger_on -> Text,
        integration -> Text,
        message -> Nullable<Text>,
        position -> Integer,
    }
}

diesel::table! {
    credentials (id) {
        id -> BigInt,
        key -> Text,
        nonce -> Text,
        ciphertext -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        instance_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    agents (id) {
        id -> BigInt,
        name -> Text,
        hostname -> Text,
        queues -> Text,
        version -> Text,
        os -> Text,
        status -> Text,
        cpu_percent -> Nullable<Double>,
        memory_percent -> Nullable<Double>,
        uptime_seconds -> Nullable<BigInt>,
        last_acked_seq -> BigInt,
        last_seen_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        instances -> Text,
        write_failures -> BigInt,
        incarnation -> Text,
        degraded -> Nullable<Text>,
    }
}

diesel::table! {
    agent_tokens (id) {
        id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        agent_name -> Nullable<Text>,
        instances -> Text,
        hostname -> Nullable<Text>,
        queues -> Nullable<Text>,
    }
}

diesel::table! {
    group_runs (id) {
        id -> BigInt,
        group_id -> BigInt,
        run_date -> Date,
        slot -> Text,
        status -> Text,
        started_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    runs (id) {
        id -> BigInt,
        kind -> Text,
        task_id -> Nullable<BigInt>,
        task_name -> Text,
        instance_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        group_run_id -> Nullable<BigInt>,
        run_date -> Date,
        slot -> Text,
        status -> Text,
        attempt -> Integer,
        reason -> Nullable<Text>,
        command -> Text,
        target -> Text,
        run_as_user -> Text,
        agent_id -> Nullable<BigInt>,
        pid -> Nullable<BigInt>,
        exit_code -> Nullable<Integer>,
        scheduled_for -> Nullable<Timestamp>,
        triggered_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        stdout_bytes -> BigInt,
        stderr_bytes -> BigInt,
        output_truncated_bytes -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        job -> Nullable<Text>,
        terminate_by -> Nullable<Text>,
        adhoc_instances -> Nullable<Text>,
    }
}

diesel::table! {
    run_transitions (id) {
        id -> BigInt,
        run_id -> BigInt,
        seq -> Integer,
        from_status -> Text,
        to_status -> Text,
        attempt -> Integer,
        at -> Timestamp,
        reason -> Nullable<Text>,
        server -> Nullable<Text>,
    }
}

diesel::table! {
    run_output (id) {
        id -> BigInt,
        run_id -> BigInt,
        attempt -> Integer,
        stream -> Text,
        byte_offset -> BigInt,
        data -> Text,
        created_at -> Timestamp,
        server -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        instances -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        kind -> Text,
        actor -> Text,
        origin -> Text,
        task_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        run_id -> Nullable<BigInt>,
        run_date -> Nullable<Date>,
        payload -> Text,
        result -> Nullable<Text>,
        ok -> Nullable<Bool>,
        created_at -> Timestamp,
        acknowledged_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Text,
        before_value -> Nullable<Text>,
        after_value -> Nullable<Text>,
        origin -> Text,
        instance_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    definition_changes (id) {
        id -> BigInt,
        kind -> Text,
        entity_id -> BigInt,
        name -> Text,
        instance -> Text,
        action -> Text,
        server -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    agent_changes (id) {
        id -> BigInt,
        name -> Text,
        status -> Text,
        server -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    servers (id) {
        id -> Text,
        started_at -> Timestamp,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    instance_leases (instance_id) {
        instance_id -> BigInt,
        owner -> Text,
        fencing_token -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    alert_deliveries (id) {
        id -> BigInt,
        dedupe_key -> Text,
        integration -> Text,
        source -> Text,
        run_id -> Nullable<BigInt>,
        trigger_on -> Text,
        subject -> Text,
        message -> Text,
        details -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    alert_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        attempt -> Integer,
        at -> Timestamp,
        ok -> Bool,
        detail -> Text,
    }
}

diesel::joinable!(calendars -> instances (instance_id));
diesel::joinable!(calendar_dates -> calendars (calendar_id));
diesel::joinable!(groups -> instances (instance_id));
diesel::joinable!(tasks -> groups (group_id));
diesel::joinable!(group_runs -> groups (group_id));
diesel::joinable!(run_transitions -> runs (run_id));
diesel::joinable!(run_output -> runs (run_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(alert_attempts -> alert_deliveries (delivery_id));
diesel::joinable!(api_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    instances,
    calendars,
    calendar_dates,
    groups,
    tasks,
    dependencies,
    integrations,
    alert_rules,
    credentials,
    alert_deliveries,
    alert_attempts,
    agents,
    agent_tokens,
    group_runs,
    runs,
    run_transitions,
    run_output,
    users,
    sessions,
    api_tokens,
    events,
    audit_log,
    instance_leases,
    servers,
    agent_changes,
    definition_changes,
);
