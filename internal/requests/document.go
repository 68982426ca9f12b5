package requests

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/document"
	"steward/internal/store"
	"steward/internal/vault"
)

// A copy of an identity document sent with a request made without logging in. It is
// held in memory while it is checked (at most MaxDocument bytes: the form's other
// fields are checked first, and its type is found from its content, so nothing is
// written before the whole request is good), then streamed, sealed under the request's
// own data key, into the blob store under a random name. It goes when the request
// closes: deleted by the close if it can be, else by Tidy within the hour, and its key
// is shredded a day later in any case.

// Document is a file sent as proof of identity.
type Document = document.Upload

// DocumentInfo describes a request's stored document.
type DocumentInfo = document.Info

// documentObjects is where documents live in the blob store.
const documentObjects = "requests/"

// DefaultMaxDocument is the document size limit when the config gives none.
const DefaultMaxDocument = 10 << 20

// MaxDocument is the largest identity document a request may carry.
func (s *Service) MaxDocument() int64 { return s.cfg.MaxDocument }

// DocumentLimit says the size limit as people read it.
func DocumentLimit(max int64) string { return document.Limit(max) }

// checkDocument reads the document (at most max bytes) and finds its type from its
// content (document.Check).
func checkDocument(d Document, max int64) ([]byte, string, error) {
	return document.Check(d, max, apperr.Field("document", "document_empty", "is empty: choose the file of your document"))
}

// putDocument seals data under key into a new object, streaming, and returns the
// object's name.
func (s *Service) putDocument(ctx context.Context, key *vault.Key, data []byte) (string, error) {
	name := documentObjects + newID()
	if err := document.Put(ctx, s.cfg.Blobs, key, name, data); err != nil {
		return "", fmt.Errorf("requests: document: %w", err)
	}
	return name, nil
}

var errNoDocument = apperr.New(apperr.NotFound, "document_not_found", "this request has no identity document (or it was deleted when the request closed)")

// Document opens a request's identity document for staff: its type and size and the
// decrypted content, which the caller closes. Every opening is an event of the request
// and an entry of the audit log.
func (s *Service) Document(ctx context.Context, id string, by Actor) (DocumentInfo, io.ReadCloser, error) {
	var info DocumentInfo
	var object string
	var key *vault.Key
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		req, k, err := s.load(ctx, tx, id)
		if errors.Is(err, errClosed) {
			return errNoDocument
		}
		if err != nil {
			return err
		}
		var obj, ctype sql.NullString
		var size sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT document_object, document_type, document_size FROM privacy_requests WHERE id = $1`, id).
			Scan(&obj, &ctype, &size); err != nil {
			return fmt.Errorf("requests: document: %w", err)
		}
		if !obj.Valid {
			return errNoDocument
		}
		object, key, info = obj.String, k, DocumentInfo{ContentType: ctype.String, Size: size.Int64}
		return s.event(ctx, tx, k, req, ActionDocument, req.State, req.State, by, "")
	})
	if err != nil {
		return DocumentInfo{}, nil, err
	}
	rc, err := s.cfg.Blobs.Open(ctx, object, 0, -1)
	if errors.Is(err, blob.ErrNotFound) {
		return DocumentInfo{}, nil, errNoDocument
	}
	if err != nil {
		return DocumentInfo{}, nil, fmt.Errorf("requests: document: %w", err)
	}
	plain, err := key.Decrypt(rc)
	if err != nil {
		rc.Close()
		return DocumentInfo{}, nil, fmt.Errorf("requests: document: %w", err)
	}
	return info, readCloser{plain, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// dropDocuments deletes the documents of closed requests: the object, then the
// columns that named it. A failure is left for the next Tidy (the key is shredded in
// any case a day after the close). It returns how many it deleted.
func (s *Service) dropDocuments(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, document_object FROM privacy_requests WHERE document_object IS NOT NULL AND closed_at IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("requests: documents: %w", err)
	}
	type doc struct{ id, object string }
	var list []doc
	for rows.Next() {
		var d doc
		if err := rows.Scan(&d.id, &d.object); err != nil {
			rows.Close()
			return 0, fmt.Errorf("requests: documents: %w", err)
		}
		list = append(list, d)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("requests: documents: %w", err)
	}
	n := 0
	for _, d := range list {
		if err := s.dropDocument(ctx, d.id, d.object); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// dropDocument deletes one document's object, then forgets it.
func (s *Service) dropDocument(ctx context.Context, id, object string) error {
	if err := s.cfg.Blobs.Delete(ctx, object); err != nil {
		return fmt.Errorf("requests: deleting a document: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE privacy_requests SET document_object = NULL, document_type = NULL, document_size = NULL
		WHERE id = $1 AND document_object = $2`, id, object); err != nil {
		return fmt.Errorf("requests: deleting a document: %w", err)
	}
	return nil
}

// closedDocument deletes the document of a request that has just closed; what cannot
// be deleted now is left to Tidy, which runs hourly.
func (s *Service) closedDocument(ctx context.Context, req Request) {
	if !Closed(req.State) || req.Requester != Visitor || s.cfg.Blobs == nil {
		return
	}
	var obj sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT document_object FROM privacy_requests WHERE id = $1`, req.ID).Scan(&obj)
	if err == nil && obj.Valid {
		err = s.dropDocument(ctx, req.ID, obj.String)
	}
	if err != nil {
		s.log.Warn("requests: the document of a closed request is left for the hourly tidy", "request", req.ID, "err", err)
	}
}

// orphanAge is how old an object must be before a sweep deletes it as an orphan: a
// submission stores its document just before its row commits.
const orphanAge = time.Hour

// dropOrphans deletes document objects no request names (a submission that crashed
// between storing its document and committing its row; its key never committed, so
// the object could not be opened anyway). It returns how many it deleted.
func (s *Service) dropOrphans(ctx context.Context) (int, error) {
	if s.cfg.Blobs == nil {
		return 0, nil
	}
	cutoff := s.now().Add(-orphanAge)
	var old []string
	if err := s.cfg.Blobs.List(ctx, documentObjects, func(i blob.Info) error {
		if i.Modified.Before(cutoff) {
			old = append(old, i.Name)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("requests: orphans: %w", err)
	}
	n := 0
	for _, name := range old {
		var named int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE document_object = $1`, name).Scan(&named); err != nil {
			return n, fmt.Errorf("requests: orphans: %w", err)
		}
		if named > 0 {
			continue
		}
		if err := s.cfg.Blobs.Delete(ctx, name); err != nil {
			return n, fmt.Errorf("requests: orphans: %w", err)
		}
		n++
	}
	return n, nil
}
