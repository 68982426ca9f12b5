-- +goose Up
-- newsletter: who may be mailed for which purpose now, kept with every change that can
-- alter it (consent, restriction, objection, confirmation, suppression, erasure), so
-- that resolving a campaign's audience is one range read instead of a rule evaluated
-- for every subscriber. Sending still checks each batch against the ledger itself.
CREATE TABLE mailable (
    purpose    TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    email      TEXT NOT NULL,
    first_name TEXT NOT NULL,
    PRIMARY KEY (purpose, subject_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX mailable_subject ON mailable(subject_id);

-- +goose Down
DROP TABLE mailable;
