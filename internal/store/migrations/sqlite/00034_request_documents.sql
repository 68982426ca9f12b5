-- +goose Up
-- requests: a copy of an identity document sent with a request made without logging
-- in, and the one-time link that delivers an access or portability request's data.
-- document_object names the document's object in the blob store (a random name; the
-- content is sealed under the request's own data key, and the object is deleted when
-- the request closes); document_type is PDF, JPEG or PNG as found from the content.
-- download_hash is the SHA-256 of the link's token, never the token; download_used_at
-- says the link was used, so a second use is told so.
ALTER TABLE privacy_requests ADD COLUMN document_object TEXT;
ALTER TABLE privacy_requests ADD COLUMN document_type TEXT;
ALTER TABLE privacy_requests ADD COLUMN document_size INTEGER;
ALTER TABLE privacy_requests ADD COLUMN download_hash TEXT;
ALTER TABLE privacy_requests ADD COLUMN download_expires INTEGER;
ALTER TABLE privacy_requests ADD COLUMN download_used_at INTEGER;
CREATE UNIQUE INDEX privacy_requests_download ON privacy_requests(download_hash) WHERE download_hash IS NOT NULL;
-- Tidy finds the documents of closed requests to delete.
CREATE INDEX privacy_requests_document ON privacy_requests(closed_at) WHERE document_object IS NOT NULL;

-- +goose Down
DROP INDEX privacy_requests_document;
DROP INDEX privacy_requests_download;
ALTER TABLE privacy_requests DROP COLUMN download_used_at;
ALTER TABLE privacy_requests DROP COLUMN download_expires;
ALTER TABLE privacy_requests DROP COLUMN download_hash;
ALTER TABLE privacy_requests DROP COLUMN document_size;
ALTER TABLE privacy_requests DROP COLUMN document_type;
ALTER TABLE privacy_requests DROP COLUMN document_object;
