package store_test

import (
	"context"
	"fmt"
	"testing"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// Copy writes several tables' rows in one transaction on both engines (COPY on
// PostgreSQL): all of them, exactly, or none when one fails.
func TestCopy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, q := range []string{
			`CREATE TABLE c_events (at BIGINT NOT NULL, site TEXT NOT NULL, bot SMALLINT NOT NULL)`,
			`CREATE TABLE c_log (at BIGINT NOT NULL, path TEXT NOT NULL)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		var ev, lg []any
		for i := range 1000 {
			ev = append(ev, int64(i), fmt.Sprintf("site-%d é", i%7), i%2)
		}
		lg = append(lg, int64(1), "/a", int64(2), "")
		if err := db.Copy(ctx, store.CopyTable{Name: "c_events", Cols: []string{"at", "site", "bot"}, Values: ev},
			store.CopyTable{Name: "c_log", Cols: []string{"at", "path"}, Values: lg},
			store.CopyTable{Name: "c_log", Cols: []string{"at", "path"}}); err != nil {
			t.Fatal(err)
		}
		var n, sum, bots int64
		var s string
		if err := db.QueryRowContext(ctx, `SELECT count(*), sum(at), sum(bot), max(site) FROM c_events`).Scan(&n, &sum, &bots, &s); err != nil {
			t.Fatal(err)
		}
		if n != 1000 || sum != 999*1000/2 || bots != 500 || s != "site-6 é" {
			t.Fatalf("events: %d rows, sum %d, %d bots, max site %q", n, sum, bots, s)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM c_log WHERE path = '' OR path = '/a'`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("log: %d rows, %v", n, err)
		}
		// A row the table refuses (a NULL where none may be) fails the whole copy.
		err := db.Copy(ctx, store.CopyTable{Name: "c_log", Cols: []string{"at", "path"}, Values: []any{int64(3), "/b"}},
			store.CopyTable{Name: "c_events", Cols: []string{"at", "site", "bot"}, Values: []any{int64(4), nil, 0}})
		if err == nil {
			t.Fatal("a NULL site was copied")
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM c_log`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("after a failed copy the log has %d rows (%v), want the 2 before", n, err)
		}
		if err := db.Copy(ctx, store.CopyTable{Name: "c_log", Cols: []string{"at", "path"}, Values: []any{int64(5)}}); err == nil {
			t.Fatal("a row of one value for two columns was accepted")
		}
	})
}
