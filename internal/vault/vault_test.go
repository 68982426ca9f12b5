package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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

// openVault opens a vault whose key file is in dir, with no grace and a clock at
// testTime unless cfg says otherwise.
func openVault(t testing.TB, db *store.DB, dir string, cfg Config, now ...func() time.Time) *Vault {
	t.Helper()
	cfg.KeyFile = filepath.Join(dir, "master.key")
	cfg.Create = true
	if cfg.Grace == 0 {
		cfg.Grace = -1
	}
	c := clock
	if len(now) > 0 {
		c = now[0]
	}
	v, err := Open(context.Background(), db, cfg, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return v
}

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
		v := openVault(t, db, t.TempDir(), Config{})

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
			if got := countKeys(t, db, "subject_id = $1 AND epoch = 0 AND created_at = $2", "alice", store.Millis(testTime)); got != 1 {
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

func TestHolder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v := openVault(t, db, t.TempDir(), Config{})
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
		if got, want := secs[0].Columns, []string{"subject_id", "epoch", "created_at"}; !slices.Equal(got, want) {
			t.Fatalf("Export columns: got %v, want %v (wrapped withheld)", got, want)
		}
		if got, want := secs[0].Rows[0], []string{"alice", "0", testTime.Format(time.RFC3339)}; !slices.Equal(got, want) {
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
