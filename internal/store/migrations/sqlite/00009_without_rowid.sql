-- +goose Up
-- SQLite: consent states and suppressions, small rows keyed by text and written at every
-- consent decision and import, keep their rows in their primary key's tree (WITHOUT
-- ROWID) instead of a rowid tree plus a separate index of the key: one tree fewer to
-- write per row.
CREATE TABLE consent_state_new (
    subject_id TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    decision   TEXT NOT NULL,
    event_id   INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (subject_id, purpose)
) STRICT, WITHOUT ROWID;
INSERT INTO consent_state_new (subject_id, purpose, decision, event_id, at)
    SELECT subject_id, purpose, decision, event_id, at FROM consent_state;
DROP TABLE consent_state;
ALTER TABLE consent_state_new RENAME TO consent_state;

CREATE TABLE suppressions_new (
    hash    TEXT NOT NULL,
    purpose TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (hash, purpose)
) STRICT, WITHOUT ROWID;
INSERT INTO suppressions_new (hash, purpose, reason, at) SELECT hash, purpose, reason, at FROM suppressions;
DROP TABLE suppressions;
ALTER TABLE suppressions_new RENAME TO suppressions;

-- +goose Down
-- The rowid forms hold the same rows; nothing to undo for correctness.
SELECT 1;
