package app_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

const pw = "tangerine-orbit-42"

func TestMemberLifecycle(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		email := "ada.lovelace@example.org"
		id, token := h.Member(email, pw, map[string]any{
			"name": "Ada Lovelace", "phone": "+44 20 7946 0958",
			"home_address": "12 Analytical Row, London", "business_address": "Engine House, Marylebone",
		})

		me := h.Do("GET", "/api/v1/me", nil, token)
		if me.Status != http.StatusOK || me.JSON()["email"] != email || me.JSON()["status"] != "active" {
			t.Fatalf("GET /me = %d %s", me.Status, me.Body)
		}
		if got := me.JSON()["phone"]; got != "+44 20 7946 0958" {
			t.Errorf("phone = %v", got)
		}

		// Edit the profile and make the name and country public.
		p := h.Do("PATCH", "/api/v1/me", map[string]any{"name": "Augusta Ada King", "public": map[string]bool{"name": true, "country": true}}, token)
		if p.Status != http.StatusOK || p.JSON()["name"] != "Augusta Ada King" {
			t.Fatalf("PATCH /me = %d %s", p.Status, p.Body)
		}
		pub := h.Do("GET", "/api/v1/members/"+id, nil, "")
		fields, _ := pub.JSON()["fields"].(map[string]any)
		if pub.Status != http.StatusOK || fields["name"] != "Augusta Ada King" || fields["country"] != "DE" || len(fields) != 2 {
			t.Errorf("public profile = %d %s, want only name and country", pub.Status, pub.Body)
		}
		// A second session, listed, then revoked by the first.
		l2 := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
		token2 := l2.JSON()["token"].(string)
		sessions := h.Do("GET", "/api/v1/sessions", nil, token).JSON()["sessions"].([]any)
		if len(sessions) != 2 {
			t.Fatalf("sessions = %d, want 2", len(sessions))
		}
		if r := h.Do("DELETE", "/api/v1/sessions/"+l2.JSON()["session_id"].(string), nil, token); r.Status != http.StatusNoContent {
			t.Fatalf("revoke = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/me", nil, token2); r.Status != http.StatusUnauthorized {
			t.Errorf("revoked session still works: %d", r.Status)
		}

		// The export holds what was given, and withholds the password hash.
		ex := h.Do("GET", "/api/v1/me/export", nil, token)
		if ex.Status != http.StatusOK || ex.Header.Get("Content-Type") != "application/zip" {
			t.Fatalf("export = %d %s", ex.Status, ex.Header.Get("Content-Type"))
		}
		files := unzip(t, ex.Body)
		for _, name := range []string{"manifest.json", "account/account.json", "account/accounts.csv", "account/sessions.csv", "audit_log/audit_log.json"} {
			if _, ok := files[name]; !ok {
				t.Errorf("export lacks %s; has %v", name, keys(files))
			}
		}
		if !strings.Contains(files["account/accounts.csv"], "Augusta Ada King") || !strings.Contains(files["account/account.json"], "12 Analytical Row") {
			t.Errorf("export lacks the profile: %s", files["account/accounts.csv"])
		}
		if strings.Contains(files["account/account.json"], "argon2id") {
			t.Error("export contains the password hash")
		}

		// Identifiers before erasure: the scanner must see them, or its silence proves nothing.
		terms, err := h.App.Accounts().Identifiers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(terms) < 6 {
			t.Fatalf("identifiers = %d, want id, email, name, phone, two addresses", len(terms))
		}
		before, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
		if err != nil || len(before) == 0 {
			t.Fatalf("scan before erasure found nothing (err %v)", err)
		}
		if h.App.DB().Dialect == store.SQLite && !slices.ContainsFunc(before, func(f datamap.Finding) bool { return strings.HasPrefix(f.Where, "file ") }) {
			t.Errorf("the raw file scan did not see the live member: %v", before)
		}
		if !slices.ContainsFunc(before, func(f datamap.Finding) bool { return strings.HasPrefix(f.Where, "outbox file ") }) {
			t.Errorf("the outbox folder scan did not see the member's mail: %v", before)
		}

		// Delete: the wrong password is refused, the right one erases.
		if r := h.Do("DELETE", "/api/v1/me", map[string]string{"password": "wrong-password-1"}, token); r.Status != http.StatusBadRequest {
			t.Fatalf("delete with wrong password = %d %s", r.Status, r.Body)
		}
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		if del.Status != http.StatusAccepted {
			t.Fatalf("delete = %d %s", del.Status, del.Body)
		}
		h.WaitErasure(del.JSON()["request_id"].(string))

		if r := h.Do("GET", "/api/v1/me", nil, token); r.Status != http.StatusUnauthorized {
			t.Errorf("session survived erasure: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, ""); r.Status != http.StatusUnauthorized {
			t.Errorf("login after erasure = %d", r.Status)
		}
		if r := h.Do("GET", "/api/v1/members/"+id, nil, ""); r.Status != http.StatusNotFound {
			t.Errorf("public profile after erasure = %d", r.Status)
		}
		after, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range after {
			t.Errorf("residue after erasure: %s", f)
		}
		if at, ok, err := h.App.Rights().Erased(ctx, email); err != nil || !ok || at.IsZero() {
			t.Errorf("ledger has no erasure of the email: %v %v", ok, err)
		}
	})
}

