-- +goose Up
-- mail: the outbox is drained by a dispatcher on each node, which claims rows for a
-- while (claimed_until) and backs off after failures (attempts).
ALTER TABLE mail_outbox ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX mail_outbox_claim ON mail_outbox(claimed_until, created_at);

-- +goose Down
DROP INDEX mail_outbox_claim;
ALTER TABLE mail_outbox DROP COLUMN attempts;
ALTER TABLE mail_outbox DROP COLUMN claimed_until;
