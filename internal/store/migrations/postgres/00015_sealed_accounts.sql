-- +goose Up
-- account: personal columns hold values sealed under the member's data key (base64
-- text); logins and lookups by address go through email_idx, the blind index of the
-- current address. A row whose email_idx is NULL was written by an earlier release:
-- Steward seals it at start. The unique constraint moves from the (now sealed,
-- randomized) address to its blind index.
ALTER TABLE accounts ADD COLUMN email_idx TEXT;
CREATE UNIQUE INDEX accounts_email_idx ON accounts(email_idx);
ALTER TABLE accounts DROP CONSTRAINT accounts_email_key;

-- +goose Down
ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email);
DROP INDEX accounts_email_idx;
ALTER TABLE accounts DROP COLUMN email_idx;
