package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/ratelimit"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// The limiter's buckets themselves are tested in internal/ratelimit; these test the
// limits of the account routes on them, on every engine.
func testLimits(t *testing.T, db *store.DB, off bool, c *fakeClock) *Limits {
	t.Helper()
	index := vault.NewIndex([]byte("a test key of thirty-two bytes!!"))
	return NewLimits(ratelimit.New(db, c.Now, slog.New(slog.NewTextHandler(io.Discard, nil))), index, off, true, c.Now)
}

func TestLimitsOffAndPasswordCheck(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		off := testLimits(t, db, true, c)
		for range 100 {
			if off.Login(ctx, "192.0.2.1", "a@example.org", "") != nil || off.PasswordCheck(ctx, "acc") != nil {
				t.Fatal("a limit that is off refused")
			}
		}
		on := testLimits(t, db, false, c)
		for i := range 5 {
			if err := on.PasswordCheck(ctx, "acc"); err != nil {
				t.Fatalf("check %d: %v", i+1, err)
			}
		}
		if err := on.PasswordCheck(ctx, "acc"); apperr.KindOf(err) != apperr.RateLimited || Status(err) != 429 {
			t.Errorf("sixth check: %v, want rate limited", err)
		}
		c.Advance(40 * time.Second) // the refused sixth counted too
		if err := on.PasswordCheck(ctx, "acc"); err != nil {
			t.Errorf("after 40 seconds: %v, want one more check", err)
		}
		// No bucket holds the IP, address or account id in plain text.
		var keys []string
		rows, err := db.QueryContext(ctx, `SELECT bucket FROM rate_limits`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		if len(keys) == 0 || strings.Contains(strings.Join(keys, " "), "acc") {
			t.Errorf("bucket keys %v: want some, none holding the account id", keys)
		}
	})
}

// The known-device cookie: set by RememberDevice, valid for its account only, until it
// expires; a changed byte or another account's cookie is no known device.
func TestKnownDevice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		c := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		l := testLimits(t, db, false, c)
		w := httptest.NewRecorder()
		l.RememberDevice(w, httptest.NewRequest("POST", "/login", nil), "Owner@Example.org")
		cookies := w.Result().Cookies()
		if len(cookies) != 1 || !cookies[0].HttpOnly || !cookies[0].Secure || cookies[0].SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookies = %+v, want one, HttpOnly, Secure, SameSite=Lax", cookies)
		}
		dev := cookies[0]
		if strings.Contains(strings.ToLower(dev.Name+dev.Value), "owner") {
			t.Errorf("the cookie names the address: %s=%s", dev.Name, dev.Value)
		}
		with := func(c *http.Cookie) *http.Request {
			r := httptest.NewRequest("POST", "/login", nil)
			r.AddCookie(c)
			return r
		}
		id := l.KnownDevice(with(dev), "owner@example.org")
		if len(id) != 32 {
			t.Fatalf("known device = %q, want its id", id)
		}
		if got := l.KnownDevice(with(dev), "other@example.org"); got != "" {
			t.Errorf("the owner's cookie for another account = %q", got)
		}
		renamed := *dev
		renamed.Name = l.deviceCookieName("other@example.org")
		if got := l.KnownDevice(with(&renamed), "other@example.org"); got != "" {
			t.Errorf("the owner's cookie under another account's name = %q", got)
		}
		for i := range len(dev.Value) {
			forged := *dev
			b := []byte(forged.Value)
			b[i] ^= 1
			forged.Value = string(b)
			if got := l.KnownDevice(with(&forged), "owner@example.org"); got != "" {
				t.Fatalf("a cookie with byte %d changed = %q", i, got)
			}
		}
		// A login from the known device keeps its id.
		w = httptest.NewRecorder()
		l.RememberDevice(w, with(dev), "owner@example.org")
		if again := w.Result().Cookies()[0]; l.KnownDevice(with(again), "owner@example.org") != id {
			t.Error("a new login from the known device changed its id")
		}
		c.Advance(knownDeviceFor + time.Second)
		if got := l.KnownDevice(with(dev), "owner@example.org"); got != "" {
			t.Errorf("an expired cookie = %q", got)
		}
	})
}
