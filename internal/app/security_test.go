package app_test

import (
	"net/http"
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
	// Even the right password waits: the budget is per account, not per mistake.
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
