package app_test

import (
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

// TestRegistrationRevealsNoAccount: registering someone else's address, as a child
// with the attacker's own mailbox as the guardian, or as an adult, is answered alike
// whether or not the address has an account: the same status and body (but the random
// id), no mail to the mailbox the attacker named, and the same answer to a login with
// the password the attacker chose. The owner of a taken address is told someone tried.
func TestRegistrationRevealsNoAccount(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		h.Member("taken@example.org", pw, nil)
		waitOutboxEmpty(t, h)
		const attackerPW = "lantern-quarry-77"
		twelve := time.Now().AddDate(-12, 0, -1).Format("2006-01-02")

		type seen struct {
			status int
			body   string
			login  string
		}
		try := func(target string, extra map[string]any) seen {
			t.Helper()
			body := map[string]any{"email": target, "password": attackerPW, "name": "Someone", "birthdate": "1990-01-01", "country": "DE"}
			for k, v := range extra {
				body[k] = v
			}
			r := h.Register(body)
			id, _ := r.JSON()["id"].(string)
			if r.Status != 201 || id == "" {
				t.Fatalf("register %s = %d %s", target, r.Status, r.Body)
			}
			l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": target, "password": attackerPW}, "")
			_, code := l.ErrorField()
			return seen{status: r.Status, body: strings.ReplaceAll(string(r.Body), id, "ID"), login: string(rune('0'+l.Status/100)) + " " + code}
		}
		cases := []struct {
			name  string
			extra func(spy string) map[string]any
		}{
			{"child with the attacker as guardian", func(spy string) map[string]any {
				return map[string]any{"birthdate": twelve, "country": "FR", "guardian_email": spy}
			}},
			{"adult", func(string) map[string]any { return nil }},
		}
		for i, c := range cases {
			free := "free" + string(rune('a'+i)) + "@example.org"
			spyTaken, spyFree := "spy-taken"+string(rune('a'+i))+"@example.net", "spy-free"+string(rune('a'+i))+"@example.net"
			taken := try("taken@example.org", c.extra(spyTaken))
			fresh := try(free, c.extra(spyFree))
			if taken != fresh {
				t.Errorf("%s: a taken address is answered %+v, a free one %+v", c.name, taken, fresh)
			}
			waitOutboxEmpty(t, h)
			if a, b := len(h.Mails(spyTaken)), len(h.Mails(spyFree)); a != b {
				t.Errorf("%s: the attacker's mailbox got %d mail(s) for the taken address and %d for the free one", c.name, a, b)
			}
		}
		// The owner heard of both attempts, and nothing else changed for them.
		tried := 0
		for _, m := range h.Mails("taken@example.org") {
			if strings.Contains(m.Raw, "Someone tried to register") {
				tried++
			}
		}
		if tried != 2 {
			t.Errorf("the owner of the taken address got %d 'someone tried to register' mails, want 2", tried)
		}
		if l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "taken@example.org", "password": pw}, ""); l.Status != 201 {
			t.Errorf("owner's login after the attempts = %d %s", l.Status, l.Body)
		}
	})
}

// TestGuardianAskedAtFirstProof: a child's guardian is mailed once the child proves the
// address, by a password reset as well as by the verification link, and only once.
func TestGuardianAskedAtFirstProof(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		twelve := time.Now().AddDate(-12, 0, -1).Format("2006-01-02")
		if r := h.Register(map[string]any{"email": "kid@example.org", "password": pw, "name": "Kid", "birthdate": twelve,
			"country": "FR", "guardian_email": "parent@example.org"}); r.Status != 201 {
			t.Fatalf("register = %d %s", r.Status, r.Body)
		}
		vtok := h.WaitLink("kid@example.org", "/verify?token=")
		waitOutboxEmpty(t, h)
		if n := len(h.Mails("parent@example.org")); n != 0 {
			t.Fatalf("guardian mailed %d time(s) before the child proved the address", n)
		}
		if r := h.Do("POST", "/api/v1/password-resets", map[string]string{"email": "kid@example.org"}, ""); r.Status != 202 {
			t.Fatalf("reset request = %d %s", r.Status, r.Body)
		}
		rtok := h.WaitLink("kid@example.org", "/password/reset?token=")
		if r := h.Do("POST", "/api/v1/password-resets/confirm", map[string]string{"token": rtok, "password": "a-new-secret-41"}, ""); r.Status != 204 {
			t.Fatalf("reset = %d %s", r.Status, r.Body)
		}
		gtok := h.WaitLink("parent@example.org", "/guardian?token=")
		// The verification link, opened after, proves nothing new: no second mail.
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": vtok}, ""); v.Status != 200 {
			t.Fatalf("verify = %d %s", v.Status, v.Body)
		}
		waitOutboxEmpty(t, h)
		if n := len(h.Mails("parent@example.org")); n != 1 {
			t.Errorf("guardian got %d mails, want 1", n)
		}
		if g := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": gtok, "agree": true}, ""); g.Status != 204 {
			t.Errorf("guardian agree = %d %s", g.Status, g.Body)
		}
	})
}
