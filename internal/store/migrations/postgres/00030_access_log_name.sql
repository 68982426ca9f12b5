-- +goose Up
-- files: an access log entry keeps the file's name as it was then, sealed under the
-- owner's key with the label of files.name (a copy of the file's own ciphertext), so
-- "Deleted: report.pdf" outlives the file and goes with the owner's erasure. NULL on
-- entries written before it: those show the file's current name, if it still exists.
ALTER TABLE file_access_log ADD COLUMN name TEXT;

-- +goose Down
ALTER TABLE file_access_log DROP COLUMN name;
