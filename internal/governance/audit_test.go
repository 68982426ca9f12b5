package governance

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

func newAudit(t testing.TB, db *store.DB) (*Audit, *vault.Vault, *vault.Index) {
	t.Helper()
	v, err := vault.Open(context.Background(), db, vault.Config{KeyFile: filepath.Join(t.TempDir(), "master.key"), Create: true, Grace: -1},
		time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	index := vault.NewIndex([]byte("0123456789abcdef0123456789abcdef"))
	return NewAudit(v, index, GenerateAuditKey(), time.Now), v, index
}

// An account's events keep IP and detail sealed under its key and open for the
// member and the export; an event without an account keeps only the IP's blind
// index, by which staff find it; an account without a key gets no new event.
func TestAuditSealed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, index := newAudit(t, db)
		key, err := v.DataKey(ctx, "acct", true)
		if err != nil {
			t.Fatal(err)
		}
		events := []Event{
			{Name: "login_failed", AccountID: "acct", IP: "2001:db8::a1", Detail: "wrong password"},
			{Name: "login", AccountID: "acct", IP: "2001:db8::a1"},
			{Name: "login_failed", IP: "2001:db8::b2", Detail: "unknown account"},
		}
		for _, e := range events {
			if err := a.Record(ctx, db, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Record(ctx, db, Event{Name: "login", AccountID: "erased", IP: "2001:db8::c3"}); err == nil {
			t.Error("an event was recorded for an account without a key")
		}
		raw, err := store.Strings(ctx, db, `SELECT ip || ' ' || detail || ' ' || COALESCE(ip_idx, '') FROM audit_log`)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw {
			if strings.Contains(r, "2001:db8") || strings.Contains(r, "wrong password") {
				t.Errorf("an audit row holds plain text: %s", r)
			}
		}
		got, err := a.ForAccount(ctx, db, "acct", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Event != "login" || got[0].IP != "2001:db8::a1" || got[1].Detail != "wrong password" {
			t.Errorf("ForAccount: %+v", got)
		}
		secs, err := AuditHolder{Index: index}.Export(ctx, db, datamap.Subject{ID: "acct", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if len(secs) != 1 || len(secs[0].Rows) != 2 || !strings.Contains(strings.Join(secs[0].Rows[0], " "), "2001:db8::a1 wrong password") {
			t.Errorf("export: %+v", secs)
		}
		var idx string
		if err := db.QueryRowContext(ctx, `SELECT ip_idx FROM audit_log WHERE account_idx IS NULL`).Scan(&idx); err != nil || idx != index.Of("ip", "2001:db8::b2") {
			t.Errorf("ip_idx = %q, %v", idx, err)
		}
		staff, err := a.FromIP(ctx, db, "2001:DB8::B2", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(staff) != 1 || staff[0].Detail != "unknown account" || staff[0].Event != "login_failed" {
			t.Errorf("FromIP: %+v", staff)
		}
	})
}

// Rows an earlier release wrote in plain text are brought to the sealed form at
// start: an account's under its key, those without an account to the IP's blind
// index, those of an account without a key (erased) deleted.
func TestAuditSealLegacy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, v, index := newAudit(t, db)
		if _, err := v.DataKey(ctx, "acct", true); err != nil {
			t.Fatal(err)
		}
		for i, r := range [][]any{
			{"acct", "198.51.100.7", "wrong password"},
			{nil, "198.51.100.8", "unknown account"},
			{"gone", "198.51.100.9", ""},
		} {
			if _, err := db.ExecContext(ctx, `INSERT INTO audit_log (at, event, account_id, ip, detail) VALUES ($1, 'login_failed', $2, $3, $4)`,
				i, r[0], r[1], r[2]); err != nil {
				t.Fatal(err)
			}
		}
		n, err := a.SealLegacy(ctx, db)
		if err != nil || n != 3 {
			t.Fatalf("SealLegacy = %d, %v; want 3", n, err)
		}
		if n, err := a.SealLegacy(ctx, db); err != nil || n != 0 {
			t.Errorf("again: %d, %v; want 0", n, err)
		}
		raw, err := store.Strings(ctx, db, `SELECT ip || ' ' || detail FROM audit_log`)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 2 {
			t.Errorf("rows after sealing: %q, want the erased account's gone", raw)
		}
		for _, r := range raw {
			if strings.Contains(r, "198.51.100") || strings.Contains(r, "wrong password") {
				t.Errorf("an audit row holds plain text: %s", r)
			}
		}
		got, err := a.ForAccount(ctx, db, "acct", 10)
		if err != nil || len(got) != 1 || got[0].IP != "198.51.100.7" || got[0].Detail != "wrong password" {
			t.Errorf("ForAccount: %+v, %v", got, err)
		}
		var idx string
		if err := db.QueryRowContext(ctx, `SELECT ip_idx FROM audit_log WHERE account_idx IS NULL`).Scan(&idx); err != nil || idx != index.Of("ip", "198.51.100.8") {
			t.Errorf("ip_idx = %q, %v", idx, err)
		}
	})
}
