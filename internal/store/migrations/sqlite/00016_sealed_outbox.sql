-- +goose Up
-- mail: a queued message is sealed under the data key of the subject it is about
-- (subject_id: the member, the child of a guardian's mail, the subscriber): recipient
-- and template data are ciphertext, and the subject's erasure takes its queued mail by
-- subject_id. A row of an earlier release (subject_id NULL) holds plain text and is
-- sent as it is. No index: the table holds seconds of mail, and an erasure's scan of
-- it costs less than an index written with every message.
ALTER TABLE mail_outbox ADD COLUMN subject_id TEXT;

-- governance: the audit log's IP and detail are sealed under the account's data key.
-- A row without an account (a failed login for an unknown address) keeps no IP, only
-- its blind index (ip_idx), indexed for staff who look up what an address did.
-- sealed is 1 for rows in this form; rows an earlier release wrote (0) are sealed at
-- start, found through the partial index, which stays empty afterwards.
ALTER TABLE audit_log ADD COLUMN ip_idx TEXT;
ALTER TABLE audit_log ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_log_ip_idx ON audit_log(ip_idx) WHERE ip_idx IS NOT NULL;
CREATE INDEX audit_log_unsealed ON audit_log(id) WHERE sealed = 0;

-- +goose Down
DROP INDEX audit_log_unsealed;
DROP INDEX audit_log_ip_idx;
ALTER TABLE audit_log DROP COLUMN sealed;
ALTER TABLE audit_log DROP COLUMN ip_idx;
ALTER TABLE mail_outbox DROP COLUMN subject_id;
