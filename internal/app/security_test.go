package app_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"steward/internal/app/apptest"
)

func TestSecurityHeadersAndCrossOrigin(t *testing.T) {
	h := apptest.Start(t, "")
	r := h.Do("GET", "/api/v1/members/nobody", nil, "")
	for header, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "frame-ancestors 'none'",
	} {
		if got := r.Header.Get(header); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	// The page beacons answer with their own short set: no sniffing, no referrer, a
	// policy that allows nothing, and no framing; the documents' other headers stay off.
	hb := apptest.Start(t, "", "--analytics-sites", "example.com", "--analytics-cookieless=true")
	for _, b := range []apptest.Response{
		apptest.Call(t, hb.Client, hb.URL, "GET", "/b.gif?s=example.com&p=/", nil, "", nil),
		apptest.Call(t, hb.Client, hb.URL, "POST", "/api/v1/events", map[string]string{"site": "example.com", "path": "/"}, "", nil),
	} {
		if b.Status >= 300 {
			t.Fatalf("beacon = %d %s", b.Status, b.Body)
		}
		for header, want := range map[string]string{
			"X-Content-Type-Options":       "nosniff",
			"Referrer-Policy":              "no-referrer",
			"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
			"Cross-Origin-Resource-Policy": "cross-origin",
			"X-Frame-Options":              "",
			"Permissions-Policy":           "",
		} {
			if got := b.Header.Get(header); got != want {
				t.Errorf("beacon (%d): %s = %q, want %q", b.Status, header, got, want)
			}
		}
	}
	// A state-changing request from another site is refused before any handler runs.
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/accounts", strings.NewReader(`{"email":"x@example.org"}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST with %v = %d, want 403", hdr, resp.StatusCode)
		}
	}
}

func TestRateLimits(t *testing.T) {
	h := apptest.Start(t, "", "--rate-limits=true")
	h.Member("limited@example.org", pw, nil) // one login spent
	var last apptest.Response
	for range 6 {
		last = h.Do("POST", "/api/v1/sessions", map[string]string{"email": "limited@example.org", "password": "wrong-guess-000"}, "")
	}
	if _, code := last.ErrorField(); last.Status != http.StatusTooManyRequests || code != "rate_limited" || last.Header.Get("Retry-After") == "" {
		t.Errorf("6 failed logins on one account: last = %d %s", last.Status, last.Body)
	}
	// Even the right password waits at this IP: the budget is per account and IP, not per mistake.
	if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "limited@example.org", "password": pw}, ""); r.Status != http.StatusTooManyRequests {
		t.Errorf("login while limited = %d", r.Status)
	}
	// Registration is limited per address of the client.
	statuses := []int{}
	for i := range 6 {
		r := h.Register(map[string]any{"email": "flood" + string(rune('a'+i)) + "@example.org", "password": pw, "name": "Flood",
			"birthdate": "1980-01-01", "country": "DE"})
		statuses = append(statuses, r.Status)
	}
	if statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Errorf("registration statuses = %v, want the last limited (the first was spent by Member)", statuses)
	}
	// Reset requests are limited per address too.
	var rs apptest.Response
	for range 4 {
		rs = h.Do("POST", "/api/v1/password-resets", map[string]string{"email": "limited@example.org"}, "")
	}
	if rs.Status != http.StatusTooManyRequests {
		t.Errorf("4 reset requests = %d, want 429", rs.Status)
	}
}

// Registering one address is limited per address too: from many client addresses
// (behind a trusted proxy) its owner still cannot be flooded with mail.
func TestRegistrationLimitedPerAddress(t *testing.T) {
	h := apptest.Start(t, "", "--rate-limits=true", "--trust-proxy=true")
	var last int
	for i := range 7 {
		req, _ := http.NewRequest("POST", h.URL+"/api/v1/accounts", strings.NewReader(
			`{"email":"flooded@example.org","password":"`+pw+`","name":"F","birthdate":"1980-01-01","country":"DE"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "192.0.2."+strconv.Itoa(10+i))
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("7th registration of one address from 7 IPs = %d, want 429", last)
	}
}

// Changing the email address needs the password and tells the old address.
func TestEmailChangeNeedsPassword(t *testing.T) {
	h := apptest.Start(t, "")
	_, token := h.Member("old.address@example.org", pw, nil)
	r := h.Do("PATCH", "/api/v1/me", map[string]string{"email": "new.address@example.org"}, token)
	if f, _ := r.ErrorField(); r.Status != 400 || f != "current_password" {
		t.Fatalf("email change without password = %d %s", r.Status, r.Body)
	}
	r = h.Do("PATCH", "/api/v1/me", map[string]string{"email": "new.address@example.org", "current_password": pw}, token)
	if r.Status != 200 || r.JSON()["pending_email"] != "new.address@example.org" || r.JSON()["email"] != "old.address@example.org" {
		t.Fatalf("email change = %d %s", r.Status, r.Body)
	}
	old := h.WaitMail("old.address@example.org", 2)
	if !strings.Contains(old[1].Raw, "asked to change its email address") {
		t.Errorf("the old address was not told: %s", old[1].Raw)
	}
	_, tok := h.WaitMail("new.address@example.org", 1)[0].Link()
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); v.Status != 200 {
		t.Fatalf("confirm new address = %d", v.Status)
	}
	if me := h.Do("GET", "/api/v1/me", nil, token); me.JSON()["email"] != "new.address@example.org" {
		t.Errorf("after confirming: %s", me.Body)
	}
}

// A password reset proves the mailbox: an account whose confirmation link expired
// gets in that way.
func TestResetVerifiesAddress(t *testing.T) {
	h := apptest.Start(t, "")
	email := "late.confirmer@example.org"
	if r := h.Register(map[string]any{"email": email, "password": pw, "name": "Late", "birthdate": "1980-01-01", "country": "DE"}); r.Status != 201 {
		t.Fatal(r.Status)
	}
	// Not active yet: answered as a wrong password (TestRegistrationRevealsNoAccount).
	if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, ""); r.Status != 401 {
		t.Fatalf("login before confirming = %d", r.Status)
	}
	h.Do("POST", "/api/v1/password-resets", map[string]string{"email": email}, "")
	tok := h.WaitLink(email, "/password/reset?token=")
	if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": tok, "password": "brand-new-secret-5"}, ""); r.Status != 204 {
		t.Fatalf("reset = %d %s", r.Status, r.Body)
	}
	if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": "brand-new-secret-5"}, ""); r.Status != 201 {
		t.Errorf("login after reset = %d %s", r.Status, r.Body)
	}
}
