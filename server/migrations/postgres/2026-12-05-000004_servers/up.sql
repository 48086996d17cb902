-- The live `baton serve` processes sharing this database: each renews its row with its leases,
-- and instances are spread over those seen within a lease period.
CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    seen_at TIMESTAMP NOT NULL
);
