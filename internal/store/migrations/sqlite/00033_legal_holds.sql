-- +goose Up
-- holds: legal holds placed by the DPO on a member. holders names the data-map holders
-- whose data an erasure keeps while the hold is in force (comma-separated); reason is
-- sealed under the member's data key, which an erasure keeps while any hold is in
-- force. until_at NULL: until released. A hold's row is deleted when the member's
-- erasure ends, with the data it kept.
CREATE TABLE legal_holds (
    id          TEXT PRIMARY KEY,
    subject_id  TEXT NOT NULL,
    holders     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    until_at    BIGINT,
    placed_by   TEXT,
    placed_at   BIGINT NOT NULL,
    released_by TEXT,
    released_at BIGINT
);
CREATE INDEX legal_holds_subject ON legal_holds(subject_id);

-- +goose Down
DROP TABLE legal_holds;
