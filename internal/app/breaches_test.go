package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
)

func breachBody(discovered time.Time) map[string]any {
	return map[string]any{"description": "A backup disk with the members table was lost in transit",
		"discovered_at": discovered.UTC().Format(time.RFC3339), "categories": []string{"contact details", "password hashes"},
		"consequences": "Phishing mails to the addresses", "measures": "Passwords reset; be wary of mails asking for your password"}
}

// The breach register (GDPR art. 33 and 34), through the API on every engine: a
// breach without its facts is refused with the field named and nothing stored; its
// 72-hour clock to the authority runs from its discovery (open, then overdue as the
// clock moves; a late report needs the reasons for the delay); the affected members are
// selected by a list or by a query (preview first); the notice goes once to each, a
// second send mailing nobody; every action is in the audit log; an affected member's
// erasure removes their link and the breach keeps its count.
func TestBreachRegister(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		dpoID, dpo := staffMember(t, h, "dpo-breach@example.net", "dpo")
		_, marketing := staffMember(t, h, "marketing-breach@example.net", "marketing")
		_, carl := h.Member("carl.breached@example.org", pw, nil)
		h.Member("dora.breached@example.org", pw, nil)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, carl); r.Status != 200 {
			t.Fatalf("carl's consent: %d %s", r.Status, r.Body)
		}

		now := h.Clock.Now()
		for _, c := range []struct {
			name  string
			edit  func(map[string]any)
			field string
		}{
			{"no description", func(b map[string]any) { b["description"] = "" }, "description"},
			{"no discovery", func(b map[string]any) { delete(b, "discovered_at") }, "discovered_at"},
			{"bad discovery", func(b map[string]any) { b["discovered_at"] = "yesterday" }, "discovered_at"},
			{"future discovery", func(b map[string]any) { b["discovered_at"] = now.Add(48 * time.Hour).Format(time.RFC3339) }, "discovered_at"},
			{"no categories", func(b map[string]any) { b["categories"] = []string{" "} }, "categories"},
			{"no consequences", func(b map[string]any) { delete(b, "consequences") }, "consequences"},
			{"no measures", func(b map[string]any) { b["measures"] = "  " }, "measures"},
		} {
			b := breachBody(now.Add(-time.Hour))
			c.edit(b)
			r := h.Do("POST", "/api/v1/staff/breaches", b, dpo)
			if field, _ := r.ErrorField(); r.Status != http.StatusBadRequest || field != c.field {
				t.Errorf("%s: %d %s, want 400 naming %s", c.name, r.Status, r.Body, c.field)
			}
		}
		if r := h.Do("POST", "/api/v1/staff/breaches", breachBody(now.Add(-time.Hour)), marketing); r.Status != http.StatusForbidden {
			t.Errorf("marketing records a breach: %d", r.Status)
		}
		if list := h.Do("GET", "/api/v1/staff/breaches", nil, dpo).JSON()["breaches"].([]any); len(list) != 0 {
			t.Fatalf("refused breaches were stored: %v", list)
		}

		// Discovered an hour ago: 71 hours left.
		r := h.Do("POST", "/api/v1/staff/breaches", breachBody(now.Add(-time.Hour)), dpo)
		if r.Status != http.StatusCreated {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		b := r.JSON()
		id := b["id"].(string)
		if left := b["seconds_left"].(float64); b["state"] != "open" || left < 70*3600 || left > 71*3600 {
			t.Errorf("the clock after an hour: %v, %v seconds left", b["state"], left)
		}
		path := "/api/v1/staff/breaches/" + id

		// Selections: refusals with the field named, a preview, a list, a query.
		for _, c := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"nothing", map[string]any{}, "emails"},
			{"unknown member", map[string]any{"emails": []string{"carl.breached@example.org", "nobody@example.org"}}, "emails"},
			{"list and query", map[string]any{"emails": []string{"carl.breached@example.org"}, "purpose": "newsletter"}, "emails"},
			{"unknown purpose", map[string]any{"purpose": "astrology"}, "purpose"},
			{"empty period", map[string]any{"created_from": "2026-03-02", "created_to": "2026-03-01"}, "created_to"},
			{"bad day", map[string]any{"created_from": "March"}, "created_from"},
		} {
			r := h.Do("POST", path+"/members", c.body, dpo)
			if field, _ := r.ErrorField(); r.Status != http.StatusBadRequest || field != c.field {
				t.Errorf("select %s: %d %s, want 400 naming %s", c.name, r.Status, r.Body, c.field)
			}
		}
		if p := h.Do("POST", path+"/members", map[string]any{"purpose": "newsletter", "preview": true}, dpo).JSON(); p["matched"] != 1.0 || p["added"] != 0.0 {
			t.Errorf("preview of the newsletter's members: %v", p)
		}
		day := now.UTC().Format(time.DateOnly)
		if p := h.Do("POST", path+"/members", map[string]any{"created_from": day, "created_to": day, "preview": true}, dpo).JSON(); p["matched"] != 4.0 {
			t.Errorf("preview of today's members: %v", p)
		}
		if got := h.Do("GET", path, nil, dpo).JSON(); got["affected"] != 0.0 {
			t.Errorf("a preview linked members: %v", got["affected"])
		}
		list := map[string]any{"emails": []string{"carl.breached@example.org", "dora.breached@example.org"}}
		if s := h.Do("POST", path+"/members", list, dpo).JSON(); s["matched"] != 2.0 || s["added"] != 2.0 {
			t.Errorf("select the list: %v", s)
		}
		if s := h.Do("POST", path+"/members", map[string]any{"purpose": "newsletter"}, dpo).JSON(); s["matched"] != 1.0 || s["added"] != 0.0 {
			t.Errorf("select carl again by purpose: %v", s)
		}

		// The clock: overdue once 72 hours pass; a late report needs its reasons.
		h.Clock.Advance(72 * time.Hour)
		dpo = h.StaffLogin(dpoID, "dpo-breach@example.net", pw) // a staff session lasts 12 hours
		if got := h.Do("GET", path, nil, dpo).JSON(); got["state"] != "overdue" || got["seconds_left"].(float64) >= 0 {
			t.Errorf("after 73 hours: %v, %v", got["state"], got["seconds_left"])
		}
		if r := h.Do("POST", path+"/report", map[string]string{"reference": "DPA-2026-117"}, dpo); r.Status != 400 {
			t.Errorf("a late report without reasons: %d %s", r.Status, r.Body)
		} else if f, _ := r.ErrorField(); f != "delay_reason" {
			t.Errorf("a late report without reasons names %q", f)
		}
		if r := h.Do("POST", path+"/report", map[string]string{"delay_reason": "x"}, dpo); r.Status != 400 {
			t.Errorf("a report without reference: %d", r.Status)
		} else if f, _ := r.ErrorField(); f != "reference" {
			t.Errorf("a report without reference names %q", f)
		}
		rep := h.Do("POST", path+"/report", map[string]string{"reference": "DPA-2026-117", "delay_reason": "The extent was unknown until the courier answered"}, dpo)
		if got := rep.JSON(); rep.Status != 200 || got["state"] != "reported_late" || got["reference"] != "DPA-2026-117" || got["seconds_left"] != nil {
			t.Errorf("report: %d %s", rep.Status, rep.Body)
		}
		if again := h.Do("POST", path+"/report", map[string]string{"reference": "DPA-2"}, dpo); again.Status != http.StatusConflict {
			t.Errorf("report twice: %d", again.Status)
		}

		// The notice: once to each, a second send mails nobody.
		n := h.Do("POST", path+"/notify", nil, dpo).JSON()
		if n["sent"] != 2.0 {
			t.Fatalf("notify: %v", n)
		}
		for _, addr := range []string{"carl.breached@example.org", "dora.breached@example.org"} {
			m := h.WaitMail(addr, 2)
			if last := m[len(m)-1].Raw; !strings.Contains(last, "backup disk") || !strings.Contains(last, "Passwords reset") {
				t.Errorf("the notice to %s:\n%s", addr, last)
			}
		}
		if n := h.Do("POST", path+"/notify", nil, dpo).JSON(); n["sent"] != 0.0 {
			t.Errorf("second notify: %v", n)
		}
		if got := h.Do("GET", path, nil, dpo).JSON(); got["notified"] != 2.0 || len(h.Mails("carl.breached@example.org")) != 2 {
			t.Errorf("after two sends: %v notified, carl has %d mails", got["notified"], len(h.Mails("carl.breached@example.org")))
		}
		events := auditEvents(t, h, dpoID)
		for _, e := range []string{"breach_recorded", "breach_members_selected", "breach_reported", "breach_notice_sent"} {
			if !slices.Contains(events, e) {
				t.Errorf("the audit log lacks %s: %v", e, events)
			}
		}

		// Two sends at once mail each member once.
		second := h.Do("POST", "/api/v1/staff/breaches", breachBody(h.Clock.Now().Add(-time.Hour)), dpo).JSON()["id"].(string)
		if s := h.Do("POST", "/api/v1/staff/breaches/"+second+"/members", list, dpo).JSON(); s["added"] != 2.0 {
			t.Fatalf("select for the second breach: %v", s)
		}
		var wg sync.WaitGroup
		sent := make([]float64, 2)
		for i := range sent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/staff/breaches/"+second+"/notify", nil, dpo, nil)
				sent[i], _ = r.JSON()["sent"].(float64)
			}()
		}
		wg.Wait()
		if sent[0]+sent[1] != 2 {
			t.Errorf("two sends at once queued %v notices, want 2 in all", sent)
		}
		if n := len(h.WaitMail("dora.breached@example.org", 3)); n != 3 {
			t.Errorf("dora has %d mails, want the confirmation and one notice per breach", n)
		}

		// Carl's erasure removes his link; the breach keeps its count.
		eraseMember(t, h, carl, "done")
		if got := h.Do("GET", path, nil, dpo).JSON(); got["affected"] != 2.0 || got["linked"] != 1.0 {
			t.Errorf("after carl's erasure: affected %v, linked %v", got["affected"], got["linked"])
		}
	})
}

