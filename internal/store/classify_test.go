package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// Each class of database error is told by the engine's code, on both engines: the
// engines' own errors are provoked, wrapped as the services wrap them, and classified.
func TestErrorClasses(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, q := range []string{
			`CREATE TABLE parent (id TEXT PRIMARY KEY)`,
			`CREATE TABLE child (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, parent_id TEXT REFERENCES parent (id), n INTEGER CHECK (n > 0))`,
			`INSERT INTO parent (id) VALUES ('p')`,
			`INSERT INTO child (id, email, parent_id, n) VALUES ('c', 'a@example.com', 'p', 1)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		exec := func(q string) error {
			_, err := db.ExecContext(ctx, q)
			if err == nil {
				t.Fatalf("%s: no error", q)
			}
			return fmt.Errorf("wrapped: %w", err)
		}
		tests := []struct {
			name                     string
			err                      error
			unique, busy, conflicted bool
		}{
			{name: "unique index", err: exec(`INSERT INTO child (id, email, n) VALUES ('d', 'a@example.com', 1)`), unique: true},
			{name: "primary key", err: exec(`INSERT INTO child (id, email, n) VALUES ('c', 'b@example.com', 1)`), unique: true},
			{name: "not null", err: exec(`INSERT INTO child (id, n) VALUES ('e', 1)`)},
			{name: "foreign key", err: exec(`INSERT INTO child (id, email, parent_id, n) VALUES ('f', 'f@example.com', 'nobody', 1)`)},
			{name: "check", err: exec(`INSERT INTO child (id, email, n) VALUES ('g', 'g@example.com', 0)`)},
			{name: "syntax", err: exec(`INSERT INTO nowhere VALUES (1)`)},
			{name: "busy", err: busyError(t, db), busy: true},
			{name: "none", err: nil},
			{name: "not a database error", err: sql.ErrNoRows},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := store.IsUniqueViolation(tt.err); got != tt.unique {
					t.Errorf("IsUniqueViolation(%v) = %v, want %v", tt.err, got, tt.unique)
				}
				if got := store.IsUnavailable(tt.err); got != tt.busy {
					t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.busy)
				}
				if got := store.IsConflict(tt.err); got != tt.conflicted {
					t.Errorf("IsConflict(%v) = %v, want %v", tt.err, got, tt.conflicted)
				}
			})
		}
	})
}

// busyError provokes the engine's "cannot now" error. On SQLite: a write while another
// connection holds the write lock, with no busy timeout to wait it out (SQLITE_BUSY).
// On PostgreSQL: a statement cancelled by its timeout (57014, query_canceled).
func busyError(t *testing.T, db *store.DB) error {
	t.Helper()
	ctx := context.Background()
	if db.Dialect == store.Postgres {
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 10`); err != nil {
				t.Fatal(err)
			}
			_, err := tx.ExecContext(ctx, `SELECT pg_sleep(5)`)
			return err
		})
		if err == nil {
			t.Fatal("pg_sleep outlived its statement timeout")
		}
		return err
	}
	open := func() *sql.DB {
		raw, err := sql.Open("sqlite", "file:"+db.Path()+"?_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatal(err)
		}
		raw.SetMaxOpenConns(1)
		t.Cleanup(func() { raw.Close() })
		return raw
	}
	holder, other := open(), open()
	tx, err := holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // only ends the lock: nothing is kept
	if _, err := tx.ExecContext(ctx, `INSERT INTO parent (id) VALUES ('held')`); err != nil {
		t.Fatal(err)
	}
	_, err = other.ExecContext(ctx, `INSERT INTO parent (id) VALUES ('blocked')`)
	if err == nil {
		t.Fatal("a second writer got in while the first held the lock")
	}
	return fmt.Errorf("wrapped: %w", err)
}

// A serialization failure on PostgreSQL is a conflict to run again.
func TestSerializationFailureIsConflict(t *testing.T) {
	db := postgresOnly(t, "SQLite has one writer and serializes every transaction")
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO counter VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	begin := func() *sql.Tx {
		tx, err := db.Writer().BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() })
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT n FROM counter WHERE id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	one, two := begin(), begin()
	if _, err := one.ExecContext(ctx, `UPDATE counter SET n = n + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if err := one.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err := two.ExecContext(ctx, `UPDATE counter SET n = n + 1 WHERE id = 1`)
	if !store.IsConflict(err) || store.IsUniqueViolation(err) || store.IsUnavailable(err) {
		t.Errorf("second serializable update: %v; want a conflict only", err)
	}
}
