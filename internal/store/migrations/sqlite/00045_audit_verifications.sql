-- +goose Up
-- audit_verifications: each verification of the whole audit chain (the hourly job, a
-- staff member's "verify now", steward audit verify) and what it found. The audit page
-- shows the newest instead of recomputing the chain at every view (ten million entries
-- take about half a minute). Nothing personal: places, hashes, counts and times.
CREATE TABLE audit_verifications (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    source      TEXT NOT NULL,    -- schedule, staff, command
    entries     INTEGER NOT NULL,
    checkpoints INTEGER NOT NULL,
    head        INTEGER NOT NULL,
    head_hash   TEXT NOT NULL,
    unchained   INTEGER NOT NULL,
    broken_at   INTEGER NOT NULL, -- 0: intact
    problem     TEXT NOT NULL     -- '': intact
) STRICT;

-- +goose Down
DROP TABLE audit_verifications;
