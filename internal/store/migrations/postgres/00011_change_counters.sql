-- +goose Up
-- A number per kind of change, raised in the transaction of every change of that kind:
-- work prepared outside the writer (an import's batch, checked against the suppressions
-- on another connection) tells within its transaction whether what it read still holds,
-- and asks again only when it does not. A transaction relying on it shares a lock of
-- the same name (store.Tx.Lock) that every change takes alone, so a change cannot
-- commit between its check and its own commit.
CREATE TABLE change_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counters (name, value) VALUES ('suppressions', 0);

-- +goose Down
DROP TABLE change_counters;
