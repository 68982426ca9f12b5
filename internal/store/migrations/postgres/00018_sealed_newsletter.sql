-- +goose Up
-- newsletter: a subscriber's address, names and company, the kept copies of the address
-- and first name in mailable, and the evidence of a confirmation link hold values
-- sealed under the subject's data key (base64 text). Lookups by address go through
-- email_hash, the blind index: the unique key moves from the (now sealed, randomized)
-- address to it.
CREATE UNIQUE INDEX subscribers_email_hash ON subscribers(email_hash);
ALTER TABLE subscribers DROP CONSTRAINT subscribers_email_key;

-- newsletter: the subscribers an earlier release stored in plain text, which Steward
-- seals at start (with their mailable rows and links), then forgets here.
CREATE TABLE subscribers_unsealed (
    id TEXT PRIMARY KEY
);
INSERT INTO subscribers_unsealed (id) SELECT id FROM subscribers;

-- +goose Down
DROP TABLE subscribers_unsealed;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_email_key UNIQUE (email);
DROP INDEX subscribers_email_hash;
