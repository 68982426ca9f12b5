-- +goose Up
-- Staff sign in with a second factor (issue 14, item 1). A session records when it
-- passed the second factor (a staff role is usable only then) and when its holder last
-- proved who they are (sensitive actions ask again after a few minutes).
ALTER TABLE sessions ADD COLUMN second_factor_at INTEGER;
ALTER TABLE sessions ADD COLUMN reauth_at INTEGER;

-- second_factors: an account's TOTP secret, sealed under its data key; confirmed_at is
-- NULL while enrolling. last_step is the time step of the last code accepted: a code
-- is accepted once.
CREATE TABLE second_factors (
    account_id   TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- recovery_codes: single-use codes, kept as keyed hashes.
CREATE TABLE recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (account_id, code_hash)
) STRICT;

-- +goose Down
DROP TABLE recovery_codes;
DROP TABLE second_factors;
ALTER TABLE sessions DROP COLUMN reauth_at;
ALTER TABLE sessions DROP COLUMN second_factor_at;
