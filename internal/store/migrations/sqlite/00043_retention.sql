-- +goose Up
-- retention: what each retention rule removed at each run (docs/retention.md). One row
-- per rule and run; counts and times only, never whom: the audit log says who asked
-- for a run by hand.
CREATE TABLE retention_runs (
    run_id      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    source      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    removed     INTEGER NOT NULL,
    warned      INTEGER NOT NULL,
    held        INTEGER NOT NULL,
    error       TEXT NOT NULL,
    PRIMARY KEY (run_id, rule)
) STRICT;
CREATE INDEX retention_runs_started ON retention_runs(started_at);
-- accounts: when the member last logged in (NULL: not since this release; the last
-- session's activity or the registration stands in), and when they were warned that
-- the account will be erased for inactivity (NULL: not warned, or logged in since).
ALTER TABLE accounts ADD COLUMN last_login_at INTEGER;
ALTER TABLE accounts ADD COLUMN inactive_warned_at INTEGER;
UPDATE accounts SET last_login_at = (SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.account_id = accounts.id);

-- +goose Down
ALTER TABLE accounts DROP COLUMN inactive_warned_at;
ALTER TABLE accounts DROP COLUMN last_login_at;
DROP INDEX retention_runs_started;
DROP TABLE retention_runs;
