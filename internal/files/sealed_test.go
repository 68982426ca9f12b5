package files_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/files"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// beforeSealing is the last migration of the release that kept files' names and the
// access log's addresses in plain text.
const beforeSealing = 15

func clock() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// What an earlier release stored in plain text is sealed at start: a file's name, type
// and checksum under its owner's key; each access's address under the key of whoever
// made it, so that the owner reads their own and another member's refused attempt
// shows only in that member's export. An address whose maker has no key any more is
// not kept, and a file whose owner has none (an erasure under way) is left to it.
func TestSealLegacyFiles(t *testing.T) {
	for dialect, u := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if err := db.MigrateTo(ctx, beforeSealing); err != nil {
				t.Fatal(err)
			}
			sha := strings.Repeat("ab", 32)
			for _, f := range [][]any{
				{"f1", "own-1", "old-notes.txt", "text/x-old-notes", sha, "files/o1"},
				{"f2", "gone-1", "gone-report.txt", "text/plain", sha, "files/o2"},
			} {
				if _, err := db.ExecContext(ctx, `INSERT INTO files (id, owner_id, name, content_type, size, sha256, object, state, created_at)
					VALUES ($1, $2, $3, $4, 10, $5, $6, 'ready', 1)`, f...); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range [][]any{
				{"own-1", "upload", "192.0.2.10"},
				{"other-1", "denied", "192.0.2.11"},
				{"ghost-1", "denied", "192.0.2.12"},
			} {
				if _, err := db.ExecContext(ctx, `INSERT INTO file_access_log (file_id, owner_id, actor_id, action, ip, at)
					VALUES ('f1', 'own-1', $1, $2, $3, 2)`, l...); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(dir, "master.key"), Create: true, Grace: -1}, clock, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"own-1", "other-1"} { // accounts, sealed before
				if _, err := v.DataKey(ctx, id, true); err != nil {
					t.Fatal(err)
				}
			}
			blobs, err := blob.NewDisk(filepath.Join(dir, "files"))
			if err != nil {
				t.Fatal(err)
			}
			s := files.New(db, blobs, v, files.Limits{MaxFileSize: 1 << 20, Quota: 1 << 20}, nil, clock, slog.New(slog.DiscardHandler))

			n, err := s.SealLegacy(ctx)
			if err != nil || n != 4 {
				t.Fatalf("SealLegacy = %d, %v; want 4 (a file, three accesses)", n, err)
			}
			list, err := s.List(ctx, "own-1")
			if err != nil || len(list) != 1 || list[0].Name != "old-notes.txt" || list[0].ContentType != "text/x-old-notes" || list[0].SHA256 != sha {
				t.Fatalf("list after sealing: %+v, %v", list, err)
			}
			log, err := s.AccessLog(ctx, "own-1", 10)
			if err != nil || len(log) != 3 {
				t.Fatalf("access log: %+v, %v", log, err)
			}
			var seen []string
			for _, a := range log {
				seen = append(seen, a.Action+" "+a.IP+" "+a.Name)
			}
			if got, want := strings.Join(seen, ","), "denied  old-notes.txt,denied  old-notes.txt,upload 192.0.2.10 old-notes.txt"; got != want {
				t.Errorf("access log = %s, want %s", got, want)
			}
			secs, err := files.Holder{S: s}.Export(ctx, db, datamap.Subject{ID: "other-1"})
			if err != nil {
				t.Fatal(err)
			}
			access := secs[1]
			ip, owner := slices.Index(access.Columns, "ip"), slices.Index(access.Columns, "owner_id")
			if len(access.Rows) != 1 || access.Rows[0][ip] != "192.0.2.11" || access.Rows[0][owner] != "another member" {
				t.Errorf("the refused member's export: %v %v", access.Columns, access.Rows)
			}
			raw, err := store.Strings(ctx, db, `SELECT ip FROM file_access_log ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			if raw[2] != "" || strings.Contains(strings.Join(raw, ","), "192.0.2.") {
				t.Errorf("stored addresses after sealing: %v", raw)
			}
			names, err := store.Strings(ctx, db, `SELECT name FROM files WHERE sealed = 1`)
			if err != nil || len(names) != 1 || strings.Contains(names[0], "notes") {
				t.Errorf("stored names after sealing: %v, %v", names, err)
			}
			if again, err := s.SealLegacy(ctx); err != nil || again != 0 {
				t.Errorf("a second SealLegacy = %d, %v; want 0", again, err)
			}
		})
	}
}
