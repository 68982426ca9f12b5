package app_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/cli"
	"steward/internal/datamap/residuetest"
	"steward/internal/newsletter"
)

// tokenHash is how a confirmation link's token is kept: its SHA-256, in hex.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// subscriberRow is a subscriber row as stored, its sealed values opened.
type subscriberRow struct {
	id, subject, status, account string
	email, first, last, company  string
}

// subscriberOf finds a subscriber by address (its blind index) and opens its values
// with its subject's key; false if there is none.
func subscriberOf(t *testing.T, h *apptest.Harness, email string) (subscriberRow, bool) {
	t.Helper()
	ctx := context.Background()
	var r subscriberRow
	var account sql.NullString
	var sealed [4]string
	err := h.App.DB().QueryRowContext(ctx, `SELECT id, subject_id, status, account_id, email, first_name, last_name, company
		FROM subscribers WHERE email_hash = $1`, h.App.Newsletter().AddressHash(email)).
		Scan(&r.id, &r.subject, &r.status, &account, &sealed[0], &sealed[1], &sealed[2], &sealed[3])
	if err == sql.ErrNoRows {
		return r, false
	}
	if err != nil {
		t.Fatalf("subscriber %s: %v", email, err)
	}
	r.account = account.String
	key, err := h.App.Vault().KeyIn(ctx, h.App.DB(), r.subject, false)
	if err != nil {
		t.Fatalf("subscriber %s: the key of its subject %s: %v", email, r.subject, err)
	}
	for i, f := range []struct {
		label string
		out   *string
	}{{"subscribers.email", &r.email}, {"subscribers.first_name", &r.first}, {"subscribers.last_name", &r.last}, {"subscribers.company", &r.company}} {
		if *f.out, err = key.OpenText(f.label, sealed[i]); err != nil {
			t.Fatalf("subscriber %s: %s does not open under its subject's key: %v", email, f.label, err)
		}
	}
	return r, true
}

// subjectAddress is the address of a subject's subscription, opened.
func subjectAddress(t *testing.T, h *apptest.Harness, subject string) string {
	t.Helper()
	ctx := context.Background()
	var sealed string
	if err := h.App.DB().QueryRowContext(ctx, `SELECT email FROM subscribers WHERE subject_id = $1`, subject).Scan(&sealed); err != nil {
		t.Fatalf("subscriber of %s: %v", subject, err)
	}
	key, err := h.App.Vault().KeyIn(ctx, h.App.DB(), subject, false)
	if err != nil {
		t.Fatal(err)
	}
	email, err := key.OpenText("subscribers.email", sealed)
	if err != nil {
		t.Fatal(err)
	}
	return email
}

// rawTerms are the values of a subscriber to look for in the database's raw files: all
// of them, on both engines (the data map's check fails on any personal column that is
// neither sealed nor a keyed hash or an id).
func rawTerms(email, first, last, company string) []string {
	return []string{email, first, last, company}
}

// steward runs a command of the binary against the harness's database and key files.
func steward(t *testing.T, h *apptest.Harness, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	env := func(k string) string {
		switch k {
		case "STEWARD_DATA":
			return h.Data
		case "STEWARD_DATABASE":
			if h.App.DB().Dialect == "postgres" {
				return h.App.Config().DatabaseURL
			}
		case "STEWARD_MASTER_KEY_FILE":
			return h.App.Config().MasterKeyFile
		case "STEWARD_LEDGER_KEY_FILE":
			return h.App.Config().LedgerKeyFile
		}
		return ""
	}
	if code := cli.Run(context.Background(), append(args, "--log-level", "error"), env, &out, &out); code != 0 {
		t.Fatalf("steward %v: exit %d: %s", args, code, out.String())
	}
	return out.String()
}

