-- +goose Up
-- Every reader of events now reads a day (the rollups, attribution) and the purge
-- deletes whole days: the index on day is the only one events needs. Two indexes
-- fewer make every beacon's insert cheaper (the busiest write of the store).
DROP INDEX events_site_day;
DROP INDEX events_at;

-- +goose Down
CREATE INDEX events_site_day ON events (site, day);
CREATE INDEX events_at ON events (at);
