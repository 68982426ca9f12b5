-- +goose Up
-- accounts: the blind index (keyed hash) of a child's guardian's address, the same
-- index as email_idx, so that the guardian's own account finds the children it agreed
-- to. Filled at registration; accounts registered before are indexed at start.
ALTER TABLE accounts ADD COLUMN guardian_idx TEXT;
CREATE INDEX accounts_guardian_idx ON accounts(guardian_idx) WHERE guardian_idx IS NOT NULL;

-- +goose Down
DROP INDEX accounts_guardian_idx;
ALTER TABLE accounts DROP COLUMN guardian_idx;