// The breach notice reaches the members over real SMTP, once each however often it is
// sent, on every engine.
func TestBreachNoticeOverSMTP(t *testing.T) {
	addr, api := smtpServer(t)
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
		stamp := time.Now().UnixNano()
		member := func(who string) (string, string) {
			email := fmt.Sprintf("breach-%s-%d@example.org", who, stamp)
			if r := h.Register(map[string]any{"email": email, "password": pw, "name": "Breach Tester", "birthdate": "1980-01-01", "country": "DE"}); r.Status != 201 {
				t.Fatal(r.Status)
			}
			_, vtext := mailpitMessage(t, api, email, "Confirm your email")
			_, vtok := apptest.Mail{Raw: vtext}.Link()
			h.Do("POST", "/api/v1/verifications", map[string]string{"token": vtok}, "")
			l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
			tok, _ := l.JSON()["token"].(string)
			return email, tok
		}
		_, dpo := member("dpo")
		dpoID := h.Do("GET", "/api/v1/me", nil, dpo).JSON()["id"].(string)
		if err := h.GrantStaff(context.Background(), dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		affected, _ := member("affected")
		r := h.Do("POST", "/api/v1/staff/breaches", breachBody(h.Clock.Now().Add(-time.Minute)), dpo)
		if r.Status != 201 {
			t.Fatalf("record: %d %s", r.Status, r.Body)
		}
		path := "/api/v1/staff/breaches/" + r.JSON()["id"].(string)
		if s := h.Do("POST", path+"/members", map[string]any{"emails": []string{affected}}, dpo).JSON(); s["added"] != 1.0 {
			t.Fatalf("select: %v", s)
		}
		if n := h.Do("POST", path+"/notify", nil, dpo).JSON(); n["sent"] != 1.0 {
			t.Fatalf("notify: %v", n)
		}
		if n := h.Do("POST", path+"/notify", nil, dpo).JSON(); n["sent"] != 0.0 {
			t.Fatalf("notify again: %v", n)
		}
		_, text := mailpitMessage(t, api, affected, "A personal data breach affects your data")
		if !strings.Contains(text, "backup disk") || !strings.Contains(text, "Phishing mails") {
			t.Errorf("the delivered notice:\n%s", text)
		}
		// Once the outbox is empty, the server holds the one notice.
		deadline := time.Now().Add(15 * time.Second)
		for {
			var queued int
			if err := h.App.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM mail_outbox`).Scan(&queued); err != nil {
				t.Fatal(err)
			}
			if queued == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d mails still queued after 15s", queued)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := mailpitCount(t, api, affected, "A personal data breach affects your data"); n != 1 {
			t.Errorf("the server holds %d notices to the member, want 1", n)
		}
	})
}
