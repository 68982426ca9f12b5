-- +goose Up
-- Richer rollups (issue 15, item 7). events.country is the ISO code of the client's
-- country, looked up at ingest in an embedded table from the full address (which is
-- not kept); 'ZZ' when unknown, '' for events written before this column.
ALTER TABLE events ADD COLUMN country TEXT NOT NULL DEFAULT '';
-- The rollup reads one day of every site: without this index each day's rollup read
-- the whole table (events_site_day leads with the site).
CREATE INDEX events_day ON events (day);

-- daily_dims: each site's day broken down, recounted by Rollup. dim is one of total
-- (item ''), page, entry, exit, referrer (host; '' for none), country, browser, event
-- (a custom event's name), outbound (a link's host) and transition (item: the page,
-- next: the page viewed next by the same visitor hash that day). visitors are the
-- distinct visitor hashes of the day in the row, hits its pageviews, events or
-- transitions. Each (site, day, dim) keeps its top rows; rest = 1 is the one row that
-- sums the others (item and next '').
CREATE TABLE daily_dims (
    site     TEXT NOT NULL,
    day      INTEGER NOT NULL,
    dim      TEXT NOT NULL,
    rest     INTEGER NOT NULL,
    item     TEXT NOT NULL,
    next     TEXT NOT NULL,
    visitors INTEGER NOT NULL,
    hits     INTEGER NOT NULL,
    PRIMARY KEY (site, day, dim, rest, item, next)
) STRICT;
CREATE INDEX daily_dims_day ON daily_dims (day);
