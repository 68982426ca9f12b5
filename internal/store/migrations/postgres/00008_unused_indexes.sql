-- +goose Up
-- Since audiences are read from the mailable table, no query looks subscribers up by
-- status or consent states up by purpose: these indexes were only written, at every
-- subscription, import and consent change.
DROP INDEX subscribers_status;
DROP INDEX consent_state_purpose;

-- +goose Down
CREATE INDEX consent_state_purpose ON consent_state(purpose, decision, subject_id);
CREATE INDEX subscribers_status ON subscribers(status, subject_id);
