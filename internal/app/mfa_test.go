package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/governance"
)

// wantError fails unless the answer has the status and error code.
func wantError(t *testing.T, what string, r apptest.Response, status int, code string) {
	t.Helper()
	if _, got := r.ErrorField(); r.Status != status || got != code {
		t.Errorf("%s = %d %s, want %d %s", what, r.Status, r.Body, status, code)
	}
}

// TestStaffSecondFactor walks a staff account through the second factor: refused
// staff routes until it has one, enrollment, logins with a code, a replayed code, a
// recovery code used twice; a member without a staff role is asked nothing.
func TestStaffSecondFactor(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		const email, pw = "mfa.dpo@example.org", "correct horse battery"
		id, tok := h.Member(email, pw, nil)
		if err := h.App.Staff().Grant(ctx, id, "dpo"); err != nil {
			t.Fatal(err)
		}
		wantError(t, "staff route without a second factor", h.Do("GET", "/api/v1/staff/requests", nil, tok), 403, "second_factor_required")
		if l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, ""); l.JSON()["second_factor"] != "enroll" {
			t.Errorf("login of staff without a factor: second_factor = %v, want enroll", l.JSON()["second_factor"])
		}

		// Enrollment: the secret as text, URI and QR image; a wrong code refused.
		e := h.Do("POST", "/api/v1/me/second-factor", nil, tok)
		if e.Status != 201 {
			t.Fatalf("enroll = %d %s", e.Status, e.Body)
		}
		secret, _ := e.JSON()["secret"].(string)
		if uri, _ := e.JSON()["otpauth_uri"].(string); !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+secret) {
			t.Errorf("otpauth_uri = %q", uri)
		}
		if qr, _ := e.JSON()["qr_png"].(string); !strings.HasPrefix(qr, "data:image/png;base64,") || len(qr) < 200 {
			t.Errorf("qr_png = %.60q", qr)
		}
		wrong := "000000"
		if apptest.TOTPCode(secret, h.Clock.Now()) == wrong {
			wrong = "111111"
		}
		wantError(t, "confirm with a wrong code", h.Do("POST", "/api/v1/me/second-factor/confirm", map[string]string{"totp": wrong}, tok), 400, "code_wrong")
		code := apptest.TOTPCode(secret, h.Clock.Now())
		c := h.Do("POST", "/api/v1/me/second-factor/confirm", map[string]string{"totp": code}, tok)
		codes, _ := c.JSON()["recovery_codes"].([]any)
		if c.Status != 200 || len(codes) != 10 {
			t.Fatalf("confirm = %d %s, want 10 recovery codes", c.Status, c.Body)
		}
		if r := h.Do("GET", "/api/v1/staff/requests", nil, tok); r.Status != 200 {
			t.Errorf("staff route after enrolling = %d %s", r.Status, r.Body)
		}

		// A new login needs the factor; the member's own routes work meanwhile.
		l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
		tok2, _ := l.JSON()["token"].(string)
		if l.JSON()["second_factor"] != "required" {
			t.Errorf("second_factor = %v, want required", l.JSON()["second_factor"])
		}
		wantError(t, "staff route after a password-only login", h.Do("GET", "/api/v1/staff/requests", nil, tok2), 403, "second_factor_required")
		if r := h.Do("GET", "/api/v1/me", nil, tok2); r.Status != 200 {
			t.Errorf("own profile = %d", r.Status)
		}
		// The code used to confirm, replayed in its own time step: refused.
		wantError(t, "replayed code", h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": code}, tok2), 400, "code_used")
		wantError(t, "replayed code in a login", h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw, "totp": code}, ""), 400, "code_used")
		h.Clock.Advance(30 * time.Second)
		code = apptest.TOTPCode(secret, h.Clock.Now())
		if r := h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": code}, tok2); r.Status != 204 {
			t.Fatalf("next code = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/staff/requests", nil, tok2); r.Status != 200 {
			t.Errorf("staff route after the code = %d %s", r.Status, r.Body)
		}
		wantError(t, "the same code again", h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw, "totp": code}, ""), 400, "code_used")
		h.Clock.Advance(30 * time.Second)
		l = h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw, "totp": apptest.TOTPCode(secret, h.Clock.Now())}, "")
		if l.Status != 201 || l.JSON()["second_factor"] != "passed" {
			t.Fatalf("login with a code = %d %s", l.Status, l.Body)
		}

		// A recovery code works once.
		rc := codes[3].(string)
		_, tok3 := loginAPI(t, h, email, pw)
		if r := h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"recovery_code": strings.ToUpper(rc)}, tok3); r.Status != 204 {
			t.Fatalf("recovery code = %d %s", r.Status, r.Body)
		}
		if r := h.Do("GET", "/api/v1/staff/requests", nil, tok3); r.Status != 200 {
			t.Errorf("staff route after a recovery code = %d", r.Status)
		}
		_, tok4 := loginAPI(t, h, email, pw)
		wantError(t, "a recovery code used again", h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"recovery_code": rc}, tok4), 400, "code_wrong")
		if st := h.Do("GET", "/api/v1/me/second-factor", nil, tok4).JSON(); st["enrolled"] != true || st["recovery_codes_left"] != float64(9) {
			t.Errorf("status = %v, want enrolled with 9 codes left", st)
		}

		// The audit log has it all, sealed under the account.
		entries, err := h.App.Accounts().Activity(ctx, id, 100)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		for _, e := range entries {
			events = append(events, e.Event+":"+e.Detail)
		}
		for _, want := range []string{"second_factor_enrolled:", "second_factor_failed:wrong code", "second_factor_failed:code replayed",
			"second_factor_passed:", "recovery_code_used:"} {
			if !slices.Contains(events, want) {
				t.Errorf("audit entries %v lack %q", events, want)
			}
		}

		// A member without a staff role is asked nothing, and cannot set one up.
		_, mtok := h.Member("plain@example.org", pw, nil)
		if l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "plain@example.org", "password": pw}, ""); l.JSON()["second_factor"] != "none" {
			t.Errorf("member's second_factor = %v, want none", l.JSON()["second_factor"])
		}
		wantError(t, "member enrolls", h.Do("POST", "/api/v1/me/second-factor", nil, mtok), 403, "staff_only")
	})
}

