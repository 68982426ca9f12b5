package app_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
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
		twelve := birthdateAt(12)
		id := registerChild(t, h, "kid@example.org", "Kid", "parent@example.org", "FR", 12)
		tok := logIn(t, h, "kid@example.org")
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

// A child cannot consent alone to marketing or sharing (P-CHILD-3): tried as a
// 14-year-old from Germany, the opt-ins to the newsletter and to sharing with partners
// wait for the guardian, who is mailed a link for each; the guardian agrees to one
// (page) and declines the other (API); what a child may choose alone, and withdrawals,
// are recorded at once. A used link says so.
func TestChildChoicesWaitForGuardian(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		registerChild(t, h, "teen@example.org", "Teen", "mum@example.org", "DE", 14)
		tok := logIn(t, h, "teen@example.org")

		put := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"partner_sharing":true,"own_offers":true,"email_open_tracking":true}}`, tok)
		if put.Status != 200 {
			t.Fatalf("child's choices = %d %s", put.Status, put.Body)
		}
		state := func() map[string]map[string]any {
			out := map[string]map[string]any{}
			for _, p := range h.Do("GET", "/api/v1/me/consents", nil, tok).JSON()["purposes"].([]any) {
				m := p.(map[string]any)
				out[m["key"].(string)] = m
			}
			return out
		}
		s := state()
		for _, k := range []string{"newsletter", "partner_sharing"} {
			if s[k]["decision"] == "granted" || s[k]["awaiting_guardian"] != true {
				t.Errorf("%s after the child's opt-in: %v, want not granted, awaiting the guardian", k, s[k])
			}
		}
		if s["email_open_tracking"]["decision"] != "granted" || s["email_open_tracking"]["awaiting_guardian"] != nil {
			t.Errorf("a purpose a child may choose: %v, want granted at once", s["email_open_tracking"])
		}
		if page := h.Do("GET", "/account/preferences", nil, tok); !strings.Contains(string(page.Body), "Waiting for your parent or guardian") {
			t.Error("the preferences page does not say what waits for the guardian")
		}
		links := func() (newsletter, sharing, offers string, n int) {
			for _, m := range h.Mails("mum@example.org") {
				link := guardianPurposeRE.FindString(m.Raw)
				switch {
				case link == "":
					continue
				case strings.Contains(m.Raw, "Newsletter"):
					newsletter = link
				case strings.Contains(m.Raw, "Sharing with selected partners"):
					sharing = link
				case strings.Contains(m.Raw, "Our offers"):
					offers = link
				}
				n++
			}
			return
		}
		var newsletterLink, sharingLink, offersLink string
		var asks int
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && (newsletterLink == "" || sharingLink == "" || offersLink == ""); {
			newsletterLink, sharingLink, offersLink, asks = links()
			time.Sleep(20 * time.Millisecond)
		}
		if newsletterLink == "" || sharingLink == "" || offersLink == "" || asks != 3 {
			t.Fatalf("the guardian's mails: %d, want a link per purpose: newsletter %q, sharing %q, offers %q", asks, newsletterLink, sharingLink, offersLink)
		}
		// Asking again mails nothing more; withdrawing the ask kills its link.
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":false}}`, tok); r.Status != 200 {
			t.Fatalf("asking again = %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond) // a second mail would be queued by now
		if _, _, _, n := links(); n != 3 {
			t.Errorf("the guardian got %d asks after the child asked again, want 3", n)
		}
		if d := h.Do("POST", "/api/v1/guardian-purposes", map[string]any{"token": strings.TrimPrefix(offersLink, "/guardian/purpose?token="), "agree": true}, ""); d.Status != 400 {
			t.Errorf("agreeing to what the child took back = %d %s", d.Status, d.Body)
		}
		nlTok := strings.TrimPrefix(newsletterLink, "/guardian/purpose?token=")
		shTok := strings.TrimPrefix(sharingLink, "/guardian/purpose?token=")

		// The page shows the choice without using the link; agreeing grants it.
		if page := h.Do("GET", newsletterLink, nil, ""); page.Status != 200 || !strings.Contains(string(page.Body), "Teen") {
			t.Fatalf("the guardian's page = %d", page.Status)
		}
		resp, err := h.Client.PostForm(h.URL+"/guardian/purpose", url.Values{"token": {nlTok}, "decision": {"agree"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.String(), "done=agreed") {
			t.Errorf("agreeing on the page = %d %s", resp.StatusCode, resp.Request.URL)
		}
		// Declining by the API records nothing and ends the wait.
		if d := h.Do("POST", "/api/v1/guardian-purposes", map[string]any{"token": shTok, "agree": false}, ""); d.Status != 204 {
			t.Errorf("declining = %d %s", d.Status, d.Body)
		}
		s = state()
		if s["newsletter"]["decision"] != "granted" || s["newsletter"]["source"] != "guardian" || s["newsletter"]["awaiting_guardian"] != nil {
			t.Errorf("newsletter after the guardian agreed: %v", s["newsletter"])
		}
		if s["partner_sharing"]["decision"] == "granted" || s["partner_sharing"]["awaiting_guardian"] != nil {
			t.Errorf("sharing after the guardian declined: %v", s["partner_sharing"])
		}
		if s["own_offers"]["decision"] == "granted" || s["own_offers"]["awaiting_guardian"] != nil {
			t.Errorf("offers after the child took the ask back: %v", s["own_offers"])
		}
		// Used links say so; the child may withdraw alone.
		if g := h.Do("GET", "/api/v1/guardian-purposes?token="+url.QueryEscape(nlTok), nil, ""); g.Status != 400 {
			t.Errorf("a used link = %d %s", g.Status, g.Body)
		}
		if page := h.Do("GET", newsletterLink, nil, ""); page.Status != 400 || !strings.Contains(string(page.Body), "no longer works") {
			t.Errorf("a used link's page = %d", page.Status)
		}
		if w := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":false}}`, tok); w.Status != 200 {
			t.Fatalf("child withdraws = %d %s", w.Status, w.Body)
		}
		if s = state(); s["newsletter"]["decision"] != "withdrawn" {
			t.Errorf("newsletter after the child withdrew: %v", s["newsletter"])
		}
	})
}

