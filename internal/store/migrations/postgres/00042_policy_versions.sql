-- +goose Up
-- policy: the privacy policy's versions. A draft can be edited; a published version is
-- immutable (its text, summary and kind). effective_at is when it takes effect;
-- applied_at when it was applied (a material version's affected purposes asked again,
-- its mail to the members queued). purposes lists, comma-separated, the purposes whose
-- consents a material version asks again. The mail to every member goes in batches:
-- mail_cursor is the last account mailed, mailed how many, mail_done_at when all were.
CREATE TABLE policy_versions (
    label        TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    material     INTEGER NOT NULL,
    controller   TEXT NOT NULL,
    purposes     TEXT NOT NULL,
    state        TEXT NOT NULL,
    effective_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    published_at BIGINT,
    applied_at   BIGINT,
    mail_cursor  TEXT NOT NULL DEFAULT '',
    mailed       INTEGER NOT NULL DEFAULT 0,
    mail_done_at BIGINT
);
CREATE INDEX policy_versions_effective ON policy_versions(effective_at);

-- policy: each member's acceptance of a version (at registration, and when they accept
-- a new one).
CREATE TABLE policy_acceptances (
    subject_id TEXT NOT NULL,
    version    TEXT NOT NULL,
    source     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (subject_id, version)
);

-- consent: the purposes whose consents are asked again since a material change of the
-- policy: a consent given before since counts as not given until confirmed again.
CREATE TABLE consent_reconfirm (
    purpose TEXT NOT NULL,
    version TEXT NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (purpose, version)
);

-- +goose Down
DROP TABLE consent_reconfirm;
DROP TABLE policy_acceptances;
DROP TABLE policy_versions;