// zipText is the text of every file of a zip archive.
func zipText(t *testing.T, path string) string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var b strings.Builder
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// A subscriber's address, names and company are stored only sealed under a data key of
// their own; a campaign reaches them (the mail opens the address and greets them by
// their first name), the operator's export opens them, and after the operator erases
// them (at once, or after they unsubscribed by a campaign's one-click link) none of
// their values is in the database's raw files, and their key is gone.
func TestErasedSubscriberUnreadableOnDisk(t *testing.T) {
	for _, unsubscribe := range []bool{false, true} {
		name := "erase"
		if unsubscribe {
			name = "unsubscribe-then-erase"
		}
		t.Run(name, func(t *testing.T) {
			apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
				ctx := context.Background()
				email := randomValue("sub.") + "@example.org"
				first, last, company := randomValue("Fn"), randomValue("Ln"), randomValue("Co ")
				if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": first, "last_name": last, "email": email,
					"company": company}, ""); r.Status != http.StatusAccepted {
					t.Fatalf("subscribe = %d %s", r.Status, r.Body)
				}
				_, tok := h.WaitMail(email, 1)[0].Link()
				if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); r.Status != http.StatusOK {
					t.Fatalf("confirm = %d %s", r.Status, r.Body)
				}
				row, ok := subscriberOf(t, h, email)
				if !ok || row.subject != row.id || row.email != email || row.first != first || row.last != last || row.company != company ||
					row.status != newsletter.StatusConfirmed {
					t.Fatalf("stored %+v, want %s %s %s %s confirmed under its own subject", row, email, first, last, company)
				}
				// Live, the values the newsletter alone holds are on disk only sealed.
				if found := residuetest.RawFindings(t, h.App.DB(), last, company); len(found) > 0 {
					t.Fatalf("a live subscriber's sealed values are on disk in plain text: %v", found)
				}
				aud := audience(t, h, newsletter.Purpose)
				if !aud[email] {
					t.Fatalf("the kept audience (opened) = %v, want %s", aud, email)
				}

				staffID, staff := h.Member(randomValue("editor.")+"@example.org", pw, nil)
				if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
					t.Fatal(err)
				}
				c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Sealed news",
					"body": "Hello."}, staff)
				if c.Status != http.StatusCreated {
					t.Fatalf("create = %d %s", c.Status, c.Body)
				}
				id := c.JSON()["id"].(string)
				if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff); r.Status != http.StatusAccepted {
					t.Fatalf("send = %d %s", r.Status, r.Body)
				}
				waitSent(t, h, staff, id)
				m := lastMail(t, h, email, "Sealed news")
				if !strings.Contains(m.Raw, "Hello "+first+",") {
					t.Errorf("the campaign mail does not greet the subscriber by the first name opened:\n%s", m.Raw)
				}
				if unsubscribe {
					req, _ := http.NewRequest("POST", h.URL+"/unsubscribe/one-click?t="+campaignToken(t, m), strings.NewReader("List-Unsubscribe=One-Click"))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := h.Client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("one-click = %d", resp.StatusCode)
					}
					if s, _ := h.App.Newsletter().Suppressed(ctx, email, newsletter.Purpose); !s {
						t.Fatal("the unsubscribed address is not suppressed")
					}
				}

				// The operator's export of the subscriber opens the sealed values with the
				// subscriber's key.
				file := filepath.Join(t.TempDir(), "export.zip")
				steward(t, h, "export", email, "--out", file)
				if got := zipText(t, file); !strings.Contains(got, last) || !strings.Contains(got, company) || !strings.Contains(got, email) {
					t.Errorf("the export does not hold the subscriber's values opened:\n%s", got)
				}

				if out := steward(t, h, "erase", email); !strings.Contains(out, "erased "+row.subject) {
					t.Fatalf("steward erase: %s", out)
				}
				if _, ok := subscriberOf(t, h, email); ok {
					t.Fatal("the erased subscriber is still on the list")
				}
				if has, err := h.App.Vault().HasKey(ctx, row.subject); err != nil || has {
					t.Fatalf("the erased subscriber's key: %v %v", has, err)
				}
				if s, _ := h.App.Newsletter().Suppressed(ctx, email, "own_offers"); !s {
					t.Error("the erased address is not suppressed for every purpose")
				}
				if found := residuetest.RawFindings(t, h.App.DB(), rawTerms(email, first, last, company)...); len(found) > 0 {
					t.Fatalf("after erasure: %v", found)
				}
			})
		})
	}
}

