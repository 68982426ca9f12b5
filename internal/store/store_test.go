package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

func TestRebind(t *testing.T) {
	db := &store.DB{Dialect: store.SQLite}
	tests := map[string]string{
		"SELECT $1, $2":                    "SELECT ?, ?",
		"SELECT $1, $2, $1":                "SELECT ?1, ?2, ?1",
		"SELECT '$1' WHERE a = $1":         "SELECT '$1' WHERE a = ?",
		"SELECT '?' WHERE a = $1":          "SELECT '?' WHERE a = ?",
		"UPDATE t SET a = $2 WHERE b = $1": "UPDATE t SET a = ?2 WHERE b = ?1",
		"VALUES ($1, $2), ($3, $4)":        "VALUES (?, ?), (?, ?)",
		"VALUES ($9, $10)":                 "VALUES (?9, ?10)",
		"SELECT 1":                         "SELECT 1",
	}
	for in, want := range tests {
		if got := db.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// The same statements, with placeholders out of order and repeated, work on both engines.
func TestPlaceholdersAndTx(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (v, k) VALUES ($2, $1)`, "key", "value"); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = $1 AND v = $2 OR k = $1`, "key", "value").Scan(&v); err != nil || v != "value" {
			t.Fatalf("got %q, %v", v, err)
		}
		// A failing transaction leaves nothing.
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`, "k2", "v2"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`, "key", "dup")
			return err
		})
		if !store.IsUniqueViolation(err) {
			t.Fatalf("want a unique violation, got %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 1 {
			t.Errorf("rows after rollback = %d (%v), want 1", n, err)
		}
		cols, err := db.Columns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, c := range cols {
			if c.Table == "kv" && c.Text {
				found++
			}
		}
		if found != 2 {
			t.Errorf("text columns of kv = %d, want 2", found)
		}
		if err := db.Compact(ctx, "kv"); err != nil {
			t.Errorf("compact: %v", err)
		}
	})
}

// The SQLite WAL is checkpointed as it grows: commits that write some 200 MB of pages
// leave it at the writer's bound (64 MB), not the sum of every page written.
func TestSQLiteWALStaysSmall(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := store.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i := range 50_000 {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (v) VALUES ($1)`, strings.Repeat("x", 200)+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 66<<20 {
		t.Errorf("WAL is %d MB after 50,000 commits", st.Size()>>20)
	}
}