func unzip(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(data)
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBadInput(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		future := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
		valid := `"email":"bad@example.org","password":"` + pw + `","name":"B","birthdate":"1980-01-01","country":"FR"`
		tests := []struct {
			name   string
			body   string
			status int
			field  string
			code   string
		}{
			{"malformed json", `{"email":`, 400, "", "malformed_json"},
			{"not an object", `[1,2]`, 400, "", "wrong_type"},
			{"unknown field", `{` + valid + `,"admin":true}`, 400, "admin", "unknown_field"},
			{"wrong type", `{"email":42}`, 400, "email", "wrong_type"},
			{"missing email", `{"password":"` + pw + `","name":"B","birthdate":"1980-01-01","country":"FR"}`, 400, "email", "required"},
			{"invalid email", `{"email":"not-an-address","password":"` + pw + `","name":"B","birthdate":"1980-01-01","country":"FR"}`, 400, "email", "email_invalid"},
			{"missing name (required)", `{"email":"a@example.org","password":"` + pw + `","birthdate":"1980-01-01","country":"FR"}`, 400, "name", "required"},
			{"short password", `{"email":"a@example.org","password":"short","name":"B","birthdate":"1980-01-01","country":"FR"}`, 400, "password", "password_too_short"},
			{"common password", `{"email":"a@example.org","password":"password123","name":"B","birthdate":"1980-01-01","country":"FR"}`, 400, "password", "password_common"},
			{"future birthdate", `{"email":"a@example.org","password":"` + pw + `","name":"B","birthdate":"` + future + `","country":"FR"}`, 400, "birthdate", "date_future"},
			{"bad birthdate", `{"email":"a@example.org","password":"` + pw + `","name":"B","birthdate":"03/02/1980","country":"FR"}`, 400, "birthdate", "date_invalid"},
			{"unknown country", `{"email":"a@example.org","password":"` + pw + `","name":"B","birthdate":"1980-01-01","country":"XQ"}`, 400, "country", "country_unknown"},
			{"card number in name", `{"email":"a@example.org","password":"` + pw + `","name":"4111 1111 1111 1111","birthdate":"1980-01-01","country":"FR"}`, 400, "name", "card_number"},
			{"card number in address", `{` + valid + `,"home_address":"Pay with 5500-0055-5555-5559"}`, 400, "home_address", "card_number"},
			{"bad phone", `{` + valid + `,"phone":"call me maybe"}`, 400, "phone", "phone_invalid"},
			{"oversized body", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "", "body_too_large"},
		}
		for _, tt := range tests {
			r := h.Do("POST", "/api/v1/accounts", tt.body, "")
			field, code := r.ErrorField()
			if r.Status != tt.status || field != tt.field || code != tt.code {
				t.Errorf("%s: got %d field=%q code=%q, want %d field=%q code=%q (%s)", tt.name, r.Status, field, code, tt.status, tt.field, tt.code, r.Body)
			}
		}
		// Nothing was stored by any of them.
		var n int
		if err := h.App.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 0 {
			t.Errorf("accounts after bad input = %d (%v), want 0", n, err)
		}
		// Card numbers are refused on profile edits too.
		_, token := h.Member("edit@example.org", pw, nil)
		r := h.Do("PATCH", "/api/v1/me", map[string]string{"business_address": "card 4111111111111111 exp 12/29"}, token)
		if f, c := r.ErrorField(); r.Status != 400 || f != "business_address" || c != "card_number" {
			t.Errorf("PATCH with card number = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/me", nil, "not-a-token"); r.Status != http.StatusUnauthorized {
			t.Errorf("bad token = %d", r.Status)
		}
	})
}

