-- +goose Up
-- vault: each subject's data key, wrapped (AES-256-GCM) by the master key.
CREATE TABLE vault_keys (
    subject_id TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    master_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- files: members' files; the object holds the ciphertext under a random name.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT NOT NULL DEFAULT '',
    object       TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX files_owner ON files(owner_id, state);

-- files: every upload, download, delete and refused access.
CREATE TABLE file_access_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id   TEXT NOT NULL,
    owner_id  TEXT NOT NULL,
    actor_id  TEXT,
    action    TEXT NOT NULL,
    ip        TEXT NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX file_access_log_owner ON file_access_log(owner_id);
CREATE INDEX file_access_log_actor ON file_access_log(actor_id);

-- +goose Down
DROP TABLE file_access_log;
DROP TABLE files;
DROP TABLE vault_keys;