// loginAPI logs in with the password alone.
func loginAPI(t *testing.T, h *apptest.Harness, email, pw string) (apptest.Response, string) {
	t.Helper()
	l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
	if l.Status != 201 {
		t.Fatalf("login %s = %d %s", email, l.Status, l.Body)
	}
	return l, l.JSON()["token"].(string)
}

// TestSecondFactorRateLimit: wrong codes spend the account's budget; past it even
// the right code waits.
func TestSecondFactorRateLimit(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--rate-limits=true")
		id, _ := h.Member("limited.dpo@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(t.Context(), id, "dpo"); err != nil {
			t.Fatal(err)
		}
		_, tok2 := loginAPI(t, h, "limited.dpo@example.org", "correct horse battery")
		for i := range 5 {
			wantError(t, "wrong code "+string(rune('1'+i)), h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": "12345" + string(rune('0'+i))}, tok2), 400, "code_wrong")
		}
		secret, err := apptest.TOTPSecret(t.Context(), h.App, id)
		if err != nil {
			t.Fatal(err)
		}
		// The sixth try is refused before its code is looked at.
		wantError(t, "sixth try", h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": "123456"}, tok2), 429, "rate_limited")
		h.Clock.Advance(61 * time.Second) // the bucket was overdrawn by one: two intervals
		if r := h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": apptest.TOTPCode(secret, h.Clock.Now())}, tok2); r.Status != 204 {
			t.Errorf("after the wait = %d %s", r.Status, r.Body)
		}
	})
}