func TestNoAccountEnumeration(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		email := "taken@example.org"
		h.Member(email, pw, nil)
		again := h.Register(map[string]any{"email": email, "password": "another-good-pass-9", "name": "Someone", "birthdate": "1970-01-01", "country": "IT"})
		fresh := h.Register(map[string]any{"email": "fresh@example.org", "password": "another-good-pass-9", "name": "Someone", "birthdate": "1970-01-01", "country": "IT"})
		if again.Status != fresh.Status || again.JSON()["status"] != fresh.JSON()["status"] || len(again.JSON()["id"].(string)) != len(fresh.JSON()["id"].(string)) {
			t.Errorf("taken address answered differently: %s vs %s", again.Body, fresh.Body)
		}
		mails := h.WaitMail(email, 2)
		if !strings.Contains(mails[1].Raw, "You already have an account") {
			t.Errorf("owner not told of the attempt: %s", mails[1].Raw)
		}
		wrongPass := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": "not-the-password"}, "")
		noUser := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "nobody@example.org", "password": "not-the-password"}, "")
		if wrongPass.Status != 401 || noUser.Status != 401 || string(wrongPass.Body) != string(noUser.Body) {
			t.Errorf("login errors differ: %s vs %s", wrongPass.Body, noUser.Body)
		}
		// Reset answers the same for known and unknown addresses, and neither sooner
		// than the floor that hides the known one's extra transaction.
		timed := func(addr string) (apptest.Response, time.Duration) {
			start := time.Now()
			r := h.Do("POST", "/api/v1/password-resets", map[string]string{"email": addr}, "")
			return r, time.Since(start)
		}
		r1, d1 := timed(email)
		r2, d2 := timed("nobody@example.org")
		if r1.Status != 202 || string(r1.Body) != string(r2.Body) {
			t.Errorf("reset answers differ: %d %s vs %s", r1.Status, r1.Body, r2.Body)
		}
		if d1 < 40*time.Millisecond || d2 < 40*time.Millisecond {
			t.Errorf("reset answered in %v (known) and %v (unknown), want both at least 40 ms", d1, d2)
		}
	})
}

