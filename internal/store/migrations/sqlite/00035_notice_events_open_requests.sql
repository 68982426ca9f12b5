-- +goose Up
-- notices: rectifications and restrictions are told too, each time one happens: a
-- notice is one per member, processor, event and event_id (a random id of the change;
-- '' for the erasure, told once). request_id is the privacy request the change
-- answers, if any, whose events record each acknowledgment.
ALTER TABLE processor_notices ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
ALTER TABLE processor_notices ADD COLUMN request_id TEXT;
DROP INDEX processor_notices_subject;
CREATE UNIQUE INDEX processor_notices_event ON processor_notices(subject_hash, processor, event, event_id);

-- requests: the open requests by due date, for the queue's first page and the daily
-- count of those overdue and due soon (an index-only range of the open ones, not a
-- scan of every request: 100,000 open requests, issue 13's benchmark). The queries
-- name the same condition, which the planner needs to use the index; state is in it
-- so that the count reads the index alone (SQLite does not infer it from the condition).
CREATE INDEX privacy_requests_open ON privacy_requests(due_date, received_at, id, state) WHERE state NOT IN ('done', 'refused', 'withdrawn');

-- +goose Down
DROP INDEX privacy_requests_open;
DROP INDEX processor_notices_event;
DELETE FROM processor_notices WHERE event <> 'erasure';
CREATE UNIQUE INDEX processor_notices_subject ON processor_notices(subject_hash, processor, event);
ALTER TABLE processor_notices DROP COLUMN request_id;
ALTER TABLE processor_notices DROP COLUMN event_id;
