-- +goose Up
-- The analytics store (internal/analytics): kept apart from Steward's own database, in
-- a file of its own. It holds no subject id, email, raw IP or token: visitors are a hash
-- under a salt of the day (salts), addresses are truncated networks (/24, /48).

-- salts: the salt of each day's visitor hash. UNLOGGED: its rows never enter the WAL
-- (nor replicas, nor archived WAL); once the day is over the table is truncated, which
-- gives it a new file and unlinks the old one, and today's salt is written again.
CREATE UNLOGGED TABLE salts (
    day  BIGINT PRIMARY KEY, -- days since 1970-01-01, UTC
    salt BYTEA NOT NULL
);

-- request_log: one row per request the site answered (P-TECH-1), kept --request-log-days.
CREATE TABLE request_log (
    at       BIGINT NOT NULL, -- Unix milliseconds
    method   TEXT NOT NULL,
    path     TEXT NOT NULL,    -- query stripped, emails and ids cut out
    status   INTEGER NOT NULL,
    bytes    BIGINT NOT NULL,
    micros   BIGINT NOT NULL, -- duration
    browser  TEXT NOT NULL,    -- family only
    net      TEXT NOT NULL     -- the client's network: /24 (IPv4) or /48 (IPv6)
);
CREATE INDEX request_log_at ON request_log (at);

-- events: beacons and page events, kept --analytics-events-days, rolled up per day.
CREATE TABLE events (
    at       BIGINT NOT NULL,
    day      BIGINT NOT NULL,
    site     TEXT NOT NULL,
    kind     TEXT NOT NULL,    -- pageview, outbound, event
    path     TEXT NOT NULL,
    referrer TEXT NOT NULL,    -- host and path, cleaned; '' when none
    name     TEXT NOT NULL,    -- an event's name, an outbound link's target
    props    TEXT NOT NULL,    -- JSON object of short strings; '' when none
    campaign TEXT NOT NULL,    -- utm_source, utm_medium, utm_campaign, cleaned; '' when none
    visitor  BIGINT NOT NULL, -- 64 bits of HMAC(salt of the day, site, IP, user agent)
    browser  TEXT NOT NULL,
    bot      SMALLINT NOT NULL -- 1: a known robot, counted apart
);
CREATE INDEX events_site_day ON events (site, day);
CREATE INDEX events_at ON events (at);

-- daily_sites and daily_pages: the rollup of each site's day.
CREATE TABLE daily_sites (
    site      TEXT NOT NULL,
    day       BIGINT NOT NULL,
    visitors  BIGINT NOT NULL,
    pageviews BIGINT NOT NULL,
    events    BIGINT NOT NULL,
    bots      BIGINT NOT NULL,
    PRIMARY KEY (site, day)
);
CREATE TABLE daily_pages (
    site      TEXT NOT NULL,
    day       BIGINT NOT NULL,
    path      TEXT NOT NULL,
    visitors  BIGINT NOT NULL,
    pageviews BIGINT NOT NULL,
    PRIMARY KEY (site, day, path)
);