// A subscriber who later registers with the same address becomes the member: the row,
// its kept audience copies and its consent move to the account's id, sealed again under
// the account's key; the subscriber's own key is shredded. Erasing the member then
// leaves none of the subscriber's values on disk.
func TestSubscriberWhoRegistersIsSealedUnderTheAccountKey(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		email := randomValue("joiner.") + "@example.org"
		first, last, company := randomValue("Fn"), randomValue("Ln"), randomValue("Co ")
		if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": first, "last_name": last, "email": email,
			"company": company}, ""); r.Status != http.StatusAccepted {
			t.Fatalf("subscribe = %d %s", r.Status, r.Body)
		}
		_, tok := h.WaitMail(email, 1)[0].Link()
		if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); r.Status != http.StatusOK {
			t.Fatalf("confirm = %d %s", r.Status, r.Body)
		}
		before, _ := subscriberOf(t, h, email)
		var oldSealed string
		if err := h.App.DB().QueryRowContext(ctx, `SELECT last_name FROM subscribers WHERE id = $1`, before.id).Scan(&oldSealed); err != nil {
			t.Fatal(err)
		}
		oldKey, err := h.App.Vault().KeyIn(ctx, h.App.DB(), before.subject, false)
		if err != nil {
			t.Fatal(err)
		}

		accountID, token := h.Member(email, pw, nil)
		after, ok := subscriberOf(t, h, email) // opens with the account's key, or fails
		if !ok || after.id != before.id || after.subject != accountID || after.account != accountID || after.email != email ||
			after.first != first || after.last != last || after.company != company {
			t.Fatalf("after registering: %+v, want the row %s under the account %s with the same values", after, before.id, accountID)
		}
		if has, err := h.App.Vault().HasKey(ctx, before.subject); err != nil || has {
			t.Errorf("the subscriber's own key after the link: %v %v; want it shredded", has, err)
		}
		// What was sealed under the subscriber's own key opens under no key now: not
		// under the account's (the values were sealed again), and the old key is gone.
		accountKey, err := h.App.Vault().KeyIn(ctx, h.App.DB(), accountID, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := accountKey.OpenText("subscribers.last_name", oldSealed); err == nil {
			t.Error("a value sealed under the subscriber's key opens under the account's")
		}
		if v, err := oldKey.OpenText("subscribers.last_name", oldSealed); err != nil || v != last {
			t.Errorf("the old key in memory still opens the old value: %q %v", v, err)
		}
		// The kept audience's copies are the account's too.
		got := map[string]newsletter.Recipient{}
		if err := h.App.Newsletter().Recipients(ctx, newsletter.Purpose, func(r newsletter.Recipient) error { got[r.SubjectID] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := got[accountID]; r.Email != email || r.FirstName != first {
			t.Errorf("kept audience of the account: %+v", r)
		}
		if c := choice(t, h.Do("GET", "/api/v1/me/consents", nil, token), "newsletter"); c["decision"] != "granted" {
			t.Errorf("the member does not see the subscription's consent: %v", c)
		}

		// A pending subscription whose address an account then proves: its link's
		// evidence moves under the account's key too, and the link still works.
		pending := randomValue("pending.") + "@example.org"
		if r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": "Pen", "last_name": "Ding", "email": pending}, ""); r.Status != http.StatusAccepted {
			t.Fatalf("subscribe = %d %s", r.Status, r.Body)
		}
		_, pendingTok := h.WaitMail(pending, 1)[0].Link()
		pendingID, _ := h.Member(pending, pw, nil)
		if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": pendingTok}, ""); r.Status != http.StatusOK {
			t.Fatalf("confirming a link sealed again under the account's key = %d %s", r.Status, r.Body)
		}
		if got, _ := subscriberOf(t, h, pending); got.subject != pendingID || got.status != newsletter.StatusConfirmed || got.first != "Pen" {
			t.Errorf("the pending subscription after its address joined an account and was confirmed: %+v", got)
		}

		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))
		if _, ok := subscriberOf(t, h, email); ok {
			t.Fatal("the erased member's subscription is still on the list")
		}
		if found := residuetest.RawFindings(t, h.App.DB(), rawTerms(email, first, last, company)...); len(found) > 0 {
			t.Fatalf("after the member's erasure: %v", found)
		}
	})
}

