package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"steward/internal/app/apptest"
)

// apiLogin logs in through the API from ip (behind the trusted proxy) with the cookies
// given, and returns the status and the known-device cookie set, if any.
func apiLogin(t *testing.T, h *apptest.Harness, ip, email, password string, cookies ...*http.Cookie) (int, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest("POST", h.URL+"/api/v1/sessions",
		strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "steward_device_") {
			return resp.StatusCode, c
		}
	}
	return resp.StatusCode, nil
}

// Defect 4 of issue 11 (targeted lockout), through the API: wrong passwords for an
// account from one IP stop that IP (per account and IP pair), not the owner elsewhere;
// one IP trying many accounts is stopped (per IP); many IPs together exhaust the
// account's slow bucket, which then refuses every browser but the owner's known device.
func TestTargetedLockout(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--rate-limits=true", "--trust-proxy=true")
		owner := "targeted.owner@example.org"
		h.Member(owner, pw, nil) // one login spent, from the loopback address

		// The attacker at X: five guesses, then refused, however long it goes on.
		var statuses []int
		for range 10 {
			st, dev := apiLogin(t, h, "203.0.113.1", owner, "wrong-guess-000")
			if dev != nil {
				t.Fatal("a failed login set a known-device cookie")
			}
			statuses = append(statuses, st)
		}
		if want := "[401 401 401 401 401 429 429 429 429 429]"; fmt.Sprint(statuses) != want {
			t.Errorf("10 wrong passwords from one IP = %v, want %s", statuses, want)
		}
		// Even the right password waits at X: the pair is spent, whoever types.
		if st, _ := apiLogin(t, h, "203.0.113.1", owner, pw); st != http.StatusTooManyRequests {
			t.Errorf("right password from the attacker's IP = %d, want 429", st)
		}
		// The owner at Y is not locked out, and the browser becomes a known device.
		st, device := apiLogin(t, h, "198.51.100.7", owner, pw)
		if st != http.StatusCreated || device == nil {
			t.Fatalf("owner from another IP during the attack = %d (device cookie %v), want 201 and a cookie", st, device)
		}
		if !device.HttpOnly || device.MaxAge <= 0 || device.Path != "/" {
			t.Errorf("device cookie = %+v, want HttpOnly, a lifetime, path /", device)
		}

		// Credential stuffing: one IP over many accounts is stopped after 20.
		statuses = statuses[:0]
		for i := range 22 {
			st, _ := apiLogin(t, h, "203.0.113.2", fmt.Sprintf("stuffed%02d@example.org", i), "wrong-guess-000")
			statuses = append(statuses, st)
		}
		if statuses[19] != http.StatusUnauthorized || statuses[20] != http.StatusTooManyRequests || statuses[21] != http.StatusTooManyRequests {
			t.Errorf("22 accounts from one IP = %v, want 20 answered, then 429", statuses)
		}

		// Many IPs: five guesses each, until the account's slow bucket is empty (20 at
		// once; seven are spent already: the first login, X's five, Y's one).
		for i := range 4 {
			for range 5 {
				apiLogin(t, h, fmt.Sprintf("192.0.2.%d", 10+i), owner, "wrong-guess-000")
			}
		}
		if st, _ := apiLogin(t, h, "192.0.2.99", owner, "wrong-guess-000"); st != http.StatusTooManyRequests {
			t.Errorf("a fresh IP once many IPs guessed = %d, want 429 (the account's bucket)", st)
		}
		// Without the known-device cookie the owner waits too, as before.
		if st, _ := apiLogin(t, h, "198.51.100.8", owner, pw); st != http.StatusTooManyRequests {
			t.Errorf("owner from a new browser once many IPs guessed = %d, want 429", st)
		}
		// A forged or another account's cookie is no known device.
		forged := *device
		forged.Value = forged.Value[:len(forged.Value)-1] + "0"
		if forged.Value == device.Value {
			forged.Value = forged.Value[:len(forged.Value)-1] + "1"
		}
		if st, _ := apiLogin(t, h, "198.51.100.8", owner, pw, &forged); st != http.StatusTooManyRequests {
			t.Errorf("owner with a forged device cookie = %d, want 429", st)
		}
		// With it, the owner logs in: from the known browser, at any IP.
		if st, again := apiLogin(t, h, "198.51.100.9", owner, pw, device); st != http.StatusCreated || again == nil {
			t.Errorf("owner from the known device once many IPs guessed = %d, want 201", st)
		}
		// The attacker is still limited: the cookie names the owner's account only.
		if st, _ := apiLogin(t, h, "192.0.2.99", "stuffed00@example.org", "wrong-guess-000", device); st != http.StatusUnauthorized {
			t.Errorf("another account with the owner's device cookie = %d, want 401 (an ordinary attempt)", st)
		}
		if st, _ := apiLogin(t, h, "192.0.2.98", owner, "wrong-guess-000"); st != http.StatusTooManyRequests {
			t.Errorf("attacker from another fresh IP = %d, want 429", st)
		}
		// Guesses with a stolen device cookie have a bucket of their own: five.
		statuses = statuses[:0]
		for range 6 {
			st, _ := apiLogin(t, h, "198.51.100.9", owner, "wrong-guess-000", device)
			statuses = append(statuses, st)
		}
		if want := "[401 401 401 401 429 429]"; fmt.Sprint(statuses) != want {
			t.Errorf("wrong passwords with the device cookie = %v, want %s (one of five spent by the owner)", statuses, want)
		}
	})
}
