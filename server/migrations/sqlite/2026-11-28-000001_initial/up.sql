-- Baton's initial schema. Timestamps are UTC without a zone; booleans are BOOLEAN.
CREATE TABLE instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
INSERT INTO instances (name, description, created_at) VALUES ('default', 'The default instance', CURRENT_TIMESTAMP);

CREATE TABLE calendars (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (instance_id, name)
);

CREATE TABLE calendar_dates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    calendar_id BIGINT NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX calendar_dates_by_calendar ON calendar_dates (calendar_id, start_date);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE RESTRICT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    team TEXT NOT NULL DEFAULT '',
    active BOOLEAN NOT NULL,
    schedule TEXT,
    dependency TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (instance_id, name)
);
CREATE INDEX groups_by_name ON groups (name);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL REFERENCES instances(id) ON DELETE RESTRICT,
    group_id BIGINT REFERENCES groups(id) ON DELETE RESTRICT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    team TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL,
    target TEXT NOT NULL,
    run_as_user TEXT NOT NULL,
    stdout_path TEXT,
    stderr_path TEXT,
    profile TEXT NOT NULL DEFAULT '{}',
    active BOOLEAN NOT NULL,
    schedule TEXT,
    retry_attempts INTEGER NOT NULL DEFAULT 0,
    retry_delay_seconds INTEGER NOT NULL DEFAULT 60,
    max_run_time_seconds INTEGER NOT NULL DEFAULT 3600,
    accept_expiry_seconds INTEGER NOT NULL DEFAULT 300,
    dependency TEXT,
    misfire_policy TEXT NOT NULL DEFAULT 'run_once',
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (instance_id, name)
);
CREATE INDEX tasks_by_group ON tasks (group_id);
CREATE INDEX tasks_by_name ON tasks (name);
CREATE INDEX tasks_by_active ON tasks (active, id);

-- Edges of the dependency expressions, kept in step with them, for the flow graph.
CREATE TABLE dependencies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id BIGINT REFERENCES tasks(id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES groups(id) ON DELETE CASCADE,
    depends_on_task_id BIGINT REFERENCES tasks(id) ON DELETE RESTRICT,
    depends_on_group_id BIGINT REFERENCES groups(id) ON DELETE RESTRICT,
    state TEXT NOT NULL
);
CREATE INDEX dependencies_by_task ON dependencies (task_id);
CREATE INDEX dependencies_by_group ON dependencies (group_id);
CREATE INDEX dependencies_by_target_task ON dependencies (depends_on_task_id);

CREATE TABLE integrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    credential_key TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id BIGINT REFERENCES tasks(id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES groups(id) ON DELETE CASCADE,
    trigger_on TEXT NOT NULL,
    integration TEXT NOT NULL,
    message TEXT,
    position INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_rules_by_task ON alert_rules (task_id);
CREATE INDEX alert_rules_by_group ON alert_rules (group_id);

CREATE TABLE credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL DEFAULT '',
    queues TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'OFFLINE',
    cpu_percent DOUBLE PRECISION,
    memory_percent DOUBLE PRECISION,
    uptime_seconds BIGINT,
    last_acked_seq BIGINT NOT NULL DEFAULT 0,
    last_seen_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX agents_by_hostname ON agents (hostname);

CREATE TABLE agent_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

CREATE TABLE group_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    run_date DATE NOT NULL,
    slot TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (group_id, run_date, slot)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    task_id BIGINT REFERENCES tasks(id) ON DELETE SET NULL,
    task_name TEXT NOT NULL,
    instance_id BIGINT REFERENCES instances(id) ON DELETE SET NULL,
    group_id BIGINT REFERENCES groups(id) ON DELETE SET NULL,
    group_run_id BIGINT REFERENCES group_runs(id) ON DELETE SET NULL,
    run_date DATE NOT NULL,
    slot TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    command TEXT NOT NULL,
    target TEXT NOT NULL,
    run_as_user TEXT NOT NULL,
    agent_id BIGINT REFERENCES agents(id) ON DELETE SET NULL,
    pid BIGINT,
    exit_code INTEGER,
    scheduled_for TIMESTAMP,
    triggered_at TIMESTAMP,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    stdout_bytes BIGINT NOT NULL DEFAULT 0,
    stderr_bytes BIGINT NOT NULL DEFAULT 0,
    output_truncated_bytes BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- One run per (task, run date, slot): duplicates are impossible by construction.
CREATE UNIQUE INDEX runs_unique_slot ON runs (task_id, run_date, slot);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_task ON runs (task_id, id);
CREATE INDEX runs_by_group ON runs (group_id, id);
CREATE INDEX runs_by_instance ON runs (instance_id, id);
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_date ON runs (run_date, task_id);
CREATE INDEX runs_by_name ON runs (task_name, id);
CREATE INDEX runs_by_agent ON runs (agent_id, status);

CREATE TABLE run_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    reason TEXT,
    UNIQUE (run_id, seq)
);

CREATE TABLE run_output (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    stream TEXT NOT NULL,
    byte_offset BIGINT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX run_output_by_offset ON run_output (run_id, stream, attempt, byte_offset);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    instances TEXT NOT NULL DEFAULT '*',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP,
    UNIQUE (user_id, name)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    task_id BIGINT,
    group_id BIGINT,
    run_id BIGINT,
    run_date DATE,
    payload TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    ok BOOLEAN,
    created_at TIMESTAMP NOT NULL,
    acknowledged_at TIMESTAMP
);
CREATE INDEX events_by_created ON events (created_at, id);
CREATE INDEX events_by_task ON events (task_id, id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    before_value TEXT,
    after_value TEXT,
    origin TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_at ON audit_log (at, id);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
CREATE INDEX audit_by_action ON audit_log (action, id);

-- Which server schedules which instance (PostgreSQL HA); the token fences a stale owner.
CREATE TABLE instance_leases (
    instance_id BIGINT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    fencing_token BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
