package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/newsletter"
	"steward/internal/policy"
)

// byRule reports whether the newsletter's rule, evaluated subscriber by subscriber,
// mails the address for the purpose.
func byRule(t *testing.T, h *apptest.Harness, purpose, email string) bool {
	t.Helper()
	found := false
	if err := h.App.Newsletter().AudienceByRule(context.Background(), purpose, func(r newsletter.Recipient) error {
		found = found || r.Email == email
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// TestPolicyMaterialChange walks P-POL-1..2: a member's acceptance at registration, a
// material version that asks the newsletter again (Allowed and the audience agree that
// the old consent no longer counts), the mail to every member, once, the member's
// notice, acceptance and renewed consent, and the diff.
func TestPolicyMaterialChange(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		pol := h.App.Policy()
		first, err := pol.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dpoID, dpoTok := h.Member("dpo@example.net", pw, nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		id, tok := h.Member("ada@example.com", pw, map[string]any{"name": "Ada"})
		mine := h.Do("GET", "/api/v1/me/policy", nil, tok).JSON()
		if acc := mine["accepted"].([]any); len(acc) != 1 || acc[0].(map[string]any)["version"] != first.Label ||
			acc[0].(map[string]any)["source"] != policy.AcceptedAtRegistration {
			t.Fatalf("acceptance at registration: %v", mine)
		}
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, tok); r.Status != 200 {
			t.Fatalf("consent: %d %s", r.Status, r.Body)
		}
		inAudience := func() bool {
			found := false
			if err := h.App.Newsletter().Audience(ctx, "newsletter", func(s string) error {
				found = found || s == id
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return found
		}
		if !inAudience() {
			t.Fatal("the member who opted in is not in the newsletter's audience")
		}

		// Bad drafts: refused, naming the field; nothing stored.
		for _, tt := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"version": "diff", "text": "x", "summary": "x"}, "label"},
			{map[string]any{"version": "2026.1", "text": "", "summary": "x"}, "body"},
			{map[string]any{"version": "2026.1", "text": "x", "summary": ""}, "summary"},
			{map[string]any{"version": "2026.1", "text": "x", "summary": "x", "purposes": []string{"newsletter"}}, "material"},
			{map[string]any{"version": "2026.1", "text": "x", "summary": "x", "material": true, "purposes": []string{"account"}}, "purposes"},
			{map[string]any{"version": "2026.1", "text": "x", "summary": "x", "kind": "business_transfer"}, "controller"},
			{map[string]any{"version": "2026.1", "text": "x", "summary": "x", "effective": "tomorrow"}, "effective"},
		} {
			r := h.Do("POST", "/api/v1/staff/policy", tt.body, dpoTok)
			if f, _ := r.ErrorField(); r.Status != http.StatusBadRequest || f != tt.field {
				t.Errorf("draft %v: %d %s, want 400 naming %s", tt.body, r.Status, r.Body, tt.field)
			}
		}
		if list, _ := pol.List(ctx, true); len(list) != 1 {
			t.Fatalf("bad drafts stored: %d versions", len(list))
		}

		newText := first.Body + "\nWe now send the newsletter through a new provider.\n"
		r := h.Do("POST", "/api/v1/staff/policy", map[string]any{"version": "2026.1", "text": newText,
			"summary": "The newsletter goes through a new provider.", "material": true, "purposes": []string{"newsletter"}}, dpoTok)
		if r.Status != http.StatusCreated {
			t.Fatalf("draft: %d %s", r.Status, r.Body)
		}
		// A draft is not public and changes nothing.
		if r := h.Do("GET", "/api/v1/policy/versions/2026.1", nil, ""); r.Status != http.StatusNotFound {
			t.Fatalf("a draft is public: %d", r.Status)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "newsletter"); !v.Allowed {
			t.Fatalf("a draft asked the newsletter again: %+v", v)
		}
		if r := h.Do("POST", "/api/v1/staff/policy/2026.1/publish", nil, dpoTok); r.Status != http.StatusOK {
			t.Fatalf("publish: %d %s", r.Status, r.Body)
		}
		// Published: immutable.
		if r := h.Do("PUT", "/api/v1/staff/policy/2026.1", map[string]any{"text": "changed", "summary": "x"}, dpoTok); r.Status != http.StatusConflict {
			t.Fatalf("a published version changed: %d %s", r.Status, r.Body)
		}
		if cur, _ := pol.Current(ctx); cur.Label != "2026.1" {
			t.Fatalf("in effect: %s, want 2026.1", cur.Label)
		}

		// The old consent no longer counts, in Allowed and in the audience alike.
		v, err := h.App.Consent().Allowed(ctx, id, "newsletter")
		if err != nil || v.Allowed || !strings.Contains(v.Reason, "confirm again") {
			t.Fatalf("Allowed after the change: %+v %v", v, err)
		}
		if inAudience() || byRule(t, h, "newsletter", "ada@example.com") {
			t.Fatal("a consent asked again is still in the audience")
		}

		// Every member is mailed once, through the outbox.
		m := h.WaitMail("ada@example.com", 2) // the confirmation, then the change
		if last := m[len(m)-1].Raw; !strings.Contains(last, "2026.1") || !strings.Contains(last, "/account/policy") {
			t.Fatalf("the mail: %s", last)
		}
		h.WaitMail("dpo@example.net", 2)
		waitFor(t, func() bool { v, _ := pol.Get(ctx, "2026.1"); return v.MailDone })
		if more, err := pol.MailBatch(ctx, "2026.1"); more || err != nil {
			t.Fatalf("mail again: %v %v", more, err)
		}
		if v, _ := pol.Get(ctx, "2026.1"); v.Mailed != 2 {
			t.Fatalf("mailed %d, want 2", v.Mailed)
		}
		if n := len(h.Mails("ada@example.com")); n != 2 {
			t.Fatalf("mails to the member: %d, want 2", n)
		}

		// The member's notice, then acceptance with the renewed consent.
		mine = h.Do("GET", "/api/v1/me/policy", nil, tok).JSON()
		if mine["pending"] == nil || mine["pending"].(map[string]any)["version"] != "2026.1" ||
			len(mine["reconfirm"].([]any)) != 1 || mine["reconfirm"].([]any)[0] != "newsletter" {
			t.Fatalf("my policy: %v", mine)
		}
		if r := h.Do("POST", "/api/v1/me/policy", map[string]any{"version": first.Label}, tok); r.Status != http.StatusBadRequest {
			t.Fatalf("accepting an old version: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/me/policy", map[string]any{"version": "2026.1", "choices": map[string]bool{"own_offers": true}}, tok); r.Status != http.StatusBadRequest {
			t.Fatalf("a choice not asked again: %d %s", r.Status, r.Body)
		}
		r = h.Do("POST", "/api/v1/me/policy", map[string]any{"version": "2026.1", "choices": map[string]bool{"newsletter": true}}, tok)
		if r.Status != http.StatusOK || r.JSON()["pending"] != nil {
			t.Fatalf("accept: %d %s", r.Status, r.Body)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "newsletter"); !v.Allowed {
			t.Fatalf("after the renewed consent: %+v", v)
		}
		if !inAudience() || !byRule(t, h, "newsletter", "ada@example.com") {
			t.Fatal("the renewed consent is not in the audience")
		}
		hist, err := h.App.Consent().History(ctx, id)
		if err != nil || hist[0].Purpose != "newsletter" || hist[0].PolicyVersion != "2026.1" || hist[0].Decision != consent.Granted {
			t.Fatalf("the ledger records the version in effect: %+v %v", hist[0], err)
		}

		// The diff and the versions, public.
		d := h.Do("GET", "/api/v1/policy/diff?from="+first.Label+"&to=2026.1", nil, "").JSON()
		added := 0
		for _, l := range d["lines"].([]any) {
			if l.(map[string]any)["op"] == "added" {
				added++
				if !strings.Contains(l.(map[string]any)["text"].(string), "new provider") && l.(map[string]any)["text"] != "" {
					t.Errorf("added line: %v", l)
				}
			}
		}
		if added == 0 {
			t.Fatalf("diff: %v", d)
		}
		if vs := h.Do("GET", "/api/v1/policy/versions", nil, "").JSON()["versions"].([]any); len(vs) != 2 {
			t.Fatalf("versions: %v", vs)
		}
		if r := h.Do("GET", "/api/v1/policy/diff?from=nope&to=2026.1", nil, ""); r.Status != http.StatusBadRequest {
			t.Fatalf("diff from a version that does not exist: %d %s", r.Status, r.Body)
		} else if f, _ := r.ErrorField(); f != "from" {
			t.Fatalf("diff from a version that does not exist names %q", f)
		}
	})
}

// TestPolicyEffectiveLater: a version dated ahead is published but not in effect, asks
// nothing again and mails nobody, until its date comes and the job applies it; a
// business transfer is announced like a material change.
func TestPolicyEffectiveLater(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		pol := h.App.Policy()
		first, _ := pol.Current(ctx)
		dpoID, dpoTok := h.Member("dpo@example.net", pw, nil)
		if err := h.GrantStaff(ctx, dpoID, "dpo"); err != nil {
			t.Fatal(err)
		}
		_, tok := h.Member("bob@example.com", pw, nil)
		day := h.Clock.Now().UTC().AddDate(0, 0, 3).Format(time.DateOnly)
		r := h.Do("POST", "/api/v1/staff/policy", map[string]any{"version": "2027.1", "kind": "business_transfer", "controller": "Acme Holdings",
			"text": "# Policy\n\nAcme Holdings is the controller.\n", "summary": "Acme Holdings takes over.", "effective": day}, dpoTok)
		if r.Status != http.StatusCreated {
			t.Fatalf("draft: %d %s", r.Status, r.Body)
		}
		if r := h.Do("POST", "/api/v1/staff/policy/2027.1/publish", nil, dpoTok); r.Status != http.StatusOK {
			t.Fatalf("publish: %d %s", r.Status, r.Body)
		}
		if cur, _ := pol.Current(ctx); cur.Label != first.Label {
			t.Fatalf("in effect before its date: %s", cur.Label)
		}
		if n, err := pol.ApplyDue(ctx); n != 0 || err != nil {
			t.Fatalf("applied before its date: %d %v", n, err)
		}
		if p := h.Do("GET", "/api/v1/me/policy", nil, tok).JSON(); p["pending"] != nil {
			t.Fatalf("notice before its date: %v", p)
		}
		h.Clock.Advance(4 * 24 * time.Hour)
		if _, err := pol.ApplyDue(ctx); err != nil {
			t.Fatal(err)
		}
		if cur, _ := pol.Current(ctx); cur.Label != "2027.1" {
			t.Fatalf("in effect after its date: %s", cur.Label)
		}
		p := h.Do("GET", "/api/v1/me/policy", nil, tok).JSON()
		if p["pending"] == nil || p["pending"].(map[string]any)["controller"] != "Acme Holdings" {
			t.Fatalf("transfer notice: %v", p)
		}
		m := h.WaitMail("bob@example.com", 2)
		if !strings.Contains(m[len(m)-1].Raw, "Acme Holdings") {
			t.Fatalf("transfer mail: %s", m[len(m)-1].Raw)
		}
		// A later member accepts the version in effect at registration: no notice.
		_, tok2 := h.Member("cy@example.com", pw, nil)
		if p := h.Do("GET", "/api/v1/me/policy", nil, tok2).JSON(); p["pending"] != nil {
			t.Fatalf("notice for a member who registered under it: %v", p)
		}
	})
}

