package vault

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// The node keeps data keys it unwrapped, but only ever finds one by the wrapped bytes
// and epoch the database holds now, for a limited time, and never across the
// destruction of the key-encryption key that wrapped it.
func TestKeyCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var at atomic.Int64
		at.Store(testTime.UnixNano())
		now := func() time.Time { return time.Unix(0, at.Load()).UTC() }
		v := openVault(t, db, t.TempDir(), Config{}, now)
		makeKeys(t, v, 3)
		rows := keyRows(t, db)
		r := rows[0]

		k1, err := v.Unwrap(r.subject, r.wrapped, r.epoch)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := v.Unwrap(r.subject, r.wrapped, r.epoch)
		if err != nil || k2 != k1 {
			t.Fatalf("second unwrap: %p %v, want the cached key %p", k2, err, k1)
		}
		// Other bytes for the same subject are unwrapped, not found: a damaged or
		// foreign wrapped key fails as it would without the cache.
		bad := append([]byte(nil), r.wrapped...)
		bad[len(bad)-1] ^= 1
		if _, err := v.Unwrap(r.subject, bad, r.epoch); err == nil {
			t.Fatal("a damaged wrapped key opened")
		}
		if _, err := v.Unwrap(rows[1].subject, r.wrapped, r.epoch); err == nil {
			t.Fatal("another subject's wrapped key opened")
		}
		// Past the TTL the key is unwrapped again, and a sweep forgets it.
		at.Add(int64(keyCacheTTL))
		k3, err := v.Unwrap(r.subject, r.wrapped, r.epoch)
		if err != nil || k3 == k1 {
			t.Fatalf("unwrap past the TTL: %p %v, want a fresh key", k3, err)
		}
		at.Add(int64(keyCacheTTL))
		v.keys.sweep(now())
		if n := len(v.keys.entries); n != 0 {
			t.Fatalf("%d keys after a sweep past the TTL", n)
		}
		// Shred forgets the key at once.
		if _, err := v.Unwrap(r.subject, r.wrapped, r.epoch); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return v.Shred(ctx, tx, r.subject) }); err != nil {
			t.Fatal(err)
		}
		if _, ok := v.keys.entries[r.subject]; ok {
			t.Fatal("a shredded key stays in the cache")
		}
		// A rotation forgets every key unwrapped under the destroyed epoch, and the old
		// wrapped bytes no longer open.
		old := rows[1]
		if _, err := v.Unwrap(old.subject, old.wrapped, old.epoch); err != nil {
			t.Fatal(err)
		}
		if _, err := v.RotateNow(ctx); err != nil {
			t.Fatal(err)
		}
		for s, e := range v.keys.entries {
			if e.epoch < 1 {
				t.Fatalf("the key of %s, unwrapped at epoch %d, outlived its epoch", s, e.epoch)
			}
		}
		if _, err := v.Unwrap(old.subject, old.wrapped, old.epoch); err == nil {
			t.Fatal("the old wrapped key opened after rotation")
		}
		if _, err := v.Unwrap(old.subject, old.wrapped, 1); err == nil {
			t.Fatal("the old wrapped key opened at the new epoch")
		}
	})
}

// A full cache stays at its bound.
func TestKeyCacheBound(t *testing.T) {
	c := newKeyCache(4, time.Minute)
	for i := range 10 {
		c.put(string(rune('a'+i)), []byte{byte(i)}, 0, &Key{}, testTime)
	}
	if n := len(c.entries); n != 4 {
		t.Fatalf("%d entries, want the bound 4", n)
	}
	if c.get("j", []byte{9}, 0, testTime) == nil {
		t.Fatal("the newest entry is missing")
	}
}
