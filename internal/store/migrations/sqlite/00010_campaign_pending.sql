-- +goose Up
-- newsletter: sending reads a campaign's pending deliveries in token order, a batch
-- after the last one read; without this index each batch walked the tokens of every
-- campaign ever sent.
CREATE INDEX campaign_deliveries_pending ON campaign_deliveries(campaign_id, state, token_id);

-- +goose Down
DROP INDEX campaign_deliveries_pending;
