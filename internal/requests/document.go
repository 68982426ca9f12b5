package requests

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"mime"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
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
type Document struct {
	Name        string // the file's name as sent ("" if none)
	ContentType string // the type the client declared ("" if none)
	Body        io.Reader
}

// DocumentInfo describes a request's stored document.
type DocumentInfo struct {
	ContentType string // application/pdf, image/jpeg or image/png, from the content
	Size        int64
}

// Extension is the file name extension of the document's type.
func (d DocumentInfo) Extension() string {
	for _, t := range docTypes {
		if t.ctype == d.ContentType {
			return t.exts[0]
		}
	}
	return ".bin"
}

// docTypes are the types a document may have, told by their first bytes.
var docTypes = []struct {
	magic []byte
	ctype string
	name  string
	exts  []string
}{
	{[]byte("%PDF-"), "application/pdf", "PDF", []string{".pdf"}},
	{[]byte{0xFF, 0xD8, 0xFF}, "image/jpeg", "JPEG", []string{".jpg", ".jpeg"}},
	{[]byte("\x89PNG\r\n\x1a\n"), "image/png", "PNG", []string{".png"}},
}

// documentObjects is where documents live in the blob store.
const documentObjects = "requests/"

// DefaultMaxDocument is the document size limit when the config gives none.
const DefaultMaxDocument = 10 << 20

// MaxDocument is the largest identity document a request may carry.
func (s *Service) MaxDocument() int64 { return s.cfg.MaxDocument }

// DocumentLimit says the size limit as people read it.
func DocumentLimit(max int64) string {
	if max >= 1<<20 && max%(1<<20) == 0 {
		return fmt.Sprintf("at most %d MiB", max>>20)
	}
	return fmt.Sprintf("at most %d bytes", max)
}

// checkDocument reads the document (at most max bytes) and finds its type from its
// content. A file of another type, over the limit, or whose name or declared type says
// another type than its content is refused with the field named.
func checkDocument(d Document, max int64) ([]byte, string, error) {
	data, err := io.ReadAll(io.LimitReader(d.Body, max+1))
	if err != nil {
		return nil, "", apperr.Field("document", "upload_interrupted", "could not be read: the upload was interrupted; nothing was stored")
	}
	if int64(len(data)) > max {
		return nil, "", &apperr.Error{Kind: apperr.TooLarge, Code: "document_too_large", Field: "document",
			Message: "is too large: " + DocumentLimit(max)}
	}
	if len(data) == 0 {
		return nil, "", apperr.Field("document", "document_empty", "is empty: choose the file of your document")
	}
	found := -1
	for i, t := range docTypes {
		if bytes.HasPrefix(data, t.magic) {
			found = i
			break
		}
	}
	if found < 0 {
		return nil, "", apperr.Field("document", "document_type", "must be a PDF, JPEG or PNG file, and its content is none of these")
	}
	t := docTypes[found]
	if ext := strings.ToLower(filepath.Ext(d.Name)); ext != "" && !slices.Contains(t.exts, ext) {
		return nil, "", apperr.Field("document", "document_mismatch",
			fmt.Sprintf("is named %s but its content is a %s file: send the file as it is, not renamed", ext, t.name))
	}
	if ct, _, _ := mime.ParseMediaType(d.ContentType); ct != "" && ct != "application/octet-stream" && ct != t.ctype &&
		!(t.ctype == "image/jpeg" && ct == "image/pjpeg") {
		return nil, "", apperr.Field("document", "document_mismatch",
			fmt.Sprintf("is sent as %s but its content is a %s file", ct, t.name))
	}
	return data, t.ctype, nil
}

// putDocument seals data under key into a new object, streaming (the vault's
// segmented AEAD) so that no second copy is held, and returns the object's name.
func (s *Service) putDocument(ctx context.Context, key *vault.Key, data []byte) (string, error) {
	if s.cfg.Blobs == nil {
		return "", errors.New("requests: no blob store for documents")
	}
	pr, pw := io.Pipe()
	go func() {
		enc, err := key.Encrypt(pw)
		if err == nil {
			if _, err = enc.Write(data); err == nil {
				err = enc.Close()
			}
		}
		pw.CloseWithError(err) // nil: the reader sees EOF
	}()
	name := documentObjects + newID()
	_, err := s.cfg.Blobs.Put(ctx, name, pr, vault.CiphertextSize(int64(len(data))))
	pr.CloseWithError(errors.New("requests: document stored")) // ends the writer if Put stopped early
	if err != nil {
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
