package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the files' entry in the data map. It also streams the decrypted files into
// the member's export.
type Holder struct{ S *Service }

var (
	filesTable = datamap.Table{Name: "files", Subject: "owner_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random file id"},
		{Name: "owner_id", Categories: []string{"user.unique_id"}, Plain: "a random id: the owner's key is found by it"},
		{Name: "name", Categories: []string{"user.content"}, Sealed: true},
		{Name: "content_type", Categories: []string{"user.content"}, Sealed: true},
		{Name: "size", NotPersonal: "size in bytes"},
		// A checksum of the content confirms a guess of it: sealed like the name.
		{Name: "sha256", Categories: []string{"user.content"}, Sealed: true},
		{Name: "object", NotPersonal: "random name of the encrypted object in storage"},
		{Name: "state", NotPersonal: "uploading, ready or deleting"},
		{Name: "lease_until", NotPersonal: "end of an upload's lease", Time: true},
		{Name: "created_at", NotPersonal: "time of upload", Time: true},
		{Name: "sealed", NotPersonal: "set once the row's personal columns are sealed (NULL: written by an earlier release, sealed at start)"},
	}}
	// An access's address belongs to whoever made it: it is sealed under the actor's
	// key, not the owner's (the one column of these tables sealed under another key
	// than the row's subject's), so that a refused member's address goes with their
	// own erasure, and the owner never reads it.
	accessTable = datamap.Table{Name: "file_access_log", Subject: "owner_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "sequence number"},
		{Name: "file_id", NotPersonal: "random file id"},
		{Name: "owner_id", Categories: []string{"user.unique_id"}, Plain: "a random id: the owner's key is found by it"},
		{Name: "actor_id", Categories: []string{"user.unique_id"},
			Plain: "a random account id, compared in SQL (whose access it was); blanked when that member is erased"},
		{Name: "action", NotPersonal: "upload, download, delete or denied"},
		{Name: "ip", Categories: []string{"user.device.ip_address"}, Sealed: true},
		{Name: "at", NotPersonal: "time of access", Time: true},
		{Name: "sealed", NotPersonal: "set once the row's address is sealed (NULL: written by an earlier release, sealed at start)"},
		// A copy of the file's sealed name when the entry was written, so the log names
		// a file deleted since; the owner's, like the file.
		{Name: "name", Categories: []string{"user.content"}, Sealed: true, Label: labelName},
	}}
	// accessRaw reads the access log with the addresses left sealed: Export opens each
	// with the key it is sealed under.
	accessRaw = unsealed(accessTable)
)

// unsealed is t with no column marked sealed.
func unsealed(t datamap.Table) datamap.Table {
	t.Columns = slices.Clone(t.Columns)
	for i := range t.Columns {
		t.Columns[i].Sealed = false
	}
	return t
}

// Declaration describes the files tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "files",
		Description: "Your files (stored encrypted with your own key) and the log of every access to them.",
		Purpose:     "Keep the files you upload for you, confidentially, and show you who accessed them.",
		LawfulBasis: "contract",
		Retention:   "Until you delete a file or your account; each entry of the access log for 1 year (the operator may set another period), or until the account is erased.",
		Tables:      []datamap.Table{filesTable, accessTable},
	}
}

// Export returns the files' records and the access log, their sealed columns opened;
// the contents come through ExportFiles. The log holds the subject's files' accesses
// and the subject's own refused attempts at other members' files.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	// Without a key the subject has no file, and no address in any log.
	s, err := h.S.vault.WithKey(ctx, q, s)
	if err != nil {
		return nil, fmt.Errorf("files: export: %w", err)
	}
	f, err := s.Select(ctx, q, filesTable, "owner_id = $1 AND state = 'ready' ORDER BY created_at", s.ID)
	if err != nil {
		return nil, err
	}
	a, err := datamap.SelectSection(ctx, q, accessRaw, "owner_id = $1 OR actor_id = $1 ORDER BY id", s.ID)
	if err != nil {
		return nil, err
	}
	// Another member's refused attempt is in the owner's log, but who they are and
	// their address are theirs, not the owner's: blanked, as on the page. The
	// subject's own attempt at another's file shows their address, not the owner.
	// The file's name is the owner's: opened for the subject's own files, left out of
	// an attempt at another member's.
	owner, actor, ip, name := slices.Index(a.Columns, "owner_id"), slices.Index(a.Columns, "actor_id"), slices.Index(a.Columns, "ip"), slices.Index(a.Columns, "name")
	for _, row := range a.Rows {
		if row[owner] != s.ID {
			row[name] = ""
		} else if row[name] != "" {
			if s.Key == nil {
				return nil, fmt.Errorf("files: export: a file name sealed under %s's key, which is gone", s.ID)
			}
			if row[name], err = s.Key.OpenText(labelName, row[name]); err != nil {
				return nil, fmt.Errorf("files: export: %w", err)
			}
		}
		if row[actor] != s.ID {
			row[actor], row[ip] = "another member", ""
			continue
		}
		if row[owner] != s.ID {
			row[owner] = "another member"
		}
		if row[ip] != "" {
			if s.Key == nil {
				return nil, fmt.Errorf("files: export: an address sealed under %s's key, which is gone", s.ID)
			}
			if row[ip], err = s.Key.OpenText(labelIP, row[ip]); err != nil {
				return nil, fmt.Errorf("files: export: %w", err)
			}
		}
	}
	return []datamap.Section{f, a}, nil
}

