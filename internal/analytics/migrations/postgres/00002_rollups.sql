-- +goose Up
-- Richer rollups (issue 15, item 7): see the SQLite migration of the same number.
ALTER TABLE events ADD COLUMN country TEXT NOT NULL DEFAULT '';
-- The rollup reads one day of every site: without this index each day's rollup read
-- the whole table (events_site_day leads with the site).
CREATE INDEX events_day ON events (day);

CREATE TABLE daily_dims (
    site     TEXT NOT NULL,
    day      BIGINT NOT NULL,
    dim      TEXT NOT NULL,
    rest     SMALLINT NOT NULL,
    item     TEXT NOT NULL,
    next     TEXT NOT NULL,
    visitors BIGINT NOT NULL,
    hits     BIGINT NOT NULL,
    PRIMARY KEY (site, day, dim, rest, item, next)
);
CREATE INDEX daily_dims_day ON daily_dims (day);
