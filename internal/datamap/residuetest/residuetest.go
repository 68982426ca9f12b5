// Package residuetest lets tests look for values in the raw files of a test database,
// read straight from disk rather than through the database: on SQLite the database
// file and its write-ahead log, on PostgreSQL the files of the schema's tables, TOAST
// tables and indexes, and every WAL segment of the cluster. A test proves with it that
// no plain byte of a value survives where it should not.
package residuetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/datamap"
	"steward/internal/store"
)

// RawFindings returns where the raw files of db hold any of terms (case-insensitively),
// one line per file and term, naming the term: "WAL 000000010000000000000003: 1
// match(es) of \"ada@example.org\"". On PostgreSQL it runs CHECKPOINT first (pages
// changed in memory reach the files) and reads the cluster's data directory as the
// test's own user, so it needs a superuser connection and the server on this machine,
// and a user that may read the server's files (root, or the server's own user). When
// the files cannot be read the test is skipped, or fails with
// STEWARD_TEST_REQUIRE_SERVICES=1.
func RawFindings(t testing.TB, db *store.DB, terms ...string) []string {
	t.Helper()
	ts := make([]datamap.Term, len(terms))
	for i, v := range terms {
		ts[i] = datamap.Term{Kind: fmt.Sprintf("%q", v), Value: v}
	}
	var files []file
	switch db.Dialect {
	case store.SQLite:
		for _, suffix := range []string{"", "-wal", "-journal"} {
			files = append(files, file{"file " + filepath.Base(db.Path()) + suffix, db.Path() + suffix})
		}
	case store.Postgres:
		files = postgresFiles(t, db)
	}
	var out []string
	for _, f := range files {
		r, err := os.Open(f.path)
		if os.IsNotExist(err) {
			continue // a WAL recycled or a relation dropped since the listing
		}
		if err != nil {
			unreadable(t, "residuetest: %v", err)
			return nil
		}
		found, err := datamap.ScanReader(r, f.where, ts)
		r.Close()
		if err != nil {
			t.Fatalf("residuetest: read %s: %v", f.path, err)
		}
		for _, x := range found {
			out = append(out, fmt.Sprintf("%s: %d match(es) of %s", x.Where, x.Count, x.Kind))
		}
	}
	return out
}

type file struct {
	where string // "table file accounts", "WAL 000000010000000000000003"
	path  string
}

// postgresFiles lists the files of every relation of the connection's schema with
// storage (and of their TOAST tables and TOAST indexes), every fork and 1 GiB segment
// of each, and every file of pg_wal, as paths on this machine.
func postgresFiles(t testing.TB, db *store.DB) []file {
	t.Helper()
	ctx := context.Background()
	var dir string
	if err := db.QueryRowContext(ctx, `SHOW data_directory`).Scan(&dir); err != nil {
		t.Fatalf("residuetest: data directory: %v", err)
	}
	sameCluster(t, db, dir)
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		t.Fatalf("residuetest: checkpoint: %v", err)
	}
	rows, err := db.QueryContext(ctx, `
		WITH own AS (
			SELECT oid FROM pg_class
			WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		), toast AS (
			SELECT reltoastrelid AS oid FROM pg_class WHERE oid IN (SELECT oid FROM own) AND reltoastrelid <> 0
		), toast_index AS (
			SELECT indexrelid AS oid FROM pg_index WHERE indrelid IN (SELECT oid FROM toast)
		)
		SELECT c.relname, c.relkind, pg_relation_filepath(c.oid) FROM pg_class c
		WHERE c.oid IN (SELECT oid FROM own UNION SELECT oid FROM toast UNION SELECT oid FROM toast_index)
		  AND pg_relation_filepath(c.oid) IS NOT NULL`)
	if err != nil {
		t.Fatalf("residuetest: relation files: %v", err)
	}
	defer rows.Close()
	var out []file
	for rows.Next() {
		var name, kind, rel string
		if err := rows.Scan(&name, &kind, &rel); err != nil {
			t.Fatalf("residuetest: relation files: %v", err)
		}
		// The main file, its segments (.1, .2, ...) and its other forks (_fsm, _vm).
		base := filepath.Join(dir, filepath.FromSlash(rel))
		entries, err := os.ReadDir(filepath.Dir(base))
		if err != nil {
			unreadable(t, "residuetest: %v", err)
			return nil
		}
		what := map[string]string{"i": "index file ", "t": "TOAST file ", "S": "sequence file ", "m": "materialized view file "}[kind]
		if what == "" {
			what = "table file "
		}
		for _, e := range entries {
			n, b := e.Name(), filepath.Base(base)
			if n == b || strings.HasPrefix(n, b+".") || strings.HasPrefix(n, b+"_") {
				out = append(out, file{what + name, filepath.Join(filepath.Dir(base), n)})
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("residuetest: relation files: %v", err)
	}
	wal, err := os.ReadDir(filepath.Join(dir, "pg_wal"))
	if err != nil {
		unreadable(t, "residuetest: %v", err)
		return nil
	}
	for _, e := range wal {
		if e.Type().IsRegular() {
			out = append(out, file{"WAL " + e.Name(), filepath.Join(dir, "pg_wal", e.Name())})
		}
	}
	return out
}

// sameCluster checks that dir on this machine is the data directory of the server db
// talks to, by the system identifier in its control file: a server elsewhere may have
// the same path.
func sameCluster(t testing.TB, db *store.DB, dir string) {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(context.Background(), `SELECT system_identifier FROM pg_control_system()`).Scan(&id); err != nil {
		t.Fatalf("residuetest: system identifier: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "global", "pg_control"))
	if err != nil {
		unreadable(t, "residuetest: the server's files are not readable here: %v", err)
		return
	}
	// pg_control begins with the system identifier, in the machine's byte order.
	if len(b) < 8 || (binary.LittleEndian.Uint64(b) != uint64(id) && binary.BigEndian.Uint64(b) != uint64(id)) {
		unreadable(t, "residuetest: %s is not the data directory of the test server", dir)
	}
}

// unreadable skips the test, or fails it when services are required.
func unreadable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
