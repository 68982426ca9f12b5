package app_test

import (
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// TestMinorCannotBecomeAdult: a child whose guardian agreed can change neither the
// birthdate nor the country their age of consent rests on (issue 11, defect 6), so the
// public profile children do not have stays closed; sending the values unchanged, as a
// form does, is no change; an adult can still correct their own birthdate.
func TestMinorCannotBecomeAdult(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		twelve := time.Now().AddDate(-12, 0, -1).Format("2006-01-02")
		r := h.Register(map[string]any{"email": "kid@example.org", "password": pw, "name": "Kid", "birthdate": twelve,
			"country": "FR", "guardian_email": "parent@example.org"})
		if r.Status != 201 {
			t.Fatalf("register child = %d %s", r.Status, r.Body)
		}
		id := r.JSON()["id"].(string)
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink("kid@example.org", "/verify?token=")}, ""); v.Status != 200 {
			t.Fatalf("verify = %d %s", v.Status, v.Body)
		}
		if g := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": h.WaitLink("parent@example.org", "/guardian?token="), "agree": true}, ""); g.Status != 204 {
			t.Fatalf("guardian agree = %d %s", g.Status, g.Body)
		}
		l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "kid@example.org", "password": pw}, "")
		if l.Status != 201 {
			t.Fatalf("child login = %d %s", l.Status, l.Body)
		}
		tok := l.JSON()["token"].(string)
		for _, c := range []struct {
			name  string
			patch map[string]any
			field string
		}{
			{"an adult's birthdate", map[string]any{"birthdate": "1990-01-01"}, "birthdate"},
			{"a younger birthdate", map[string]any{"birthdate": time.Now().AddDate(-10, 0, 0).Format("2006-01-02")}, "birthdate"},
			{"a country with a lower age", map[string]any{"country": "IT"}, "country"},
			{"both", map[string]any{"birthdate": "1990-01-01", "country": "IT"}, "birthdate"},
		} {
			p := h.Do("PATCH", "/api/v1/me", c.patch, tok)
			if f, code := p.ErrorField(); p.Status != 400 || f != c.field || code != "guardian_required" {
				t.Errorf("child patches %s = %d %s, want 400 on %s (guardian_required)", c.name, p.Status, p.Body, c.field)
			}
		}
		if p := h.Do("PATCH", "/api/v1/me", map[string]any{"birthdate": twelve, "country": "fr", "name": "Kiddo"}, tok); p.Status != 200 {
			t.Errorf("child patches unchanged birthdate and country with a new name = %d %s", p.Status, p.Body)
		}
		me := h.Do("GET", "/api/v1/me", nil, tok).JSON()
		if me["birthdate"] != twelve || me["country"] != "FR" {
			t.Errorf("child's birthdate and country now %v %v, want %s FR", me["birthdate"], me["country"], twelve)
		}
		if pub := h.Do("GET", "/api/v1/members/"+id, nil, ""); pub.Status != 404 {
			t.Errorf("child's public profile = %d %s, want 404", pub.Status, pub.Body)
		}

		_, adult := h.Member("adult@example.org", pw, nil)
		if p := h.Do("PATCH", "/api/v1/me", map[string]any{"birthdate": "1984-05-06", "country": "IT"}, adult); p.Status != 200 {
			t.Errorf("adult corrects birthdate and country = %d %s", p.Status, p.Body)
		}
	})
}
