package datamap_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// openPostgres opens a fresh schema on the test PostgreSQL with one table of addresses
// and an index on them, or skips when none is configured.
func openPostgres(t *testing.T) (*store.DB, string) {
	t.Helper()
	u := storetest.PostgresURL(t)
	if u == "" {
		t.Skip("STEWARD_TEST_POSTGRES_URL not set")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(ctx, `CREATE TABLE people (id INT PRIMARY KEY, email TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX people_email ON people (email)`); err != nil {
		t.Fatal(err)
	}
	return db, u
}

func random(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// plantDeleted writes marker in a row after a checkpoint, deletes the row and vacuums
// the table, as an erasure on PostgreSQL does. A row written before it stays, so the
// page is neither emptied (VACUUM would cut it off the file) nor compacted over the
// marker (live tuples move to the page's end, and the first row is there already).
func plantDeleted(t *testing.T, db *store.DB, marker string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO people VALUES (1, 'keeper@example.org')`,
		`CHECKPOINT`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO people VALUES (2, $1)`, marker); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM people WHERE id = 2`, `VACUUM people`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A deleted and vacuumed row is gone from the live rows but not from the server's
// files: the raw scan finds it in the table file and in the WAL, where the live-row scan
// finds nothing. A value never written is found nowhere.
func TestScanRawFindsDeletedRows(t *testing.T) {
	db, _ := openPostgres(t)
	ctx := context.Background()
	marker := random("marker-") + "@example.org"
	never := random("never-written-")
	plantDeleted(t, db, marker)
	terms := []datamap.Term{{Kind: "email", Value: strings.ToUpper(marker)}, {Kind: "never", Value: never}}

	live, err := datamap.Scan(ctx, db, terms)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Errorf("live-row scan found %v, want nothing: the row is deleted", live)
	}

	found, unread, err := datamap.ScanRaw(ctx, db, terms)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range unread {
		t.Errorf("unread: %s", u)
	}
	var inTable, inWAL bool
	for _, f := range found {
		t.Logf("found: %s", f)
		switch {
		case f.Kind == "never":
			t.Errorf("found a value never written: %s", f)
		case f.Where == "table file people":
			inTable = true
		case strings.HasPrefix(f.Where, "WAL "):
			inWAL = true
		case f.Where == "index file people_email":
		default:
			t.Errorf("unexpected finding %s", f)
		}
		if strings.Contains(strings.ToLower(f.String()), strings.ToLower(marker)) {
			t.Errorf("a finding names the value: %s", f)
		}
	}
	if !inTable {
		t.Error("the deleted row was not found in the table file")
	}
	if !inWAL {
		t.Error("the deleted row was not found in the WAL")
	}
}

// A role that may not read the server's files gets no silent "clean": every kind of
// file it could not read is named, with the reason.
func TestScanRawSaysWhatItCannotRead(t *testing.T) {
	db, u := openPostgres(t)
	ctx := context.Background()
	marker := random("marker-") + "@example.org"
	plantDeleted(t, db, marker)

	role, password := random("steward_reader_"), random("pw")
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	ru, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	ru.User = url.UserPassword(role, password)
	reader, err := store.Open(ctx, ru.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() }) // before the role is dropped

	found, unread, err := datamap.ScanRaw(ctx, reader, []datamap.Term{{Kind: "email", Value: marker}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 0 {
		t.Errorf("found %v with no right to read files", found)
	}
	all := strings.Join(unread, "\n")
	t.Logf("unread:\n%s", all)
	for _, want := range []string{"CHECKPOINT was refused", "table, TOAST and index files of the schema were not read", "the WAL was not read"} {
		if !strings.Contains(all, want) {
			t.Errorf("unread lacks %q:\n%s", want, all)
		}
	}
}