// Subscribers an earlier release stored in plain text are sealed by SealLegacy (Start
// runs it): a subscriber without an account under a new key of its own, a member's
// subscription under the account's key, a pending link's evidence too, and the kept
// audience is made again from the sealed rows; the list of rows to seal is emptied.
func TestSealLegacySubscribers(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		accountID, _ := h.Member(randomValue("member.")+"@example.org", pw, nil)
		memberSub := randomValue("old.member.") + "@example.org"
		alone := randomValue("old.alone.") + "@example.org"
		pending := randomValue("old.pending.") + "@example.org"
		// As an earlier release wrote them: plain text, and listed by the migration.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source, created_at, confirmed_at)
				VALUES ('legacy-1', 'legacy-1', $1, $2, 'Alma', 'Alone', 'Old Works', 'confirmed', NULL, 'form', 1, 1)`, []any{alone, ns.AddressHash(alone)}},
			{`INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source, created_at, confirmed_at)
				VALUES ('legacy-2', $3, $1, $2, 'Mem', 'Ber', '', 'confirmed', $3, 'account', 1, 1)`, []any{memberSub, ns.AddressHash(memberSub), accountID}},
			{`INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company, status, account_id, source, created_at)
				VALUES ('legacy-3', 'legacy-3', $1, $2, 'Pen', 'Ding', '', 'pending', NULL, 'form', 1)`, []any{pending, ns.AddressHash(pending)}},
			{`INSERT INTO subscriber_tokens (id, subscriber_id, evidence, created_at, expires_at) VALUES ($1, 'legacy-3', '{"ip":"192.0.2.7"}', 1, $2)`,
				[]any{tokenHash("legacy-token"), int64(1) << 50}},
			{`INSERT INTO consent_events (id, subject_id, purpose, decision, source, policy_version, evidence, at)
				VALUES (900001, 'legacy-1', 'newsletter', 'granted', 'import', '1', '{}', 1)`, nil},
			{`INSERT INTO consent_state (subject_id, purpose, decision, event_id, at) VALUES ('legacy-1', 'newsletter', 'granted', 900001, 1)`, nil},
			{`INSERT INTO mailable (purpose, subject_id, email, first_name) VALUES ('newsletter', 'legacy-1', $1, 'Alma')`, []any{alone}},
			{`INSERT INTO subscribers_unsealed (id) VALUES ('legacy-1'), ('legacy-2'), ('legacy-3')`, nil},
		} {
			if _, err := h.App.DB().ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatalf("%s: %v", q.sql, err)
			}
		}
		n, err := ns.SealLegacy(ctx)
		if err != nil || n != 3 {
			t.Fatalf("SealLegacy = %d, %v; want 3", n, err)
		}
		if n, err := ns.SealLegacy(ctx); err != nil || n != 0 {
			t.Fatalf("SealLegacy again = %d, %v; want 0", n, err)
		}
		for email, want := range map[string]subscriberRow{
			alone:     {subject: "legacy-1", first: "Alma", last: "Alone", company: "Old Works"},
			memberSub: {subject: accountID, first: "Mem", last: "Ber"},
			pending:   {subject: "legacy-3", first: "Pen", last: "Ding"},
		} {
			got, ok := subscriberOf(t, h, email) // opens, or fails
			if !ok || got.subject != want.subject || got.email != email || got.first != want.first || got.last != want.last || got.company != want.company {
				t.Errorf("%s after sealing: %+v, want %+v", email, got, want)
			}
		}
		var plain int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers WHERE email LIKE '%@%' OR first_name IN ('Alma', 'Mem', 'Pen')`).Scan(&plain); err != nil || plain != 0 {
			t.Errorf("%d rows still in plain text (%v)", plain, err)
		}
		got := map[string]newsletter.Recipient{}
		if err := ns.Recipients(ctx, newsletter.Purpose, func(r newsletter.Recipient) error { got[r.SubjectID] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		if r := got["legacy-1"]; r.Email != alone || r.FirstName != "Alma" {
			t.Errorf("kept audience after sealing: %+v", got)
		}
		// The pending link still works: its evidence opens.
		if _, err := ns.Confirm(ctx, "legacy-token", map[string]string{"ip": "192.0.2.8"}); err != nil {
			t.Fatalf("confirming a link of an earlier release: %v", err)
		}
		if got, _ := subscriberOf(t, h, pending); got.status != newsletter.StatusConfirmed {
			t.Errorf("the pending subscriber after confirming: %+v", got)
		}
		hist, err := h.App.Consent().History(ctx, "legacy-3")
		if err != nil || len(hist) != 1 || hist[0].Evidence["request_ip"] != "192.0.2.7" {
			t.Errorf("the confirmation's consent: %+v %v", hist, err)
		}
		var left int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers_unsealed`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d rows left to seal (%v)", left, err)
		}
	})
}