// TestPolicyRegisterNamesVersion: a purpose of the register that names the version it
// depends on is asked again when that version, a material change, takes effect,
// though the version does not list it; a consent given after it stands.
func TestPolicyRegisterNamesVersion(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		reg, err := os.ReadFile("../consent/purposes.toml")
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(reg), `key = "own_offers"`, "key = \"own_offers\"\npolicy_version = \"2026.9\"", 1)
		file := filepath.Join(t.TempDir(), "purposes.toml")
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		h := apptest.Start(t, dbURL, "--purposes", file)
		ctx := context.Background()
		pol := h.App.Policy()
		id, tok := h.Member("ada@example.com", pw, nil)
		for _, p := range []string{"own_offers", "newsletter"} {
			if _, err := h.App.Consent().Record(ctx, id, p, consent.Granted, consent.SourceForm, nil); err != nil {
				t.Fatal(err)
			}
		}
		by := policy.Actor{ID: id}
		if _, err := pol.Create(ctx, by, policy.Draft{Label: "2026.9", Body: "# Policy\n\nOffers change.\n", Summary: "Offers change.", Material: true}); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(time.Second)
		if _, err := pol.Publish(ctx, by, "2026.9"); err != nil {
			t.Fatal(err)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "own_offers"); v.Allowed {
			t.Fatalf("own_offers, naming 2026.9, still allowed: %+v", v)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "newsletter"); !v.Allowed {
			t.Fatalf("newsletter, not named, asked again: %+v", v)
		}
		for _, p := range h.Do("GET", "/api/v1/me/consents", nil, tok).JSON()["purposes"].([]any) {
			p := p.(map[string]any)
			if asked := p["reconfirm"] == true; asked != (p["key"] == "own_offers") || (asked && !strings.Contains(p["reason"].(string), "confirm again")) {
				t.Errorf("the member's consent to %v: %v", p["key"], p)
			}
		}
		// Consenting again, from the preferences (not only the policy page), counts.
		h.Clock.Advance(time.Second)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"own_offers":true}}`, tok); r.Status != 200 {
			t.Fatalf("consent again: %d %s", r.Status, r.Body)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "own_offers"); !v.Allowed {
			t.Fatalf("own_offers after consenting again: %+v", v)
		}
		// A start after it asks nothing again twice (SyncRegister is idempotent).
		if err := pol.SyncRegister(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "own_offers"); !v.Allowed {
			t.Fatalf("own_offers after a sync: %+v", v)
		}
	})
}
