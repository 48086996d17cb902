-- Definition changes as each server publishes them, so the servers sharing a PostgreSQL database
-- publish each other's too (to their engines and definitionChanges subscribers).
CREATE TABLE definition_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    instance TEXT NOT NULL,
    action TEXT NOT NULL,
    server TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
