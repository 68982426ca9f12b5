package app_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/store"
)

// After an upgrade from the release before sealed mail and audit log (migration 15),
// the first start seals the audit log that release wrote (an account's entries
// under its key, the IP of an entry without an account kept only as its blind
// index), and a mail it queued in plain text is sent as it is.
func TestUpgradeSealsAuditLogAndSendsQueuedMail(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		if dbURL == "" {
			dbURL = "sqlite:" + filepath.Join(t.TempDir(), "steward.db")
		}
		db, err := store.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.MigrateTo(ctx, 15); err != nil {
			t.Fatal(err)
		}
		ipAccount, ipNone := randomIP(), randomIP()
		to := randomValue("legacy.") + "@example.org"
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO accounts (id, email, password_hash, status, name, birthdate, country, created_at, updated_at)
				VALUES ('legacy-acct', $1, 'x', 'active', 'Legacy Member', '1980-01-01', 'DE', 1, 1)`, []any{randomValue("member.") + "@example.org"}},
			{`INSERT INTO audit_log (at, event, account_id, ip, detail) VALUES (1, 'login_failed', 'legacy-acct', $1, 'wrong password')`, []any{ipAccount}},
			{`INSERT INTO audit_log (at, event, account_id, ip, detail) VALUES (2, 'login_failed', NULL, $1, 'unknown account')`, []any{ipNone}},
			{`INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, template, data, created_at)
				VALUES ('legacy-mail', $1, '', '', '', 'password_reset', '{"Link":"https://example.org/legacy-link"}', 1)`, []any{to}},
		} {
			if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()

		h := apptest.Start(t, dbURL)
		if m := h.WaitMail(to, 1); !strings.Contains(m[0].Raw, "https://example.org/legacy-link") {
			t.Errorf("the mail queued before the upgrade: %s", m[0].Raw)
		}
		raw, err := store.Strings(ctx, h.App.DB(), `SELECT ip || ' ' || detail || ' ' || sealed FROM audit_log`)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw {
			if strings.Contains(r, ipAccount) || strings.Contains(r, ipNone) || strings.Contains(r, "wrong password") || !strings.HasSuffix(r, " 1") {
				t.Errorf("an audit row not sealed at start: %s", r)
			}
		}
		got, err := h.App.Audit().ForAccount(ctx, h.App.DB(), "legacy-acct", 10)
		if err != nil || len(got) != 1 || got[0].IP != ipAccount || got[0].Detail != "wrong password" {
			t.Errorf("the legacy account's log: %+v, %v", got, err)
		}
		from, err := h.App.Audit().FromIP(ctx, h.App.DB(), ipNone, 10)
		if err != nil || len(from) != 1 || from[0].Detail != "unknown account" {
			t.Errorf("the failed login from %s: %+v, %v", ipNone, from, err)
		}
		// The entries name their account only by a keyed hash now, and begin the chain
		// as its entries from before it (no MAC); it verifies.
		var plainIDs int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE account_id IS NOT NULL`).Scan(&plainIDs); err != nil || plainIDs != 0 {
			t.Errorf("entries with a plain account id after the start: %d, %v", plainIDs, err)
		}
		if rep, err := h.App.Audit().Verify(ctx, h.App.DB()); err != nil || !rep.Intact() || rep.Entries != 2 || rep.Legacy != 2 {
			t.Errorf("verify after the upgrade: %+v, %v; want the 2 entries from before the chain", rep, err)
		}
	})
}