var guardianPurposeRE = regexp.MustCompile(`/guardian/purpose\?token=[A-Za-z0-9_-]+`)

// A confirmed guardian acts for the child from their own login (P-CHILD-3): sees the
// child's data and choices, agrees to a marketing purpose for them (recorded as the
// guardian's, with nothing waiting), stops the use of the child's data, downloads it
// and erases the account with their own password; another member, and the child,
// find no such account; pages and API alike.
func TestGuardianActsForChild(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, mum := h.Member("mother@example.org", pw, nil)
		_, other := h.Member("stranger@example.org", pw, nil)
		twelve := time.Now().AddDate(-12, 0, -1).Format("2006-01-02")
		r := h.Register(map[string]any{"email": "kiddo@example.org", "password": pw, "name": "Kiddo", "birthdate": twelve,
			"country": "FR", "guardian_email": "mother@example.org"})
		if r.Status != 201 {
			t.Fatalf("register child = %d %s", r.Status, r.Body)
		}
		kid := r.JSON()["id"].(string)
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink("kiddo@example.org", "/verify?token=")}, ""); v.Status != 200 {
			t.Fatalf("verify = %d %s", v.Status, v.Body)
		}
		// Before the guardian agreed, the child is nobody's.
		if l := h.Do("GET", "/api/v1/me/children", nil, mum).JSON()["children"].([]any); len(l) != 0 {
			t.Errorf("children before the guardian agreed: %v", l)
		}
		if g := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": h.WaitLink("mother@example.org", "/guardian?token="), "agree": true}, ""); g.Status != 204 {
			t.Fatalf("guardian agree = %d %s", g.Status, g.Body)
		}
		l := h.Do("GET", "/api/v1/me/children", nil, mum).JSON()["children"].([]any)
		if len(l) != 1 || l[0].(map[string]any)["id"] != kid || l[0].(map[string]any)["email"] != "kiddo@example.org" {
			t.Fatalf("the guardian's children = %v", l)
		}
		if c := h.Do("GET", "/api/v1/me/children/"+kid, nil, mum); c.Status != 200 || c.JSON()["name"] != "Kiddo" {
			t.Errorf("the child's data = %d %s", c.Status, c.Body)
		}
		for _, path := range []string{"/api/v1/me/children/" + kid, "/api/v1/me/children/" + kid + "/export", "/api/v1/me/children/" + kid + "/consents"} {
			if c := h.Do("GET", path, nil, other); c.Status != 404 {
				t.Errorf("a stranger's GET %s = %d", path, c.Status)
			}
		}
		// The guardian agrees for the child: granted at once, the guardian as source.
		c := h.Do("PUT", "/api/v1/me/children/"+kid+"/consents", `{"choices":{"newsletter":true}}`, mum)
		if c.Status != 200 {
			t.Fatalf("guardian's choices = %d %s", c.Status, c.Body)
		}
		for _, p := range c.JSON()["purposes"].([]any) {
			if m := p.(map[string]any); m["key"] == "newsletter" && (m["decision"] != "granted" || m["source"] != "guardian" || m["awaiting_guardian"] != nil) {
				t.Errorf("newsletter after the guardian's choice: %v", m)
			}
		}
		// The pages: the account page links to the children, whose page shows the data.
		if p := h.Do("GET", "/account", nil, mum); !strings.Contains(string(p.Body), `href="/account/children"`) {
			t.Error("the guardian's account page does not link to the children")
		}
		if p := h.Do("GET", "/account/children/"+kid, nil, mum); p.Status != 200 || !strings.Contains(string(p.Body), "kiddo@example.org") {
			t.Errorf("the child's page = %d", p.Status)
		}
		if p := h.Do("GET", "/account/children/"+kid, nil, other); p.Status != 404 {
			t.Errorf("the child's page for a stranger = %d", p.Status)
		}
		// Stop the use of the child's data, on the page.
		form := url.Values{"consent_newsletter": {"on"}, "restricted": {"on"}}
		req, _ := http.NewRequest("POST", h.URL+"/account/children/"+kid+"/preferences", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+mum)
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.String(), "saved=1") {
			t.Errorf("saving on the page = %d %s", resp.StatusCode, resp.Request.URL)
		}
		if f, err := h.App.Consent().Flags(t.Context(), kid); err != nil || !f.Restricted {
			t.Errorf("the child's processing after the guardian stopped it: %+v %v", f, err)
		}
		// Download.
		ex := h.Do("GET", "/api/v1/me/children/"+kid+"/export", nil, mum)
		if ex.Status != 200 || !strings.Contains(strings.Join(mapValues(unzip(t, ex.Body)), "\n"), "kiddo@example.org") {
			t.Errorf("the child's export = %d", ex.Status)
		}
		// Erase, with the guardian's own password.
		if d := h.Do("DELETE", "/api/v1/me/children/"+kid, map[string]string{"password": "not-the-password"}, mum); d.Status != 400 {
			t.Errorf("erasing with a wrong password = %d %s", d.Status, d.Body)
		}
		if d := h.Do("DELETE", "/api/v1/me/children/"+kid, map[string]string{"password": pw}, other); d.Status != 404 {
			t.Errorf("a stranger erasing = %d %s", d.Status, d.Body)
		}
		d := h.Do("DELETE", "/api/v1/me/children/"+kid, map[string]string{"password": pw}, mum)
		if d.Status != 202 {
			t.Fatalf("erasing = %d %s", d.Status, d.Body)
		}
		h.WaitErasure(d.JSON()["request_id"].(string))
		if l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "kiddo@example.org", "password": pw}, ""); l.Status != 401 {
			t.Errorf("the child's login after the erasure = %d", l.Status)
		}
		if l := h.Do("GET", "/api/v1/me/children", nil, mum).JSON()["children"].([]any); len(l) != 0 {
			t.Errorf("children after the erasure: %v", l)
		}
	})
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// registerChild registers a child of the given age in country whose guardian, at
// guardian, agrees; it returns the child's id.
func registerChild(t *testing.T, h *apptest.Harness, email, name, guardian, country string, age int) string {
	t.Helper()
	r := h.Register(map[string]any{"email": email, "password": pw, "name": name, "birthdate": birthdateAt(age),
		"country": country, "guardian_email": guardian})
	if r.Status != 201 {
		t.Fatalf("register child = %d %s", r.Status, r.Body)
	}
	if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink(email, "/verify?token=")}, ""); v.Status != 200 {
		t.Fatalf("verify = %d %s", v.Status, v.Body)
	}
	if g := h.Do("POST", "/api/v1/guardian-consents", map[string]any{"token": h.WaitLink(guardian, "/guardian?token="), "agree": true}, ""); g.Status != 204 {
		t.Fatalf("guardian agree = %d %s", g.Status, g.Body)
	}
	return r.JSON()["id"].(string)
}

