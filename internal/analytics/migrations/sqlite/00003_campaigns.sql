-- +goose Up
-- Attribution without cookies (docs/analytics.md, "Campaigns and conversions").

-- conversions: a registration or a newsletter subscription happened, on a site, for a
-- visitor hash of that day, in that minute. Never who: no subject id, no address, no
-- time finer than the minute. Kept --analytics-events-days, as the events.
CREATE TABLE conversions (
    day     INTEGER NOT NULL, -- days since 1970-01-01, UTC
    minute  INTEGER NOT NULL, -- minutes since 1970-01-01, UTC
    site    TEXT NOT NULL,
    goal    TEXT NOT NULL,    -- registration, subscription
    visitor INTEGER NOT NULL  -- the day's visitor hash, as events.visitor
) STRICT;
CREATE INDEX conversions_day ON conversions (day);

-- daily_campaigns: each site's day per campaign key (source, medium, campaign), with
-- the conversions attributed to it by the same day's visitor hash.
CREATE TABLE daily_campaigns (
    site          TEXT NOT NULL,
    day           INTEGER NOT NULL,
    source        TEXT NOT NULL,
    medium        TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    visitors      INTEGER NOT NULL,
    pageviews     INTEGER NOT NULL,
    registrations INTEGER NOT NULL,
    subscriptions INTEGER NOT NULL,
    PRIMARY KEY (site, day, source, medium, campaign)
) STRICT;

