-- +goose Up
-- SQLite only (tables without a rowid); PostgreSQL keeps rows in heaps either way.
SELECT 1;

-- +goose Down
SELECT 1;
