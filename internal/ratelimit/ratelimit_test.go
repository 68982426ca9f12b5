package ratelimit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// clock is a test's clock, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func takes(t *testing.T, b *Buckets, key string, r Rule, n int) []bool {
	t.Helper()
	out := make([]bool, n)
	for i := range out {
		ok, err := b.Take(context.Background(), key, r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ok
	}
	return out
}

func count(oks []bool) int {
	n := 0
	for _, ok := range oks {
		if ok {
			n++
		}
	}
	return n
}

// A bucket lets its burst through, refuses the next, and gives a token back every
// interval; hammering a refused bucket keeps it refused, but costs at most two
// intervals once it stops; buckets are apart by key.
func TestBucket(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		b := New(db, c.now, quiet)
		r := Rule{Burst: 3, Every: time.Minute}
		if got := takes(t, b, "k", r, 4); count(got[:3]) != 3 || got[3] {
			t.Fatalf("burst of 3 then one more = %v, want 3 allowed then refused", got)
		}
		if got := takes(t, b, "other", r, 1); !got[0] {
			t.Error("another key was refused")
		}
		// The refused fourth counted too: a minute gives no token back yet, two do.
		c.add(time.Minute)
		if got := takes(t, b, "k", r, 1); got[0] {
			t.Errorf("a minute later: allowed, want refused (the refused attempt counts)")
		}
		c.add(3 * time.Minute)
		if got := takes(t, b, "k", r, 3); !got[0] || !got[1] || got[2] {
			t.Errorf("three minutes later = %v, want two allowed (four minutes, less two refusals) then refused", got)
		}
		// Hammering: every refused attempt counts, so the bucket stays empty.
		for range 20 {
			c.add(20 * time.Second)
			if got := takes(t, b, "k", r, 1); got[0] {
				t.Fatal("a bucket hammered every 20 s (refill every 60 s) let one through")
			}
		}
		c.add(2 * time.Minute)
		if got := takes(t, b, "k", r, 1); !got[0] {
			t.Error("two intervals after the hammering stopped: still refused")
		}
		c.add(time.Hour)
		if got := takes(t, b, "k", r, 4); count(got) != 3 {
			t.Errorf("a full bucket again = %v, want the burst", got)
		}
	})
}

// A token given back can be taken again; a bucket given more than it spent is only
// full.
func TestGive(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		b := New(db, c.now, quiet)
		r := Rule{Burst: 1, Every: time.Hour}
		if got := takes(t, b, "k", r, 2); !got[0] || got[1] {
			t.Fatalf("a burst of 1 = %v, want allowed then refused", got)
		}
		for range 3 { // the refused take counted too: two back make it full, a third is spare
			if err := b.Give(context.Background(), "k", r); err != nil {
				t.Fatal(err)
			}
		}
		if got := takes(t, b, "k", r, 2); !got[0] || got[1] {
			t.Errorf("after giving back = %v, want one allowed, then refused (no more than the burst)", got)
		}
		if err := b.Give(context.Background(), "absent", r); err != nil {
			t.Errorf("giving to a bucket never taken: %v", err)
		}
	})
}

// Nodes share the buckets: takes from two connections to one database, at once, spend
// one bucket; PostgreSQL only, as SQLite is one node.
func TestBucketsSharedByNodes(t *testing.T) {
	u := storetest.PostgresURL(t)
	if u == "" {
		t.Skip("STEWARD_TEST_POSTGRES_URL not set (SQLite is one node by nature)")
	}
	db1 := storetest.Open(t, u)
	db2 := storetest.Open(t, u)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	nodes := []*Buckets{New(db1, c.now, quiet), New(db2, c.now, quiet)}
	r := Rule{Burst: 10, Every: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := nodes[i%2].Take(context.Background(), "shared", r)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 10 {
		t.Errorf("40 takes at once from two nodes: %d allowed, want the burst of 10", allowed)
	}
}

// Full buckets are pruned, at most once a minute per node; the others stay.
func TestPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Unix(1_800_000_000, 0)}
		b := New(db, c.now, quiet)
		takes(t, b, "short", Rule{Burst: 1, Every: time.Second}, 1)
		takes(t, b, "long", Rule{Burst: 1, Every: time.Hour}, 1)
		c.add(2 * time.Minute)
		takes(t, b, "new", Rule{Burst: 1, Every: time.Hour}, 1)
		rows := map[string]bool{}
		rs, err := db.QueryContext(context.Background(), `SELECT bucket FROM rate_limits`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var k string
			if err := rs.Scan(&k); err != nil {
				t.Fatal(err)
			}
			rows[k] = true
		}
		if rows["short"] || !rows["long"] || !rows["new"] {
			t.Errorf("after a prune: %v, want long and new only", rows)
		}
	})
}
