-- +goose Up
-- A number per kind of change, raised in the transaction of every change of that kind:
-- work prepared outside the writer (an import's batch, checked against the suppressions
-- on a read connection) tells within its transaction whether what it read still holds,
-- and asks again only when it does not.
CREATE TABLE change_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO change_counters (name, value) VALUES ('suppressions', 0);

-- +goose Down
DROP TABLE change_counters;
