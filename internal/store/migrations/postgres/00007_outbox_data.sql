-- +goose Up
-- mail: a queued mail keeps its template's data (a small JSON object) instead of its
-- rendered bodies, and is rendered when it is handed over; rows queued before keep their
-- bodies (data is empty). Messages are found by recipient with a scan: the table holds
-- seconds of mail, and one index fewer is written with every message.
ALTER TABLE mail_outbox ADD COLUMN data TEXT NOT NULL DEFAULT '';
DROP INDEX mail_outbox_recipient;

-- +goose Down
CREATE INDEX mail_outbox_recipient ON mail_outbox(recipient);
ALTER TABLE mail_outbox DROP COLUMN data;
