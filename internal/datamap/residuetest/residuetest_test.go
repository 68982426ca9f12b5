package residuetest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/datamap/residuetest"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

func marker() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "marker-" + hex.EncodeToString(b[:]) + "@example.org"
}

func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// On PostgreSQL a row deleted and vacuumed after a checkpoint is still in the table
// file and in the WAL on disk, and RawFindings finds it there; a value never written
// is found nowhere.
func TestRawFindingsPostgres(t *testing.T) {
	u := storetest.PostgresURL(t)
	if u == "" {
		t.Skip("STEWARD_TEST_POSTGRES_URL not set")
	}
	db, err := store.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := marker()
	exec(t, db, `CREATE TABLE people (id INT PRIMARY KEY, email TEXT NOT NULL)`)
	// A row before the marker's keeps the page in the file and the marker's bytes
	// where they were when VACUUM compacts the page.
	exec(t, db, `INSERT INTO people VALUES (1, 'keeper@example.org')`)
	exec(t, db, `CHECKPOINT`)
	exec(t, db, `INSERT INTO people VALUES (2, $1)`, m)
	exec(t, db, `DELETE FROM people WHERE id = 2`)
	exec(t, db, `VACUUM people`)

	found := residuetest.RawFindings(t, db, strings.ToUpper(m), "never-written-"+m)
	var inTable, inWAL bool
	for _, f := range found {
		t.Log(f)
		if strings.Contains(f, "never-written-") {
			t.Errorf("found a value never written: %s", f)
		}
		inTable = inTable || strings.HasPrefix(f, "table file people:")
		inWAL = inWAL || strings.HasPrefix(f, "WAL ")
	}
	if !inTable || !inWAL {
		t.Errorf("found %q, want the deleted marker in the table file and in the WAL", found)
	}
}

// On SQLite a live value is in the files, and after it is deleted and the store
// compacted (secure_delete zeroes it, the WAL is truncated) it is found nowhere.
func TestRawFindingsSQLite(t *testing.T) {
	db := storetest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "steward.db"))
	m := marker()
	exec(t, db, `CREATE TABLE people (id INT PRIMARY KEY, email TEXT NOT NULL)`)
	exec(t, db, `INSERT INTO people VALUES (1, 'keeper@example.org')`)
	exec(t, db, `INSERT INTO people VALUES (2, $1)`, m)
	if found := residuetest.RawFindings(t, db, m); len(found) == 0 {
		t.Fatal("the live marker was not found in the database files")
	}
	exec(t, db, `DELETE FROM people WHERE id = 2`)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if found := residuetest.RawFindings(t, db, m); len(found) != 0 {
		t.Errorf("after delete and compaction: %q, want nothing", found)
	}
	if found := residuetest.RawFindings(t, db, "keeper@example.org"); len(found) == 0 {
		t.Error("the row kept was not found: the files were not read")
	}
}
