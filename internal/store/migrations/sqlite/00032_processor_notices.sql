-- +goose Up
-- notices: what the processors that received a member's data are told of the member's
-- erasure (GDPR art. 19), and whether they acknowledged. payload (the address the
-- processor knows the member by) is sealed under the notice's own data key, shredded
-- once the notice is acknowledged or its task closed; subject_hash is a keyed hash of
-- the member's id, never the id.
CREATE TABLE processor_notices (
    id              TEXT PRIMARY KEY,
    processor       TEXT NOT NULL,
    event           TEXT NOT NULL,
    subject_hash    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    response_status INTEGER,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT
);
CREATE UNIQUE INDEX processor_notices_subject ON processor_notices(subject_hash, processor, event);
CREATE INDEX processor_notices_state ON processor_notices(state, id);

-- +goose Down
DROP TABLE processor_notices;
