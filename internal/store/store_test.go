package store_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// Bulk inserts write every row in full chunks and a last short one, BulkSelect adding
// the values its rows share; DB.In finds exactly the values asked, on both engines.
func TestBulkInsertsAndIn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `CREATE TABLE bulk_t (k TEXT PRIMARY KEY, tag TEXT NOT NULL, n BIGINT NOT NULL, v TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			shared := tx.BulkSelect(`INSERT INTO bulk_t (k, tag, n, v) SELECT column1, $1, $2, column2 FROM (VALUES `,
				[]any{"shared", int64(1) << 40}, 2, 3, ") AS v")
			defer shared.Close(ctx)
			for i := range 7 {
				if err := shared.Add(ctx, "s"+strconv.Itoa(i), "value "+strconv.Itoa(i)); err != nil {
					return err
				}
			}
			if err := shared.Add(ctx, "too few"); err == nil {
				t.Error("a row of one value for two columns was taken")
			}
			if err := shared.Close(ctx); err != nil {
				return err
			}
			plain := tx.Bulk("bulk_t", []string{"k", "tag", "n", "v"}, 3, "")
			defer plain.Close(ctx)
			for i := range 4 {
				if err := plain.Add(ctx, "p"+strconv.Itoa(i), "plain", int64(i), "p"); err != nil {
					return err
				}
			}
			return plain.Close(ctx)
		})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `SELECT k, tag, n, v FROM bulk_t WHERE tag = 'shared' ORDER BY k`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var k, tag, v string
			var n int64
			if err := rows.Scan(&k, &tag, &n, &v); err != nil {
				t.Fatal(err)
			}
			if n != 1<<40 || v != "value "+strings.TrimPrefix(k, "s") {
				t.Errorf("row %s: n %d, v %q", k, n, v)
			}
			got = append(got, k)
		}
		rows.Close()
		if strings.Join(got, ",") != "s0,s1,s2,s3,s4,s5,s6" {
			t.Errorf("shared rows %v, want s0 to s6", got)
		}
		var plain int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM bulk_t WHERE tag = 'plain'`).Scan(&plain); err != nil || plain != 4 {
			t.Errorf("plain rows %d (%v), want 4", plain, err)
		}
		for _, ask := range [][]string{{"s1", "p3", "nobody", "s6"}, {"nobody"}, {}} {
			in, args := db.In("k", 2, ask)
			found, err := store.Strings(ctx, db, `SELECT k FROM bulk_t WHERE n >= $1 AND `+in+` ORDER BY k`, append([]any{0}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for _, k := range ask {
				if k != "nobody" {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			if strings.Join(found, ",") != strings.Join(want, ",") {
				t.Errorf("In(%v) found %v, want %v", ask, found, want)
			}
		}
	})
}

// On PostgreSQL a lock held shared holds back a request for it alone, and that waiting
// request holds back shared requests made after it: a stream of shared holders (an
// import's batches) cannot starve one that needs it alone (an unsubscribe).
func TestLockIsFair(t *testing.T) {
	db := postgresOnly(t, "on SQLite the writer is the lock")
	ctx := context.Background()
	name := "fairness test " + store.SortedID(time.Now()) // advisory locks are per database, not per schema
	order := make(chan string, 3)
	hold, held := make(chan struct{}), make(chan struct{})
	var pidA int // the server process of a, which holds the lock first
	take := func(who string, shared bool, done chan<- error) {
		done <- db.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.Lock(ctx, name, shared); err != nil {
				return err
			}
			if who == "a" {
				if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pidA); err != nil {
					return err
				}
				close(held)
				<-hold
			}
			order <- who
			return nil
		})
	}
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var got int
			// Requests waiting for the lock a holds (other tests may wait for others).
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks w JOIN pg_locks g ON g.locktype = w.locktype
				AND g.classid = w.classid AND g.objid = w.objid AND g.objsubid = w.objsubid
				WHERE w.locktype = 'advisory' AND NOT w.granted AND g.granted AND g.pid = $1`, pidA).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d requests waiting for the lock, want %d", got, n)
			}
		}
	}
	done := make(chan error, 3)
	go take("a", true, done)
	<-held
	go take("b", false, done)
	waiting(1)
	go take("c", true, done)
	waiting(2)
	select {
	case who := <-order:
		t.Fatalf("%s took the lock while a held it shared and b waited for it alone", who)
	default:
	}
	close(hold)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := string([]byte{(<-order)[0], (<-order)[0], (<-order)[0]}); got != "abc" {
		t.Errorf("the lock went to %s, want a, then b, then c", got)
	}
}

// A deadlock on PostgreSQL ends one of its transactions with an error that IsConflict
// recognizes (it may be run again), and that is not a unique violation.
func TestDeadlockIsConflict(t *testing.T) {
	db := postgresOnly(t, "SQLite has one writer and no deadlocks")
	ctx := context.Background()
	one, two := "deadlock one "+store.SortedID(time.Now()), "deadlock two "+store.SortedID(time.Now())
	var both sync.WaitGroup
	both.Add(2)
	errs := make(chan error, 2)
	for _, order := range [][2]string{{one, two}, {two, one}} {
		go func() {
			errs <- db.InTx(ctx, func(tx *store.Tx) error {
				if err := tx.Lock(ctx, order[0], false); err != nil {
					return err
				}
				both.Done()
				both.Wait() // each holds its first lock: now each asks for the other's
				return tx.Lock(ctx, order[1], false)
			})
		}()
	}
	var conflicts int
	for range 2 {
		if err := <-errs; store.IsConflict(err) && !store.IsUniqueViolation(err) {
			conflicts++
		} else if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if conflicts != 1 {
		t.Errorf("%d transactions ended by the deadlock, want 1", conflicts)
	}
}

// postgresOnly opens a fresh PostgreSQL database for a test of what only it has, or
// skips the test, saying why SQLite needs none.
func postgresOnly(t *testing.T, sqliteHasNone string) *store.DB {
	t.Helper()
	u := storetest.PostgresURL(t)
	if u == "" {
		t.Skip("STEWARD_TEST_POSTGRES_URL not set; " + sqliteHasNone)
	}
	return storetest.Open(t, u)
}