// TestReauthAndStaffSessions: a sensitive action asks for the password or a code
// again once the window passed; staff sessions are shorter and end when idle.
func TestReauthAndStaffSessions(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := t.Context()
		const pw = "correct horse battery"
		adminID, tok := h.Member("boss@example.org", pw, nil)
		newID, _ := h.Member("new.support@example.org", pw, nil)
		if err := h.GrantStaff(ctx, adminID, "admin"); err != nil {
			t.Fatal(err)
		}
		grant := map[string]string{"email": "new.support@example.org", "role": "support"}
		h.Clock.Advance(11 * time.Minute) // past --reauth-window (10m), within the idle timeout (30m)
		wantError(t, "grant after the window", h.Do("POST", "/api/v1/staff/people", grant, tok), 403, "reauth_required")
		// The governance actions that reach members or erase are sensitive too.
		for _, path := range []string{"/api/v1/staff/policy/2099.1/publish", "/api/v1/staff/processors/email_provider/approve",
			"/api/v1/staff/breaches/none/notify", "/api/v1/staff/disclosures/none/lift", "/api/v1/staff/retention/run"} {
			wantError(t, path+" after the window", h.Do("POST", path, nil, tok), 403, "reauth_required")
		}
		if ok, _ := h.App.Staff().HasAny(ctx, newID, "support"); ok {
			t.Fatal("the role was granted without re-authentication")
		}
		wantError(t, "reauth with a wrong password", h.Do("POST", "/api/v1/sessions/current/reauth", map[string]string{"password": "wrong password!"}, tok), 400, "password_wrong")
		if r := h.Do("POST", "/api/v1/sessions/current/reauth", map[string]string{"password": pw}, tok); r.Status != 204 {
			t.Fatalf("reauth = %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/people", grant, tok); r.Status != 200 {
			t.Fatalf("grant = %d %s", r.Status, r.Body)
		}
		if ok, _ := h.App.Staff().HasAny(ctx, newID, "support"); !ok {
			t.Fatal("the role was not granted")
		}
		wantError(t, "grant to an unknown address", h.Do("POST", "/api/v1/staff/people", map[string]string{"email": "nobody@example.org", "role": "dpo"}, tok), 400, "account_not_found")
		wantError(t, "grant of an unknown role", h.Do("POST", "/api/v1/staff/people", map[string]string{"email": "new.support@example.org", "role": "owner"}, tok), 400, "role_unknown")
		people := h.Do("GET", "/api/v1/staff/people", nil, tok).JSON()["people"].([]any)
		found := false
		for _, p := range people {
			p := p.(map[string]any)
			if p["email"] == "new.support@example.org" && p["second_factor_enrolled"] == false && slices.Contains(p["roles"].([]any), any("support")) {
				found = true
			}
		}
		if !found {
			t.Errorf("people = %v, want new.support with support, no second factor", people)
		}
		wantError(t, "revoking the last admin", h.Do("DELETE", "/api/v1/staff/people/"+adminID+"/roles/admin", nil, tok), 409, "last_admin")
		if r := h.Do("DELETE", "/api/v1/staff/people/"+newID+"/roles/support", nil, tok); r.Status != 204 {
			t.Errorf("revoke = %d %s", r.Status, r.Body)
		}
		// Both changes are in the audit log, under the account changed and the admin.
		for who, want := range map[string]string{newID: "staff_role_revoked", adminID: "staff_change"} {
			entries, _ := h.App.Accounts().Activity(ctx, who, 50)
			if !slices.ContainsFunc(entries, func(e governance.Entry) bool { return e.Event == want }) {
				t.Errorf("no %s entry for %s", want, who)
			}
		}

		// A staff session lives 12 hours at most (--staff-session-ttl), and ends after
		// 30 minutes idle (--staff-session-idle).
		_, tok2 := loginAPI(t, h, "boss@example.org", pw)
		secret, err := apptest.TOTPSecret(ctx, h.App, adminID)
		if err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(30 * time.Second)
		if r := h.Do("POST", "/api/v1/sessions/current/second-factor", map[string]string{"totp": apptest.TOTPCode(secret, h.Clock.Now())}, tok2); r.Status != 204 {
			t.Fatalf("code = %d %s", r.Status, r.Body)
		}
		for _, s := range h.Do("GET", "/api/v1/sessions", nil, tok2).JSON()["sessions"].([]any) {
			s := s.(map[string]any)
			if s["current"] != true {
				continue
			}
			exp, _ := time.Parse(time.RFC3339, s["expires_at"].(string))
			if d := exp.Sub(h.Clock.Now()); d > 12*time.Hour+time.Minute {
				t.Errorf("a staff session expires in %v, want at most 12h", d)
			}
		}
		_, member := loginAPI(t, h, "new.support@example.org", pw) // no staff role any more: a member's session
		h.Clock.Advance(31 * time.Minute)
		wantError(t, "staff session idle 31 minutes", h.Do("GET", "/api/v1/me", nil, tok2), 401, "unauthenticated")
		if r := h.Do("GET", "/api/v1/me", nil, member); r.Status != 200 {
			t.Errorf("a member's session idle 31 minutes = %d, want alive", r.Status)
		}
	})
}

// TestAuditorRole: the auditor reads the audit log with its verification, and
// reaches no other staff route.
func TestAuditorRole(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		id, tok := h.Member("auditor@example.org", "correct horse battery", nil)
		if err := h.GrantStaff(t.Context(), id, "auditor"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.App.Audit().Chain(t.Context(), h.App.DB()); err != nil {
			t.Fatal(err)
		}
		// The log shows the newest verification of the whole chain; the auditor asks
		// for one, which the job runs.
		verified := func(source string) (map[string]any, map[string]any) {
			t.Helper()
			for range 200 {
				r := h.Do("GET", "/api/v1/staff/audit?size=2", nil, tok)
				if r.Status != 200 {
					t.Fatalf("audit = %d %s", r.Status, r.Body)
				}
				body := r.JSON()
				if ver, _ := body["verification"].(map[string]any); ver["source"] == source {
					return body, ver
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("no verification by %s came", source)
			return nil, nil
		}
		if r := h.Do("POST", "/api/v1/staff/audit/verify", nil, tok); r.Status != 202 {
			t.Fatalf("verify now = %d %s", r.Status, r.Body)
		}
		body, ver := verified("staff")
		entries, _ := body["entries"].([]any)
		if ver["intact"] != true || ver["done"] != true || ver["entries"].(float64) < 1 || len(entries) != 2 || body["total"].(float64) <= 2 {
			t.Errorf("audit = %v", body)
		}
		if got := fmt.Sprint(body["entries"]); !strings.Contains(got, "audit_verify_requested") {
			t.Errorf("the newest entries %s do not record the request", got)
		}
		// An entry changed in the database: the next verification names its place.
		if _, err := h.App.DB().ExecContext(t.Context(), `UPDATE audit_log SET event = 'forged' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		if _, err := h.App.Audit().VerifyAndKeep(t.Context(), h.App.DB(), "command"); err != nil {
			t.Fatal(err)
		}
		if _, ver := verified("command"); ver["intact"] != false || ver["broken_at"] != float64(2) {
			t.Errorf("after a forged entry the verification says %v", ver)
		}
		for _, path := range []string{"/api/v1/staff/requests", "/api/v1/staff/people", "/api/v1/staff/campaigns", "/api/v1/staff/holds", "/api/v1/staff/consent-conflicts"} {
			wantError(t, "auditor at "+path, h.Do("GET", path, nil, tok), http.StatusForbidden, "forbidden")
		}
	})
}
