package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

var testTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return testTime }

func countKeys(t *testing.T, db *store.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM vault_keys WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDataKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		master := GenerateMasterKey()
		v := New(db, master, clock)

		t.Run("create and reuse", func(t *testing.T) {
			k1, err := v.DataKey(ctx, "alice", true)
			if err != nil {
				t.Fatal(err)
			}
			ct := encrypt(t, k1, []byte("hello alice"))
			for _, create := range []bool{true, false} {
				k2, err := v.DataKey(ctx, "alice", create)
				if err != nil {
					t.Fatalf("DataKey(create=%v): %v", create, err)
				}
				if k2.data != k1.data {
					t.Fatalf("DataKey(create=%v) returned another key", create)
				}
				got, err := decrypt(k2, ct)
				if err != nil || string(got) != "hello alice" {
					t.Fatalf("decrypt with the second key: got %q, %v", got, err)
				}
			}
			if got := countKeys(t, db, "subject_id = $1 AND master_id = $2 AND created_at = $3", "alice", master.ID(), store.Millis(testTime)); got != 1 {
				t.Fatalf("alice has %d rows, want 1", got)
			}
			if fmt.Sprint(k1) != "vault.Key(alice)" {
				t.Fatalf("a Key prints as %q", fmt.Sprint(k1))
			}
		})

		t.Run("no key", func(t *testing.T) {
			_, err := v.DataKey(ctx, "nobody", false)
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("DataKey(create=false): got %v, want %v", err, ErrNoKey)
			}
			if has, err := v.HasKey(ctx, "nobody"); err != nil || has {
				t.Fatalf("HasKey: got %v, %v, want false", has, err)
			}
			if got := countKeys(t, db, "subject_id = $1", "nobody"); got != 0 {
				t.Fatalf("DataKey(create=false) left %d rows", got)
			}
		})

		t.Run("concurrent first use", func(t *testing.T) {
			keys := make([]*Key, 8)
			errs := make([]error, 8)
			var wg sync.WaitGroup
			for i := range keys {
				wg.Go(func() { keys[i], errs[i] = v.DataKey(ctx, "carol", true) })
			}
			wg.Wait()
			for i := range keys {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if keys[i].data != keys[0].data {
					t.Fatalf("goroutine %d got another key than goroutine 0", i)
				}
			}
			if got := countKeys(t, db, "subject_id = $1", "carol"); got != 1 {
				t.Fatalf("carol has %d rows, want 1", got)
			}
		})

		t.Run("shred", func(t *testing.T) {
			k1, err := v.DataKey(ctx, "dave", true)
			if err != nil {
				t.Fatal(err)
			}
			ct := encrypt(t, k1, []byte("dave's secret"))
			if err := db.InTx(ctx, func(tx *store.Tx) error { return v.Shred(ctx, tx, "dave") }); err != nil {
				t.Fatalf("Shred: %v", err)
			}
			if _, err := v.DataKey(ctx, "dave", false); !errors.Is(err, ErrNoKey) {
				t.Fatalf("DataKey after Shred: got %v, want %v", err, ErrNoKey)
			}
			if has, err := v.HasKey(ctx, "dave"); err != nil || has {
				t.Fatalf("HasKey after Shred: got %v, %v, want false", has, err)
			}
			// Shredding again is not an error.
			if err := db.InTx(ctx, func(tx *store.Tx) error { return v.Shred(ctx, tx, "dave") }); err != nil {
				t.Fatalf("second Shred: %v", err)
			}
			k2, err := v.DataKey(ctx, "dave", true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decrypt(k2, ct); !errors.Is(err, ErrTampered) {
				t.Fatalf("old ciphertext under a new key: got %v, want %v", err, ErrTampered)
			}
		})

		t.Run("another master", func(t *testing.T) {
			if _, err := v.DataKey(ctx, "erin", true); err != nil {
				t.Fatal(err)
			}
			other := GenerateMasterKey()
			_, err := New(db, other, clock).DataKey(ctx, "erin", false)
			if err == nil || !strings.Contains(err.Error(), master.ID()) || !strings.Contains(err.Error(), other.ID()) {
				t.Fatalf("DataKey under another master: got %v, want an error naming %s and %s", err, master.ID(), other.ID())
			}
		})

		t.Run("key moved to another subject", func(t *testing.T) {
			if _, err := v.DataKey(ctx, "frank", true); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE vault_keys SET wrapped = (SELECT wrapped FROM vault_keys WHERE subject_id = $1) WHERE subject_id = $2`, "alice", "frank"); err != nil {
				t.Fatal(err)
			}
			if _, err := v.DataKey(ctx, "frank", false); err == nil || !strings.Contains(err.Error(), "does not open") {
				t.Fatalf("DataKey with alice's wrapped key: got %v, want a refusal", err)
			}
		})
	})
}

func TestRotate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		old, next := GenerateMasterKey(), GenerateMasterKey()
		v := New(db, old, clock)
		const n = 250
		want := map[string][dataKeySize]byte{}
		for i := range n {
			s := fmt.Sprintf("subject-%03d", i)
			k, err := v.DataKey(ctx, s, true)
			if err != nil {
				t.Fatal(err)
			}
			want[s] = k.data
		}
		var batches []int
		v.afterBatch = func(total int) { batches = append(batches, total) }
		got, err := v.Rotate(ctx, next)
		if err != nil || got != n {
			t.Fatalf("Rotate: got %d, %v, want %d", got, err, n)
		}
		if want := []int{100, 200, 250}; !slices.Equal(batches, want) {
			t.Fatalf("batches ended at %v, want %v", batches, want)
		}
		if got := countKeys(t, db, "master_id = $1", next.ID()); got != n {
			t.Fatalf("%d keys under the new master, want %d", got, n)
		}
		nv := New(db, next, clock)
		for s, data := range want {
			k, err := nv.DataKey(ctx, s, false)
			if err != nil {
				t.Fatalf("%s under the new master: %v", s, err)
			}
			if k.data != data {
				t.Fatalf("%s: the data key changed in rotation", s)
			}
		}
		_, err = v.DataKey(ctx, "subject-007", false)
		if err == nil || !strings.Contains(err.Error(), old.ID()) || !strings.Contains(err.Error(), next.ID()) {
			t.Fatalf("old master after rotation: got %v, want an error naming %s and %s", err, old.ID(), next.ID())
		}
		if got, err := v.Rotate(ctx, next); err != nil || got != 0 {
			t.Fatalf("second Rotate: got %d, %v, want 0", got, err)
		}
		if _, err := nv.Rotate(ctx, next); err == nil {
			t.Fatal("Rotate to the current master: got nil error")
		}
	})
}

func TestRotateResumes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		old, next := GenerateMasterKey(), GenerateMasterKey()
		v := New(db, old, clock)
		const n = 250
		for i := range n {
			if _, err := v.DataKey(context.Background(), fmt.Sprintf("subject-%03d", i), true); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		v.afterBatch = func(int) { cancel() }
		got, err := v.Rotate(ctx, next)
		if !errors.Is(err, context.Canceled) || got != 100 {
			t.Fatalf("interrupted Rotate: got %d, %v, want 100, %v", got, err, context.Canceled)
		}
		if got := countKeys(t, db, "master_id = $1", next.ID()); got != 100 {
			t.Fatalf("%d keys under the new master after the interruption, want 100", got)
		}
		v.afterBatch = nil
		got, err = v.Rotate(context.Background(), next)
		if err != nil || got != n-100 {
			t.Fatalf("resumed Rotate: got %d, %v, want %d", got, err, n-100)
		}
		if got := countKeys(t, db, "master_id = $1", next.ID()); got != n {
			t.Fatalf("%d keys under the new master, want %d", got, n)
		}
	})
}

func TestRotateStrayMaster(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b, c := GenerateMasterKey(), GenerateMasterKey(), GenerateMasterKey()
		if _, err := New(db, a, clock).DataKey(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		if _, err := New(db, b, clock).DataKey(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		_, err := New(db, a, clock).Rotate(ctx, c)
		if err == nil || !strings.Contains(err.Error(), b.ID()) {
			t.Fatalf("Rotate with a key under a third master: got %v, want an error naming %s", err, b.ID())
		}
		if got := countKeys(t, db, "master_id = $1", c.ID()); got != 0 {
			t.Fatalf("the failed batch rewrapped %d keys, want 0 (one transaction)", got)
		}
	})
}

func TestHolder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v := New(db, GenerateMasterKey(), clock)
		for _, s := range []string{"alice", "bob"} {
			if _, err := v.DataKey(ctx, s, true); err != nil {
				t.Fatal(err)
			}
		}
		var h datamap.Holder = Holder{}

		reg := datamap.NewRegistry()
		reg.Register(h)
		problems, err := reg.Coverage(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if strings.HasPrefix(p, "vault_keys.") {
				t.Errorf("coverage: %s", p)
			}
		}

		secs, err := h.Export(ctx, db, datamap.Subject{ID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if len(secs) != 1 || len(secs[0].Rows) != 1 {
			t.Fatalf("Export: got %+v, want one section of one row", secs)
		}
		if got, want := secs[0].Columns, []string{"subject_id", "master_id", "created_at"}; !slices.Equal(got, want) {
			t.Fatalf("Export columns: got %v, want %v (wrapped withheld)", got, want)
		}
		if got, want := secs[0].Rows[0], []string{"alice", v.MasterID(), testTime.Format(time.RFC3339)}; !slices.Equal(got, want) {
			t.Fatalf("Export row: got %v, want %v", got, want)
		}

		if err := db.InTx(ctx, func(tx *store.Tx) error { return h.Erase(ctx, tx, datamap.Subject{ID: "alice"}) }); err != nil {
			t.Fatal(err)
		}
		if got := countKeys(t, db, "subject_id = $1", "alice"); got != 0 {
			t.Fatalf("Erase left %d rows", got)
		}
		if got := countKeys(t, db, "subject_id = $1", "bob"); got != 1 {
			t.Fatalf("Erase of alice left bob with %d rows, want 1", got)
		}
		if has, err := v.HasKey(ctx, "alice"); err != nil || has {
			t.Fatalf("HasKey after Erase: got %v, %v", has, err)
		}
	})
}
