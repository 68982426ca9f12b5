-- +goose Up
-- vault: data keys are wrapped under a key-encryption key (KEK) that changes every
-- epoch by a one-way ratchet; a node keeps only the current epoch's KEK. kek_state is
-- the one row the nodes agree on: the epoch every data key is wrapped at (or target,
-- while a rotation runs), the id of that epoch's KEK (so a node checks the key it
-- derived), and when the epoch and the rotation began. Keys wrapped by the master key
-- of earlier releases are epoch 0: that master key is the KEK of epoch 0.
ALTER TABLE vault_keys ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vault_keys DROP COLUMN master_id;

CREATE TABLE kek_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    epoch      INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    target     INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    target_at  INTEGER NOT NULL
) STRICT;

-- vault: each epoch's KEK encrypted to the operator's offline backup keys (age), so a
-- backup can be restored after the nodes destroyed that epoch's KEK. Kept for the
-- retention of backups, then deleted.
CREATE TABLE kek_escrow (
    epoch      INTEGER PRIMARY KEY,
    key_id     TEXT NOT NULL,
    recipients TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE kek_escrow;
DROP TABLE kek_state;
ALTER TABLE vault_keys ADD COLUMN master_id TEXT NOT NULL DEFAULT '';
ALTER TABLE vault_keys DROP COLUMN epoch;
