package governance

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

func TestStaffRoles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		s := NewStaff(db, nil, func() time.Time { return at })
		has := func(id string, roles ...string) bool {
			t.Helper()
			ok, err := s.HasAny(ctx, id, roles...)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		err := s.Grant(ctx, "acct", "owner")
		if e, ok := apperr.As(err); !ok || e.Field != "role" || e.Code != "role_unknown" {
			t.Errorf("Grant of an unknown role: %v, want role_unknown naming role", err)
		}
		if has("acct", "owner") {
			t.Error("an unknown role was granted")
		}
		for range 2 { // granting twice is no error
			if err := s.Grant(ctx, "acct", "support"); err != nil {
				t.Fatal(err)
			}
		}
		if !has("acct", "support") || !has("acct", "dpo", "support") || has("acct", "marketing") || has("acct") {
			t.Error("support holds support (alone or among others) and nothing else")
		}
		if has("other", "support") {
			t.Error("a role of one account counts for another")
		}
		if err := s.Grant(ctx, "boss", "admin"); err != nil {
			t.Fatal(err)
		}
		for _, r := range Roles {
			if !has("boss", r) {
				t.Errorf("admin does not hold %s", r)
			}
		}
		if err := s.Revoke(ctx, "acct", "support"); err != nil {
			t.Fatal(err)
		}
		if has("acct", "support") {
			t.Error("a revoked role still held")
		}
		if err := s.Revoke(ctx, "acct", "support"); err != nil {
			t.Errorf("revoking a role not held: %v", err)
		}

		// The export shows the roles with the time granted; the erasure removes them.
		h := StaffHolder{}
		secs, err := h.Export(ctx, db, datamap.Subject{ID: "boss"})
		if err != nil || len(secs) != 1 || len(secs[0].Rows) != 1 ||
			!slices.Equal(secs[0].Rows[0], []string{"boss", "admin", "2026-03-01T12:00:00Z"}) {
			t.Errorf("export = %+v, %v", secs, err)
		}
		if err := s.Grant(ctx, "acct", "dpo"); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return h.Erase(ctx, tx, datamap.Subject{ID: "boss"}) }); err != nil {
			t.Fatal(err)
		}
		if has("boss", "admin") || !has("acct", "dpo") {
			t.Error("the erasure of boss did not remove boss's roles alone")
		}
	})
}

// The audit log's clock stamps the entries; the newest come first and the limit holds;
// events without an account are found by IP only among themselves.
func TestAuditQueries(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(t.TempDir(), "master.key"), Create: true, Grace: -1},
			time.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		a := NewAudit(v, vault.NewIndex([]byte("0123456789abcdef0123456789abcdef")), GenerateAuditKey(), func() time.Time { return now })
		if _, err := v.DataKey(ctx, "acct", true); err != nil {
			t.Fatal(err)
		}
		for i, e := range []Event{
			{Name: "login", AccountID: "acct", IP: "192.0.2.1"},
			{Name: "login_failed", IP: "192.0.2.1", Detail: "unknown account"},
			{Name: "password_changed", AccountID: "acct", IP: "192.0.2.1"},
			{Name: "login_failed", IP: "192.0.2.1", Detail: "unknown account 2"},
			{Name: "login_failed", IP: "192.0.2.99"},
			{Name: "login_failed", Detail: "no ip"},
		} {
			now = now.Add(time.Duration(i) * time.Minute)
			if err := a.Record(ctx, db, e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := a.ForAccount(ctx, db, "acct", 1)
		if err != nil || len(got) != 1 || got[0].Event != "password_changed" || !got[0].At.Equal(time.Date(2026, 3, 1, 12, 3, 0, 0, time.UTC)) {
			t.Errorf("ForAccount limit 1 = %+v, %v; want the newest, at 12:03", got, err)
		}
		fromIP, err := a.FromIP(ctx, db, "192.0.2.1", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(fromIP) != 2 || fromIP[0].Detail != "unknown account 2" || fromIP[1].Detail != "unknown account" || fromIP[0].IP != "192.0.2.1" {
			t.Errorf("FromIP = %+v; want the two events without an account, newest first", fromIP)
		}
		if got, err := a.FromIP(ctx, db, "192.0.2.1", 1); err != nil || len(got) != 1 {
			t.Errorf("FromIP limit 1 = %d, %v", len(got), err)
		}
		if got, err := a.FromIP(ctx, db, "", 10); err != nil || got != nil {
			t.Errorf("FromIP of no IP = %+v, %v; want nothing (an event without an IP has no index)", got, err)
		}
		var nulls int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE account_idx IS NULL AND ip_idx IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
			t.Errorf("events without an IP and a NULL index = %d, %v; want 1", nulls, err)
		}

		// Recorded in a transaction that rolls back, an event is not kept.
		boom := errors.New("rolled back")
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if err := a.Record(ctx, tx, Event{Name: "login", AccountID: "acct", IP: "192.0.2.1"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _ := a.ForAccount(ctx, db, "acct", 10); len(got) != 2 {
			t.Errorf("entries after a rollback = %d, want 2", len(got))
		}

		// Erased: the key is shredded and the entries stay, unreadable; the log answers
		// nothing for the account.
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := v.Shred(ctx, tx, "acct"); err != nil {
				return err
			}
			return AuditHolder{}.Erase(ctx, tx, datamap.Subject{ID: "acct"})
		}); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_log`).Scan(&left); err != nil || left != 6 {
			t.Errorf("rows after erasing acct = %d, %v; want all six (the chain keeps them)", left, err)
		}
		if got, err := a.ForAccount(ctx, db, "acct", 10); err != nil || got != nil {
			t.Errorf("ForAccount of the erased account = %+v, %v; want nothing", got, err)
		}
		if got, err := a.ForAccount(ctx, db, "nokey", 10); err != nil || got != nil {
			t.Errorf("ForAccount of an account without a key = %+v, %v; want nothing", got, err)
		}
	})
}
