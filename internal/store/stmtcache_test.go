package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"steward/internal/store"
)

// The SQLite writer keeps a statement prepared from the second time it runs, in a
// transaction or not, and what it runs is what the text says: a text of several
// statements runs them all, a statement whose table changed sees the change, and one
// pushed out of a full cache is prepared again.
func TestWriterKeepsStatements(t *testing.T) {
	ctx := context.Background()
	db := sqliteWith(t, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`)
	count := func() (n int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := store.KeptStatements(db)
	insert := `INSERT INTO kv (k, v) VALUES ($1, $2)`
	for i := range 3 {
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, insert, fmt.Sprint("tx", i), "v")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Kept after the second commit: a statement run once is not.
		if want := before + min(i, 1); store.KeptStatements(db) != want {
			t.Fatalf("after %d transactions: %d statements kept, want %d", i+1, store.KeptStatements(db), want)
		}
	}
	// Outside a transaction, likewise; a failed run (a duplicate key) fails alike.
	for i := range 3 {
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'plain')`, fmt.Sprint("plain", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, 'plain')`, "plain0"); !store.IsUniqueViolation(err) {
		t.Fatalf("a duplicate through a kept statement: %v", err)
	}
	if n := count(); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
	// Several statements in one text run them all, every time.
	for i := range 2 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO kv (k, v) VALUES ('a%d', 'x'); INSERT INTO kv (k, v) VALUES ('b%d', 'x');`, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 10 {
		t.Fatalf("%d rows after two texts of two inserts, want 10", n)
	}
	// A kept statement sees a changed table.
	read := `SELECT * FROM kv WHERE k = $1`
	cols := func() int {
		t.Helper()
		rows, err := db.QueryWriter(ctx, read, "tx0")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}
	cols()
	if n := cols(); n != 2 {
		t.Fatalf("%d columns, want 2", n)
	}
	if _, err := db.ExecContext(ctx, `ALTER TABLE kv ADD COLUMN w TEXT`); err != nil {
		t.Fatal(err)
	}
	if n := cols(); n != 3 {
		t.Fatalf("after ALTER TABLE: %d columns, want 3", n)
	}
	// A full cache lets the least recently used statement go; it still runs.
	store.KeepStatements(db, 2)
	for round := range 3 {
		for i := range 4 {
			q := fmt.Sprintf(`UPDATE kv SET v = 'r%d' WHERE k = $1 AND %d = %d`, round, i, i)
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, q, "tx0")
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if k := store.KeptStatements(db); k > 2 {
			t.Fatalf("%d statements kept, at most 2", k)
		}
	}
	var v string
	if err := db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 'tx0'`).Scan(&v); err != nil || v != "r2" {
		t.Fatalf("v = %q, %v; want r2", v, err)
	}
}

// Transactions of many goroutines share kept statements without waiting on each
// other's preparations (a preparation needs the writer, which a transaction holds).
func TestWriterStatementsConcurrently(t *testing.T) {
	ctx := context.Background()
	db := sqliteWith(t, `CREATE TABLE n (g INTEGER, i INTEGER)`)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := db.InTx(ctx, func(tx *store.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO n (g, i) VALUES ($1, $2)`, g, i); err != nil {
						return err
					}
					var c int
					return tx.QueryRowContext(ctx, `SELECT count(*) FROM n WHERE g = $1`, g).Scan(&c)
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM n`).Scan(&n); err != nil || n != 400 {
		t.Fatalf("%d rows, %v; want 400", n, err)
	}
}

// sqliteWith opens a fresh SQLite store holding one table made by create.
func sqliteWith(t *testing.T, create string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	return db
}
