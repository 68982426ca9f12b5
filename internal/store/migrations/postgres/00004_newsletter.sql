-- +goose Up
-- newsletter: people who receive marketing mail, with or without an account. subject_id
-- is the consent subject: the subscriber's own id, or the account's once linked.
CREATE TABLE subscribers (
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
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT
);
CREATE INDEX subscribers_subject ON subscribers(subject_id);
CREATE INDEX subscribers_status ON subscribers(status, subject_id);

-- newsletter: double opt-in links (the id is the SHA-256 of the token).
CREATE TABLE subscriber_tokens (
    id            TEXT PRIMARY KEY,
    subscriber_id TEXT NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    evidence      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX subscriber_tokens_subscriber ON subscriber_tokens(subscriber_id);

-- newsletter: keyed hashes of addresses that must not be mailed for a purpose ('*': any),
-- after an unsubscribe or an erasure, so that an old import cannot bring them back.
CREATE TABLE suppressions (
    hash    TEXT NOT NULL,
    purpose TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (hash, purpose)
);

-- newsletter: campaigns written by staff.
CREATE TABLE campaigns (
    id         TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);

-- newsletter: who a campaign goes to, and how far sending got.
CREATE TABLE campaign_deliveries (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    subject_id  TEXT NOT NULL,
    token_id    TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, subject_id)
);
CREATE INDEX campaign_deliveries_state ON campaign_deliveries(campaign_id, state);
CREATE INDEX campaign_deliveries_subject ON campaign_deliveries(subject_id);

-- newsletter: opens measured by the beacon, only with the consent that covers them.
CREATE TABLE campaign_opens (
    campaign_id TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, subject_id)
);
CREATE INDEX campaign_opens_subject ON campaign_opens(subject_id);

-- governance: staff roles.
CREATE TABLE staff_roles (
    account_id TEXT NOT NULL,
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, role)
);

-- +goose Down
DROP TABLE staff_roles;
DROP TABLE campaign_opens;
DROP TABLE campaign_deliveries;
DROP TABLE campaigns;
DROP TABLE suppressions;
DROP TABLE subscriber_tokens;
DROP TABLE subscribers;
