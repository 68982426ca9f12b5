-- +goose Up
-- notices: rectifications and restrictions are told too, each time one happens: a
-- notice is one per member, processor, event and event_id (a random id of the change;
-- '' for the erasure, told once). request_id is the privacy request the change
-- answers, if any, whose events record each acknowledgment.
ALTER TABLE processor_notices ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
ALTER TABLE processor_notices ADD COLUMN request_id TEXT;
DROP INDEX processor_notices_subject;
CREATE UNIQUE INDEX processor_notices_event ON processor_notices(subject_hash, processor, event, event_id);

-- +goose Down
DROP INDEX processor_notices_event;
DELETE FROM processor_notices WHERE event <> 'erasure';
CREATE UNIQUE INDEX processor_notices_subject ON processor_notices(subject_hash, processor, event);
ALTER TABLE processor_notices DROP COLUMN request_id;
ALTER TABLE processor_notices DROP COLUMN event_id;
