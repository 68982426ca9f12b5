package files_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/files"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// openHook is a blob store that runs a function before it opens an object.
type openHook struct {
	blob.Store
	mu     sync.Mutex
	before func(name string)
}

func (o *openHook) Open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	o.mu.Lock()
	f := o.before
	o.mu.Unlock()
	if f != nil {
		f(name)
	}
	return o.Store.Open(ctx, name, offset, length)
}

// An export leaves out a file the member deletes while the export runs (between its
// listing and the read of the object), and still fails on an object lost while its
// file is kept.
func TestExportWhileAFileIsDeleted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(dir, "master.key"), Create: true, Grace: -1}, clock, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.DataKey(ctx, "owner-1", true); err != nil {
			t.Fatal(err)
		}
		disk, err := blob.NewDisk(filepath.Join(dir, "files"))
		if err != nil {
			t.Fatal(err)
		}
		hook := &openHook{Store: disk}
		s := files.New(db, hook, v, files.Limits{MaxFileSize: 1 << 20, Quota: 1 << 20}, nil, clock, slog.New(slog.DiscardHandler))
		var ids []string
		for _, name := range []string{"kept.txt", "deleted.txt", "lost.txt"} {
			f, err := s.Upload(ctx, "owner-1", files.Upload{Name: name, ContentType: "text/plain", Size: -1, Body: strings.NewReader("the " + name)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, f.ID)
		}
		byID := map[string]string{}
		for _, id := range ids[1:] {
			o, err := store.Strings(ctx, db, `SELECT object FROM files WHERE id = $1`, id)
			if err != nil || len(o) != 1 {
				t.Fatal(err)
			}
			byID[id] = o[0]
		}
		subj := datamap.Subject{ID: "owner-1"}
		exported := func() ([]string, error) {
			var names []string
			err := files.Holder{S: s}.ExportFiles(ctx, subj, func(name string, r io.Reader) error {
				if _, err := io.Copy(io.Discard, r); err != nil {
					return err
				}
				names = append(names, name)
				return nil
			})
			return names, err
		}

		// The member deletes a file just as the export comes to read it.
		hook.before = func(name string) {
			if name == byID[ids[1]] {
				if err := s.Delete(ctx, "owner-1", ids[1], "192.0.2.1"); err != nil {
					t.Errorf("delete: %v", err)
				}
			}
		}
		names, err := exported()
		if err != nil {
			t.Fatalf("export while a file is deleted: %v", err)
		}
		slices.SortFunc(names, func(a, b string) int {
			return strings.Compare(a[strings.IndexByte(a, '-'):], b[strings.IndexByte(b, '-'):])
		})
		if got := strings.Join(names, ","); len(names) != 2 || !strings.HasSuffix(names[0], "-kept.txt") || !strings.HasSuffix(names[1], "-lost.txt") {
			t.Errorf("exported %s, want kept.txt and lost.txt only", got)
		}

		// An object lost while its file stays is an error, not a silent gap.
		hook.mu.Lock()
		hook.before = nil
		hook.mu.Unlock()
		if err := disk.Delete(ctx, byID[ids[2]]); err != nil {
			t.Fatal(err)
		}
		if _, err := exported(); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("export with a lost object = %v, want blob.ErrNotFound", err)
		}
	})
}