// ExportFiles streams every file of the subject, decrypted, to add.
func (h Holder) ExportFiles(ctx context.Context, s datamap.Subject, add func(name string, r io.Reader) error) error {
	list, err := h.S.List(ctx, s.ID)
	if err != nil {
		return err
	}
	for _, f := range list {
		r, err := h.S.get(ctx, f.ID)
		if errors.Is(err, errNoFile) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("files: export %s: %w", f.ID, err)
		}
		obj, err := h.S.blobs.Open(ctx, r.object, 0, -1)
		if errors.Is(err, blob.ErrNotFound) {
			// Deleted between its row and its object: a delete marks the row, then
			// removes the object. Gone now, it is left out; still there, it is an error.
			if _, gerr := h.S.get(ctx, f.ID); errors.Is(gerr, errNoFile) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("files: export %s: %w", f.ID, err)
		}
		plain, err := r.key.Decrypt(obj)
		if err == nil {
			err = add(f.ID+"-"+f.Name, plain)
		}
		obj.Close()
		if err != nil {
			return fmt.Errorf("files: export %s: %w", f.ID, err)
		}
	}
	return nil
}

// Erase deletes the subject's objects and rows and their access log, and forgets them
// as the actor in other members' logs. (Their data key is shredded by the vault's
// holder, which runs first: every copy of the ciphertext is unreadable from then on.)
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	rows, err := tx.QueryContext(ctx, `SELECT object FROM files WHERE owner_id = $1`, s.ID)
	if err != nil {
		return fmt.Errorf("files: erase: %w", err)
	}
	var objects []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return fmt.Errorf("files: erase: %w", err)
		}
		objects = append(objects, o)
	}
	rows.Close()
	for _, o := range objects {
		if err := h.S.blobs.Delete(ctx, o); err != nil {
			return fmt.Errorf("files: erase: %w", err)
		}
	}
	for _, q := range []string{
		`DELETE FROM files WHERE owner_id = $1`,
		`DELETE FROM file_access_log WHERE owner_id = $1`,
		`UPDATE file_access_log SET actor_id = NULL, ip = '' WHERE actor_id = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("files: erase: %w", err)
		}
	}
	return nil
}

// Residue reports what of the subject the file store still holds: rows, objects not
// accounted for by any row, and whether the data key survives.
func (h Holder) Residue(ctx context.Context, subjectID string) ([]string, error) {
	var out []string
	var n int
	if err := h.S.db.QueryRowContext(ctx, `SELECT count(*) FROM files WHERE owner_id = $1`, subjectID).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		out = append(out, fmt.Sprintf("files: %d file row(s) of the subject", n))
	}
	has, err := h.S.vault.HasKey(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	if has {
		out = append(out, "vault: the subject's data key still exists")
	}
	known := map[string]bool{}
	rows, err := h.S.db.QueryContext(ctx, `SELECT object FROM files`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			rows.Close()
			return nil, err
		}
		known[o] = true
	}
	rows.Close()
	orphans := 0
	err = h.S.blobs.List(ctx, objectPrefix, func(i blob.Info) error {
		if !known[i.Name] {
			orphans++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if orphans > 0 {
		out = append(out, fmt.Sprintf("blob store: %d object(s) belong to no file (they may be the subject's)", orphans))
	}
	return out, nil
}
