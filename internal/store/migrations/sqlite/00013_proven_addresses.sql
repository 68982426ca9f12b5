-- +goose Up
-- account: the blind index (vault.Index.Address, a keyed hash) of every address an
-- account proved, written in the transaction of the verification or confirmed change
-- that proved it. Until the account is erased each is the member's: the erasure
-- suppresses them and takes the mail to them out of the .eml folder. The addresses
-- themselves are not kept here.
CREATE TABLE account_addresses (
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    address_hash TEXT NOT NULL,
    proven_at    INTEGER NOT NULL,
    PRIMARY KEY (account_id, address_hash)
) STRICT, WITHOUT ROWID;
-- Who proved an address last: an address is one account's at a time.
CREATE INDEX account_addresses_hash ON account_addresses(address_hash);

-- rights: a running erasure request keeps the blind indexes of the addresses its
-- subject proved before the current one, comma-separated. NULL marks a request made
-- before, whose subject_email holds the addresses themselves joined by commas.
ALTER TABLE erasure_requests ADD COLUMN subject_proven TEXT;

-- +goose Down
ALTER TABLE erasure_requests DROP COLUMN subject_proven;
DROP TABLE account_addresses;
