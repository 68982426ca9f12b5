-- +goose Up
-- campaign_deliveries_pending (campaign_id, state, token_id) serves every lookup by
-- campaign and state, the counts included: the shorter index was only written, at
-- every delivery a campaign starts and every batch it marks.
DROP INDEX campaign_deliveries_state;

-- +goose Down
CREATE INDEX campaign_deliveries_state ON campaign_deliveries(campaign_id, state);
