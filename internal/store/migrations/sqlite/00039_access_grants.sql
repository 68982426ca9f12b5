-- +goose Up
-- access: the grants under which support reads a member's data, and every staff read of
-- member data (with or without a grant). Both are the member's: reason, staff_name and
-- record are sealed under the member's data key, so an erasure leaves nothing readable
-- and deletes the rows. staff_id is the staff member's random account id, blanked when
-- that staff member is erased.
CREATE TABLE access_grants (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL,
    staff_id     TEXT,
    scopes       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    staff_name   TEXT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    decision     TEXT,
    decided_by   TEXT,
    decided_at   BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX access_grants_subject ON access_grants(subject_id);
CREATE INDEX access_grants_staff ON access_grants(staff_id);

CREATE TABLE staff_reads (
    id         TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    staff_id   TEXT,
    grant_id   TEXT,
    at         BIGINT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX staff_reads_subject ON staff_reads(subject_id, at);
CREATE INDEX staff_reads_staff ON staff_reads(staff_id);

-- +goose Down
DROP TABLE staff_reads;
DROP TABLE access_grants;
