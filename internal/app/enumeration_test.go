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
	eachEngine(t, func(t *testing.T, h *apptest.Harness) {
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
