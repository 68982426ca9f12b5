-- +goose Up
-- account: members, their profile fields and per-field visibility.
CREATE TABLE accounts (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE,
    pending_email         TEXT,
    email_verified_at     BIGINT,
    password_hash         TEXT NOT NULL,
    status                TEXT NOT NULL,
    name                  TEXT,
    phone                 TEXT,
    home_address          TEXT,
    business_address      TEXT,
    birthdate             TEXT NOT NULL,
    country               TEXT NOT NULL,
    guardian_email        TEXT,
    guardian_confirmed_at BIGINT,
    public_mask           BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- account: server-side sessions; the id is the SHA-256 of the token, never the token.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);

-- account: one-time tokens (email verification, password reset, guardian consent).
CREATE TABLE account_tokens (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX account_tokens_account ON account_tokens(account_id);

-- governance: the security audit log.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    account_id TEXT,
    ip         TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account_id);

-- mail: the outbox; a row lives until the message is handed to the sender.
CREATE TABLE mail_outbox (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    template   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mail_outbox_recipient ON mail_outbox(recipient);

-- rights: erasure requests (durable, resumable) and the ledger of keyed hashes.
CREATE TABLE erasure_requests (
    id            TEXT PRIMARY KEY,
    subject_id    TEXT,
    subject_email TEXT,
    state         TEXT NOT NULL,
    steps_done    TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL,
    last_error    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT
);

CREATE TABLE erasure_ledger (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    erased_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE erasure_ledger;
DROP TABLE erasure_requests;
DROP TABLE mail_outbox;
DROP TABLE audit_log;
DROP TABLE account_tokens;
DROP TABLE sessions;
DROP TABLE accounts;