func TestChildNeedsGuardian(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		twelve := time.Now().AddDate(-12, 0, -1).Format("2006-01-02")
		fourteen := time.Now().AddDate(-14, 0, -1).Format("2006-01-02")
		child := map[string]any{"email": "kid@example.org", "password": pw, "name": "Kid Example", "birthdate": twelve, "country": "FR", "phone": "+33 1 23 45 67 89"}

		r := h.Register(child)
		if f, _ := r.ErrorField(); r.Status != 400 || f != "guardian_email" {
			t.Fatalf("child without guardian = %d %s", r.Status, r.Body)
		}
		// 14 in Italy (age of consent 14) may register alone; 14 in France (15) may not.
		alone := h.Register(map[string]any{"email": "teen@example.org", "password": pw, "name": "Teen", "birthdate": fourteen, "country": "IT"})
		if alone.Status != 201 || alone.JSON()["status"] != "pending_verification" {
			t.Errorf("14 in IT = %d %s", alone.Status, alone.Body)
		}
		if r := h.Register(map[string]any{"email": "teen2@example.org", "password": pw, "name": "Teen", "birthdate": fourteen, "country": "FR"}); r.Status != 400 {
			t.Errorf("14 in FR without guardian = %d", r.Status)
		}

		child["guardian_email"] = "parent@example.org"
		r = h.Register(child)
		if r.Status != 201 || r.JSON()["status"] != "pending_guardian" {
			t.Fatalf("child with guardian = %d %s", r.Status, r.Body)
		}
		id := r.JSON()["id"].(string)
		p, err := h.App.Accounts().Profile(ctx, id)
		if err != nil || p.Phone != "" {
			t.Errorf("optional phone kept before the guardian agreed: %q (%v)", p.Phone, err)
		}
		_, vtok := h.WaitMail("kid@example.org", 1)[0].Link()
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": vtok}, ""); v.Status != 200 || v.JSON()["status"] != "pending_guardian" {
			t.Errorf("child verify = %d %s", v.Status, v.Body)
		}
		login := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "kid@example.org", "password": pw}, "")
		if _, c := login.ErrorField(); login.Status != 403 || c != "guardian_pending" {
			t.Errorf("login before guardian = %d %s", login.Status, login.Body)
		}
		_, gtok := h.WaitMail("parent@example.org", 1)[0].Link()
		g := h.Do("GET", "/api/v1/guardian-consents?token="+gtok, nil, "")
		if g.JSON()["child_email"] != "kid@example.org" {
			t.Errorf("guardian request = %s", g.Body)
		}
		if r := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": gtok, "agree": true}, ""); r.Status != 204 {
			t.Fatalf("guardian agree = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": gtok, "agree": true}, ""); r.Status != 400 {
			t.Errorf("guardian link used twice = %d", r.Status)
		}
		if login := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "kid@example.org", "password": pw}, ""); login.Status != 201 {
			t.Errorf("login after guardian = %d %s", login.Status, login.Body)
		}

		// A guardian who declines erases the registration.
		other := map[string]any{"email": "kid2@example.org", "password": pw, "name": "Kid Two", "birthdate": twelve, "country": "DE", "guardian_email": "parent2@example.org"}
		r = h.Register(other)
		id2 := r.JSON()["id"].(string)
		_, gtok2 := h.WaitMail("parent2@example.org", 1)[0].Link()
		waitOutboxEmpty(t, h)
		if r := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": gtok2, "agree": false}, ""); r.Status != 204 {
			t.Fatalf("guardian decline = %d %s", r.Status, r.Body)
		}
		if _, err := h.App.Accounts().Lookup(ctx, id2); err == nil {
			t.Error("declined child's account still exists")
		}
		// The child never proved the address: the mail already handed to it and to the
		// guardian is theirs (the .eml folder stands in for their mailboxes), as it would
		// be with a mail server. Steward keeps nothing.
		found, err := datamap.Scan(ctx, h.App.DB(), []datamap.Term{{Kind: "email", Value: "kid2@example.org"}, {Kind: "id", Value: id2}, {Kind: "name", Value: "Kid Two"}})
		if err != nil || len(found) > 0 {
			t.Errorf("residue of declined child: %v %v", found, err)
		}
	})
}

func TestPasswordReset(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		email := "forgetful@example.org"
		_, token := h.Member(email, pw, nil)
		if r := h.Do("POST", "/api/v1/password-resets", map[string]string{"email": email}, ""); r.Status != 202 {
			t.Fatalf("reset request = %d", r.Status)
		}
		rtok := h.WaitLink(email, "/password/reset?token=")
		if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": rtok, "password": "qwertyuiop"}, ""); r.Status != 400 {
			t.Errorf("reset to a common password = %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": rtok, "password": "new-and-long-pass-7"}, ""); r.Status != 204 {
			t.Fatalf("reset = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": rtok, "password": "new-and-long-pass-8"}, ""); r.Status != 400 {
			t.Errorf("reset link used twice = %d", r.Status)
		}
		if r := h.Do("GET", "/api/v1/me", nil, token); r.Status != 401 {
			t.Errorf("old session survived the reset: %d", r.Status)
		}
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": "new-and-long-pass-7"}, ""); r.Status != 201 {
			t.Errorf("login with the new password = %d", r.Status)
		}
		h.WaitMail(email, 3) // the "password changed" notice
	})
}

