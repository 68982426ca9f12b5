-- +goose Up
-- requests: the rights desk. One row per request a person made about their data (a
-- right of Art. 15-22 GDPR, a complaint or an inquiry), with the legal clock: the day
-- it was received and the day it is due (Art. 12(3)). subject_id is the member's
-- account id, or for a person without an account the request's own subject, whose data
-- key is shredded a day after the request closes (shredded_at). details,
-- requester_name, notify_email and held_email (the address the data is held under, as
-- the visitor gave it) are sealed under the subject's data key. confirm_hash is the
-- SHA-256 of a visitor's confirmation link until it is opened.
CREATE TABLE privacy_requests (
    id              TEXT PRIMARY KEY,
    subject_id      TEXT NOT NULL,
    requester       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    due_date        TEXT NOT NULL,
    extended_months INTEGER NOT NULL DEFAULT 0,
    details         TEXT,
    requester_name  TEXT,
    notify_email    TEXT,
    held_email      TEXT,
    confirm_hash    TEXT,
    confirm_expires INTEGER,
    linked_id       TEXT,
    updated_at      INTEGER NOT NULL,
    closed_at       INTEGER,
    shredded_at     INTEGER
) STRICT;
CREATE INDEX privacy_requests_subject ON privacy_requests(subject_id, received_at);
-- The queue, the soonest due first: of one state, and of all (or every open one).
CREATE INDEX privacy_requests_queue ON privacy_requests(state, due_date, received_at, id);
CREATE INDEX privacy_requests_due ON privacy_requests(due_date, received_at, id);
CREATE UNIQUE INDEX privacy_requests_confirm ON privacy_requests(confirm_hash) WHERE confirm_hash IS NOT NULL;

-- Every change of a request, who made it and why (note, sealed under the subject's
-- key). actor_id is the staff member's account id, blanked when that member is erased.
CREATE TABLE privacy_request_events (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES privacy_requests(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    actor_id   TEXT,
    note       TEXT
) STRICT;
CREATE INDEX privacy_request_events_request ON privacy_request_events(request_id, id);
CREATE INDEX privacy_request_events_subject ON privacy_request_events(subject_id);
CREATE INDEX privacy_request_events_actor ON privacy_request_events(actor_id) WHERE actor_id IS NOT NULL;

-- The days on which staff were warned of requests coming due: one warning a day
-- across nodes and restarts.
CREATE TABLE privacy_request_warnings (
    day     TEXT PRIMARY KEY,
    sent_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE privacy_request_warnings;
DROP TABLE privacy_request_events;
DROP TABLE privacy_requests;
