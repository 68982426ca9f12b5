-- +goose Up
-- account: personal columns hold values sealed under the member's data key (base64
-- text); logins and lookups by address go through email_idx, the blind index of the
-- current address. A row whose email_idx is NULL was written by an earlier release:
-- Steward seals it at start. (The inline UNIQUE of the sealed address stays: SQLite
-- cannot drop it without rebuilding the table, and sealed values never repeat.)
ALTER TABLE accounts ADD COLUMN email_idx TEXT;
CREATE UNIQUE INDEX accounts_email_idx ON accounts(email_idx);

-- +goose Down
DROP INDEX accounts_email_idx;
ALTER TABLE accounts DROP COLUMN email_idx;