// birthdateAt is the birthdate of someone who turned age a day ago.
func birthdateAt(age int) string { return time.Now().AddDate(-age, 0, -1).Format("2006-01-02") }

// logIn logs a member in and returns the session token.
func logIn(t *testing.T, h *apptest.Harness, email string) string {
	t.Helper()
	l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "")
	if l.Status != 201 {
		t.Fatalf("child login = %d %s", l.Status, l.Body)
	}
	return l.JSON()["token"].(string)
}

// A guardian's authority ends when the child comes of age: the child is no longer
// listed, and the routes answer as for an account that does not exist.
func TestGuardianAuthorityEndsAtMajority(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		_, dad := h.Member("father@example.org", pw, nil)
		kid := registerChild(t, h, "almost@example.org", "Almost", "father@example.org", "DE", 15)
		if c := h.Do("GET", "/api/v1/me/children/"+kid, nil, dad); c.Status != 200 {
			t.Fatalf("the child at 15 = %d %s", c.Status, c.Body)
		}
		h.Clock.Advance(366 * 24 * time.Hour) // 16: the age of consent in Germany
		dad = logIn(t, h, "father@example.org")
		if l := h.Do("GET", "/api/v1/me/children", nil, dad).JSON()["children"].([]any); len(l) != 0 {
			t.Errorf("children at 16: %v", l)
		}
		for _, path := range []string{"/api/v1/me/children/" + kid, "/api/v1/me/children/" + kid + "/export"} {
			if c := h.Do("GET", path, nil, dad); c.Status != 404 {
				t.Errorf("GET %s at 16 = %d", path, c.Status)
			}
		}
	})
}

