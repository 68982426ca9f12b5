-- +goose Up
-- governance: the audit log becomes tamper-evident (docs/design.md, "The audit log").
-- account_idx replaces account_id: a keyed hash (blind index) of the account's id, so
-- an erasure leaves the entries' bytes as they are (the chain stays verifiable) and
-- no plain id behind; account_id is kept only for the rows of an earlier release
-- until the start moves them to account_idx (SealLegacy). mac is an HMAC of the
-- entry's content under the audit key (kept outside the database), written with the
-- entry: a row inserted by hand has none that matches. seq and hash are assigned by
-- the chainer, in one transaction for a batch: seq numbers the chain from 1, hash is
-- the SHA-256 of the entry's stored bytes and the hash of the entry before it.
ALTER TABLE audit_log ADD COLUMN account_idx TEXT;
ALTER TABLE audit_log ADD COLUMN mac TEXT;
ALTER TABLE audit_log ADD COLUMN seq INTEGER;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
DROP INDEX audit_log_account;
CREATE INDEX audit_log_account ON audit_log(account_id) WHERE account_id IS NOT NULL;
CREATE INDEX audit_log_account_idx ON audit_log(account_idx) WHERE account_idx IS NOT NULL;
CREATE UNIQUE INDEX audit_log_seq ON audit_log(seq) WHERE seq IS NOT NULL;
CREATE INDEX audit_log_unchained ON audit_log(id) WHERE seq IS NULL;
-- The rows written before this migration have no MAC: marked, they join the chain as
-- its first entries, and verify accepts an entry without a MAC only there.
UPDATE audit_log SET mac = 'legacy';
-- Signed checkpoints: the chain's head (seq, hash) at a time, signed with Ed25519
-- under the audit key; key_id names the public key (first 16 hex digits of its
-- SHA-256).
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE audit_checkpoints;
DROP INDEX audit_log_unchained;
DROP INDEX audit_log_seq;
DROP INDEX audit_log_account_idx;
DROP INDEX audit_log_account;
CREATE INDEX audit_log_account ON audit_log(account_id);
ALTER TABLE audit_log DROP COLUMN hash;
ALTER TABLE audit_log DROP COLUMN seq;
ALTER TABLE audit_log DROP COLUMN mac;
ALTER TABLE audit_log DROP COLUMN account_idx;
