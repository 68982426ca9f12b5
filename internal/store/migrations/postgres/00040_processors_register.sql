-- +goose Up
-- processors: the register of processors (GDPR art. 28, 30), seeded from the purposes
-- file at first start and kept by admins and the DPO from then on. purposes and
-- categories are comma-separated. state: active, pending (added as a sale, awaiting a
-- second admin's or DPO's approval) or retired. proposed holds, as JSON, a change that
-- awaits approval (marking a processor a sale), with who proposed it and when.
CREATE TABLE processors (
    key         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    service     TEXT NOT NULL,
    purposes    TEXT NOT NULL,
    categories  TEXT NOT NULL,
    country     TEXT NOT NULL,
    transfer    TEXT NOT NULL,
    safeguard   TEXT NOT NULL,
    contract    TEXT NOT NULL,
    notify_url  TEXT NOT NULL,
    sale        INTEGER NOT NULL,
    state       TEXT NOT NULL,
    proposed    TEXT,
    proposed_by TEXT,
    proposed_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- processor_history: every change of the register, old and new as JSON; changed_by is
-- the staff member's account id (NULL for the seed), blanked when they are erased.
CREATE TABLE processor_history (
    id         TEXT PRIMARY KEY,
    processor  TEXT NOT NULL,
    action     TEXT NOT NULL,
    changed_by TEXT,
    old_value  TEXT NOT NULL,
    new_value  TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX processor_history_processor ON processor_history(processor, id);
CREATE INDEX processor_history_changed_by ON processor_history(changed_by);

-- transfers: each kind of transfer outside the deployment's region (GDPR ch. V): the
-- processor, where, which categories, under which safeguard, from when until when.
CREATE TABLE transfers (
    id         TEXT PRIMARY KEY,
    processor  TEXT NOT NULL,
    country    TEXT NOT NULL,
    categories TEXT NOT NULL,
    transfer   TEXT NOT NULL,
    safeguard  TEXT NOT NULL,
    since      BIGINT NOT NULL,
    until_at   BIGINT
);
CREATE INDEX transfers_processor ON transfers(processor, since);

-- +goose Down
DROP TABLE transfers;
DROP TABLE processor_history;
DROP TABLE processors;