func TestLogoutEverywhere(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		email := "many@example.org"
		_, t1 := h.Member(email, pw, nil)
		t2 := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "").JSON()["token"].(string)
		_, other := h.Member("other@example.org", pw, nil)
		otherSess := h.Do("GET", "/api/v1/sessions", nil, other).JSON()["sessions"].([]any)[0].(map[string]any)["id"].(string)
		// A member cannot revoke another member's session.
		if r := h.Do("DELETE", "/api/v1/sessions/"+otherSess, nil, t1); r.Status != 404 {
			t.Errorf("revoking another member's session = %d", r.Status)
		}
		r := h.Do("DELETE", "/api/v1/sessions", nil, t2)
		if r.Status != 200 || r.JSON()["ended"] != float64(2) {
			t.Fatalf("logout everywhere = %d %s", r.Status, r.Body)
		}
		for _, tok := range []string{t1, t2} {
			if r := h.Do("GET", "/api/v1/me", nil, tok); r.Status != 401 {
				t.Errorf("session alive after logout everywhere: %d", r.Status)
			}
		}
		if r := h.Do("GET", "/api/v1/me", nil, other); r.Status != 200 {
			t.Errorf("another member's session ended too: %d", r.Status)
		}
	})
}

func TestDataMapCoversSchema(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		problems, err := h.App.Registry().Coverage(ctx, h.App.DB())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("data map: %s", p)
		}
		// The check must catch what nobody declared.
		if _, err := h.App.DB().ExecContext(ctx, `CREATE TABLE stray_notes (id TEXT PRIMARY KEY, note TEXT)`); err != nil {
			t.Fatal(err)
		}
		problems, _ = h.App.Registry().Coverage(ctx, h.App.DB())
		if len(problems) != 2 || !strings.Contains(strings.Join(problems, "\n"), "stray_notes.note: not declared") {
			t.Errorf("undeclared table not reported: %v", problems)
		}
	})
}

func TestArgon2RehashOnParameterChange(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "shared.db")
	if pg := storetest.PostgresURL(t); pg != "" {
		dbURL = pg
	}
	h := apptest.Start(t, dbURL)
	id, _ := h.Member("rehash@example.org", pw, nil)
	if strings.HasPrefix(dbURL, "sqlite:") {
		h.Close() // one server per SQLite database: the second start would be refused
	}
	h2 := apptest.Start(t, dbURL, "--argon2-memory", "2048", "--argon2-time", "2")
	if r := h2.Do("POST", "/api/v1/sessions", map[string]string{"email": "rehash@example.org", "password": pw}, ""); r.Status != 201 {
		t.Fatalf("login = %d %s", r.Status, r.Body)
	}
	var hash string
	if err := h2.App.DB().QueryRowContext(context.Background(), `SELECT password_hash FROM accounts WHERE id = $1`, id).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hash, "m=2048,t=2,") {
		t.Errorf("hash not renewed with the new parameters: %s", hash)
	}
}

// TestConfirmationOverSMTP runs the registration with the SMTP sender against a real
// SMTP server and confirms the address with the link it delivered.
func TestConfirmationOverSMTP(t *testing.T) {
	addr, api := smtpServer(t)
	h := apptest.Start(t, "", "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
	email := fmt.Sprintf("smtp-%d@example.org", time.Now().UnixNano())
	if r := h.Register(map[string]any{"email": email, "password": pw, "name": "Post Man", "birthdate": "1960-06-06", "country": "NL"}); r.Status != 201 {
		t.Fatalf("register = %d %s", r.Status, r.Body)
	}
	_, text := mailpitMessage(t, api, email, "Confirm your email")
	_, token := apptest.Mail{Raw: text}.Link()
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": token}, ""); v.Status != 200 || v.JSON()["status"] != "active" {
		t.Fatalf("verify with the delivered link = %d %s", v.Status, v.Body)
	}
	var left int
	if err := h.App.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM mail_outbox`).Scan(&left); err != nil || left != 0 {
		t.Errorf("outbox keeps %d delivered message(s)", left)
	}
}

// smtpServer returns the test SMTP server and its API, skipping (or failing, when the
// services are required) without one.
func smtpServer(t *testing.T) (addr, api string) {
	t.Helper()
	addr, api = os.Getenv("STEWARD_TEST_SMTP_ADDR"), os.Getenv("STEWARD_TEST_MAILPIT_URL")
	if addr == "" || api == "" {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("STEWARD_TEST_SMTP_ADDR and STEWARD_TEST_MAILPIT_URL are required")
		}
		t.Skip("no SMTP server configured")
	}
	return addr, api
}
