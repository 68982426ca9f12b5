-- +goose Up
-- erasure_requests: the subjects being erased, found by id. While an erasure runs, or
-- waits in "holding" for legal holds to end, its subject's data may be kept but must
-- not be used: consent.Allowed and its SQL form ask this index.
CREATE INDEX erasure_requests_subject ON erasure_requests(subject_id) WHERE subject_id IS NOT NULL;

-- +goose Down
DROP INDEX erasure_requests_subject;
