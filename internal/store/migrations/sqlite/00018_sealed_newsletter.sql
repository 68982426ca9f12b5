-- +goose Up
-- newsletter: a subscriber's address, names and company, the kept copies of the address
-- and first name in mailable, and the evidence of a confirmation link hold values
-- sealed under the subject's data key (base64 text). Lookups by address go through
-- email_hash, the blind index, which becomes the unique key. The address itself is no
-- longer unique: sealed values never repeat, and an index of them, in random order,
-- would cost every insert a page anywhere in it. SQLite drops an inline UNIQUE only by
-- rebuilding the table; subscriber_tokens, which refers to it, is rebuilt around it
-- (dropping subscribers while its links exist would delete them by the cascade).
CREATE TABLE subscribers_new (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL,
    email        TEXT NOT NULL,
    email_hash   TEXT NOT NULL,
    first_name   TEXT NOT NULL,
    last_name    TEXT NOT NULL,
    company      TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    account_id   TEXT,
    source       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER
) STRICT;
INSERT INTO subscribers_new (id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source,
    created_at, confirmed_at)
    SELECT id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source, created_at, confirmed_at
    FROM subscribers ORDER BY rowid;
CREATE TABLE subscriber_tokens_old (
    id            TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
INSERT INTO subscriber_tokens_old SELECT id, subscriber_id, evidence, created_at, expires_at FROM subscriber_tokens;
DROP TABLE subscriber_tokens;
DROP TABLE subscribers;
ALTER TABLE subscribers_new RENAME TO subscribers;
CREATE INDEX subscribers_subject ON subscribers(subject_id);
CREATE UNIQUE INDEX subscribers_email_hash ON subscribers(email_hash);
CREATE TABLE subscriber_tokens (
    id            TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    evidence      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
INSERT INTO subscriber_tokens (id, subscriber_id, evidence, created_at, expires_at)
    SELECT id, subscriber_id, evidence, created_at, expires_at FROM subscriber_tokens_old;
DROP TABLE subscriber_tokens_old;
CREATE INDEX subscriber_tokens_subscriber ON subscriber_tokens(subscriber_id);

-- newsletter: the subscribers an earlier release stored in plain text, which Steward
-- seals at start (with their mailable rows and links), then forgets here.
CREATE TABLE subscribers_unsealed (
    id TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
INSERT INTO subscribers_unsealed (id) SELECT id FROM subscribers;

-- +goose Down
DROP TABLE subscribers_unsealed;
CREATE TABLE subscribers_new (
    id           TEXT PRIMARY KEY,
    subject_id   TEXT NOT NULL,
    email        TEXT NOT NULL UNIQUE,
    email_hash   TEXT NOT NULL,
    first_name   TEXT NOT NULL,
    last_name    TEXT NOT NULL,
    company      TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    account_id   TEXT,
    source       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER
) STRICT;
INSERT INTO subscribers_new (id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source,
    created_at, confirmed_at)
    SELECT id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source, created_at, confirmed_at
    FROM subscribers ORDER BY rowid;
CREATE TABLE subscriber_tokens_old (
    id            TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
INSERT INTO subscriber_tokens_old SELECT id, subscriber_id, evidence, created_at, expires_at FROM subscriber_tokens;
DROP TABLE subscriber_tokens;
DROP TABLE subscribers;
ALTER TABLE subscribers_new RENAME TO subscribers;
CREATE INDEX subscribers_subject ON subscribers(subject_id);
CREATE TABLE subscriber_tokens (
    id            TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    evidence      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
INSERT INTO subscriber_tokens (id, subscriber_id, evidence, created_at, expires_at)
    SELECT id, subscriber_id, evidence, created_at, expires_at FROM subscriber_tokens_old;
DROP TABLE subscriber_tokens_old;
CREATE INDEX subscriber_tokens_subscriber ON subscriber_tokens(subscriber_id);
