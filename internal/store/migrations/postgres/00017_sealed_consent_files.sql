-- +goose Up
-- consent, files: personal columns hold values sealed under their subject's data key
-- (base64 text). Rows an earlier release wrote in plain text are sealed at start and
-- are found by these partial indexes, which are empty once that is done: a consent
-- event whose evidence is still JSON (a sealed value never begins with "{"), a file
-- or an access whose new sealed column is NULL (new rows set it to 1).
ALTER TABLE files ADD COLUMN sealed INTEGER;
ALTER TABLE file_access_log ADD COLUMN sealed INTEGER;
CREATE INDEX files_plain ON files(id) WHERE sealed IS NULL;
CREATE INDEX file_access_log_plain ON file_access_log(id) WHERE sealed IS NULL;
CREATE INDEX consent_events_plain ON consent_events(id) WHERE substr(evidence, 1, 1) = '{' OR evidence = 'null';

-- +goose Down
DROP INDEX consent_events_plain;
DROP INDEX file_access_log_plain;
DROP INDEX files_plain;
ALTER TABLE file_access_log DROP COLUMN sealed;
ALTER TABLE files DROP COLUMN sealed;
