-- +goose Up
-- consent: the append-only ledger of decisions. Rows are only ever added (and removed
-- with their subject on erasure); the current state is derived from them.
CREATE TABLE consent_events (
    id             BIGSERIAL PRIMARY KEY,
    subject_id     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    decision       TEXT NOT NULL,
    source         TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    evidence       TEXT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events(subject_id, purpose, id);

-- consent: the newest decision per subject and purpose, kept with each event in the same
-- transaction; it can always be rebuilt from consent_events.
CREATE TABLE consent_state (
    subject_id TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    decision   TEXT NOT NULL,
    event_id   BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);
CREATE INDEX consent_state_purpose ON consent_state(purpose, decision, subject_id);

-- consent: disagreements between sources, for staff to see.
CREATE TABLE consent_conflicts (
    id         BIGSERIAL PRIMARY KEY,
    subject_id TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    earlier_id BIGINT NOT NULL,
    later_id   BIGINT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX consent_conflicts_subject ON consent_conflicts(subject_id);

-- consent: restriction of processing and objection to legitimate-interest processing.
CREATE TABLE processing_flags (
    subject_id TEXT PRIMARY KEY,
    restricted BIGINT NOT NULL DEFAULT 0,
    objected   BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE processing_flags;
DROP TABLE consent_conflicts;
DROP TABLE consent_state;
DROP TABLE consent_events;
