package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"steward/internal/store/storetest"
)

// pageLogin posts the login form from ip (behind the trusted proxy), with a
// known-device cookie if one is given; it returns the page and the device cookie set.
func pageLogin(s *site, ip, email, password string, device *http.Cookie) (page, *http.Cookie) {
	header := http.Header{}
	header.Set("Content-Type", "application/x-www-form-urlencoded")
	header.Set("X-Forwarded-For", ip)
	if device != nil {
		header.Set("Cookie", device.Name+"="+device.Value)
	}
	p := s.client().send(http.MethodPost, "/login",
		strings.NewReader(url.Values{"email": {email}, "password": {password}}.Encode()), header)
	for _, line := range p.header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && strings.HasPrefix(c.Name, "steward_device_") {
			return p, c
		}
	}
	return p, nil
}

// Defect 4 of issue 11 (targeted lockout), on /login: an attacker's wrong passwords
// from one IP do not lock the owner out at another; once many IPs have emptied the
// account's slow bucket, the owner's known browser still gets in, a new one does not.
func TestTargetedLockoutPage(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			s := start(t, dbURL, "--rate-limits=true", "--trust-proxy=true")
			const owner, password = "lockout.owner@example.com", "correct horse battery"
			s.signUp(t, s.client(), owner, "Owner", password) // one login spent
			for i := range 5 {
				p, _ := pageLogin(s, "203.0.113.1", owner, "guessing away now", nil)
				p.want(t, fmt.Sprintf("attacker's guess %d", i+1), http.StatusUnauthorized, "Wrong email or password.")
			}
			p, _ := pageLogin(s, "203.0.113.1", owner, "guessing away now", nil)
			p.want(t, "attacker's sixth guess", http.StatusTooManyRequests, "Too many attempts")

			p, device := pageLogin(s, "198.51.100.7", owner, password, nil)
			p.wantRedirect(t, "owner at another IP during the attack", "/account")
			if device == nil {
				t.Fatal("a successful login set no known-device cookie")
			}

			// Many IPs empty the account's bucket (20; seven spent already).
			for i := range 4 {
				for range 5 {
					pageLogin(s, fmt.Sprintf("192.0.2.%d", 10+i), owner, "guessing away now", nil)
				}
			}
			p, _ = pageLogin(s, "198.51.100.8", owner, password, nil)
			p.want(t, "owner at a new browser once many IPs guessed", http.StatusTooManyRequests, "Too many attempts")
			p, _ = pageLogin(s, "198.51.100.9", owner, password, device)
			p.wantRedirect(t, "owner at the known browser once many IPs guessed", "/account")
			p, _ = pageLogin(s, "192.0.2.99", owner, "guessing away now", nil)
			p.want(t, "attacker at a fresh IP", http.StatusTooManyRequests, "Too many attempts")
		})
	}
}
