-- +goose Up
-- ratelimit: one token bucket per key, shared by every node of a deployment. A key is a
-- limit's name and a blind index (keyed hash) of what it counts (an IP address, an
-- address, an account and IP pair), never the value. tat is the bucket's theoretical
-- arrival time (GCRA) in Unix milliseconds: a bucket whose tat has passed is full, as
-- good as absent, and is pruned.
CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY,
    tat    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE rate_limits;
