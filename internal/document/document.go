// Package document checks the documents people upload as evidence (a visitor's
// identity document, an authority's order) and stores them sealed in the blob store.
// A document is read into memory whole (at most the limit), its type found from its
// first bytes, and only then streamed, sealed under a data key, into a new object: a
// document refused stores nothing.
package document

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path/filepath"
	"slices"
	"strings"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/vault"
)

// Upload is a file as sent.
type Upload struct {
	Name        string // the file's name as sent ("" if none)
	ContentType string // the type the client declared ("" if none)
	Body        io.Reader
}

// Info describes a stored document.
type Info struct {
	ContentType string // application/pdf, image/jpeg or image/png, from the content
	Size        int64
}

// Extension is the file name extension of the document's type.
func (d Info) Extension() string {
	for _, t := range types {
		if t.ctype == d.ContentType {
			return t.exts[0]
		}
	}
	return ".bin"
}

// kind is a type a document may have, told by its first bytes.
type kind struct {
	magic []byte
	ctype string
	name  string
	exts  []string
}

// types are the types a document may have.
var types = []kind{
	{[]byte("%PDF-"), "application/pdf", "PDF", []string{".pdf"}},
	{[]byte{0xFF, 0xD8, 0xFF}, "image/jpeg", "JPEG", []string{".jpg", ".jpeg"}},
	{[]byte("\x89PNG\r\n\x1a\n"), "image/png", "PNG", []string{".png"}},
}

// Limit says the size limit as people read it.
func Limit(max int64) string {
	if max >= 1<<20 && max%(1<<20) == 0 {
		return fmt.Sprintf("at most %d MiB", max>>20)
	}
	return fmt.Sprintf("at most %d bytes", max)
}

// Check reads the document (at most max bytes) and finds its type from its content. A
// file of another type, over the limit, or whose name or declared type says another
// type than its content is refused with the field "document" named; an empty one with
// empty.
func Check(d Upload, max int64, empty error) ([]byte, string, error) {
	data, err := io.ReadAll(io.LimitReader(d.Body, max+1))
	if err != nil {
		return nil, "", apperr.Field("document", "upload_interrupted", "could not be read: the upload was interrupted; nothing was stored")
	}
	if int64(len(data)) > max {
		return nil, "", &apperr.Error{Kind: apperr.TooLarge, Code: "document_too_large", Field: "document",
			Message: "is too large: " + Limit(max)}
	}
	if len(data) == 0 {
		return nil, "", empty
	}
	found := slices.IndexFunc(types, func(t kind) bool { return bytes.HasPrefix(data, t.magic) })
	if found < 0 {
		return nil, "", apperr.Field("document", "document_type", "must be a PDF, JPEG or PNG file, and its content is none of these")
	}
	t := types[found]
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

// Put seals data under key into the object name, streaming (the vault's segmented
// AEAD) so that no second copy is held.
func Put(ctx context.Context, blobs blob.Store, key *vault.Key, name string, data []byte) error {
	if blobs == nil {
		return errors.New("no blob store for documents")
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
	_, err := blobs.Put(ctx, name, pr, vault.CiphertextSize(int64(len(data))))
	pr.CloseWithError(errors.New("document stored")) // ends the writer if Put stopped early
	return err
}