// A child cannot reach marketing through the public newsletter form either
// (P-CHILD-3): the address is confirmed by its link, but the newsletter waits for the
// guardian, who is mailed; an adult's subscription is confirmed at once.
func TestChildNewsletterFormWaitsForGuardian(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		childID := registerChild(t, h, "young@example.org", "Young", "dad@example.org", "DE", 13)
		allowed := func(id string) bool {
			t.Helper()
			v, err := h.App.Consent().Allowed(t.Context(), id, "newsletter")
			if err != nil {
				t.Fatal(err)
			}
			return v.Allowed
		}
		// mailable: the address is in the newsletter's audience, under any subject.
		mailable := func(addr string) bool {
			t.Helper()
			var n int
			if err := h.App.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM mailable m JOIN subscribers s ON s.subject_id = m.subject_id
				WHERE s.email_hash = $1 AND m.purpose = 'newsletter'`, h.App.Newsletter().AddressHash(addr)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
		if r := h.Do("POST", "/api/v1/newsletter", map[string]any{"email": "young@example.org", "first_name": "Young"}, ""); r.Status != 202 {
			t.Fatalf("subscribing = %d %s", r.Status, r.Body)
		}
		token := h.WaitLink("young@example.org", "/newsletter/confirm?token=")
		c := h.Do("POST", "/api/v1/newsletter/confirm", map[string]any{"token": token}, "")
		if c.Status != 202 || c.JSON()["status"] != "awaiting_guardian" {
			t.Fatalf("a child's confirmation = %d %s, want 202 awaiting_guardian", c.Status, c.Body)
		}
		if allowed(childID) || mailable("young@example.org") {
			t.Fatal("a child's own confirmation granted the newsletter")
		}
		guardianToken := h.WaitLink("dad@example.org", "/guardian/purpose?token=")
		if mails := h.Mails("dad@example.org"); !strings.Contains(mails[len(mails)-1].Raw, "Newsletter") {
			t.Errorf("the guardian's mail does not name the newsletter")
		}
		if d := h.Do("POST", "/api/v1/guardian-purposes", map[string]any{"token": guardianToken, "agree": true}, ""); d.Status != 204 {
			t.Fatalf("the guardian agrees = %d %s", d.Status, d.Body)
		}
		if !allowed(childID) || !mailable("young@example.org") {
			t.Fatal("the newsletter is not allowed after the guardian agreed")
		}

		// An adult's subscription through the same form is confirmed at once.
		h.Member("grown@example.org", "correct horse battery", nil)
		h.Do("POST", "/api/v1/newsletter", map[string]any{"email": "grown@example.org", "first_name": "Grown"}, "")
		token = h.WaitLink("grown@example.org", "/newsletter/confirm?token=")
		if c := h.Do("POST", "/api/v1/newsletter/confirm", map[string]any{"token": token}, ""); c.Status != 200 || c.JSON()["status"] != "confirmed" {
			t.Fatalf("an adult's confirmation = %d %s", c.Status, c.Body)
		}
		if !mailable("grown@example.org") {
			t.Fatal("an adult's confirmation did not put the address on the newsletter's list")
		}
	})
}
