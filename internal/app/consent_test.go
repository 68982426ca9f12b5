package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/cli"
	"steward/internal/consent"
)

func choice(t *testing.T, r apptest.Response, key string) map[string]any {
	t.Helper()
	for _, p := range r.JSON()["purposes"].([]any) {
		if m := p.(map[string]any); m["key"] == key {
			return m
		}
	}
	t.Fatalf("purpose %s missing in %s", key, r.Body)
	return nil
}

func TestConsentLedger(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		id, token := h.Member("consent@example.org", pw, nil)

		reg := h.Do("GET", "/api/v1/purposes", nil, "")
		if reg.Status != 200 || len(reg.JSON()["processors"].([]any)) == 0 || choice(t, reg, "newsletter")["lawful_basis"] != "consent" {
			t.Fatalf("register = %d %s", reg.Status, reg.Body)
		}
		// Opt-in only: nothing is pre-ticked, nothing on consent is allowed.
		c := h.Do("GET", "/api/v1/me/consents", nil, token)
		for _, p := range c.JSON()["purposes"].([]any) {
			m := p.(map[string]any)
			if m["needs_consent"] == true && (m["decision"] != "" || m["allowed"] == true) {
				t.Errorf("purpose %s pre-ticked: %v", m["key"], m)
			}
		}
		// Bad choices are refused and nothing is recorded.
		for body, field := range map[string]string{
			`{"choices":{"newsletter":true,"horoscope":true}}`: "choices.horoscope",
			`{"choices":{"account":false}}`:                    "choices.account",
			`{"choices":{"newsletter":"yes"}}`:                 "choices", // encoding/json names the map, not its key
		} {
			r := h.Do("PUT", "/api/v1/me/consents", body, token)
			if f, _ := r.ErrorField(); r.Status != 400 || f != field {
				t.Errorf("PUT %s = %d %s, want 400 on %s", body, r.Status, r.Body, field)
			}
		}
		if hist := h.Do("GET", "/api/v1/me/consents/history", nil, token).JSON()["events"].([]any); len(hist) != 0 {
			t.Fatalf("refused choices were recorded: %v", hist)
		}

		r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"partner_sharing":true}}`, token)
		if r.Status != 200 || choice(t, r, "newsletter")["allowed"] != true || choice(t, r, "newsletter")["source"] != "api" {
			t.Fatalf("opt-in = %d %s", r.Status, r.Body)
		}
		if v, _ := h.App.Consent().Allowed(ctx, id, "newsletter"); !v.Allowed {
			t.Errorf("Allowed(newsletter) after opt-in = %+v", v)
		}
		// Withdrawing is as easy as giving.
		r = h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":false}}`, token)
		if choice(t, r, "newsletter")["allowed"] != false || choice(t, r, "newsletter")["decision"] != "withdrawn" {
			t.Errorf("withdrawal = %s", r.Body)
		}
		// The browser's Global Privacy Control opts out of sharing, once, and the
		// disagreement with the earlier opt-in is recorded as a conflict.
		for range 2 {
			req := map[string]string{"Sec-GPC": "1"}
			if g := get(h, token, "/api/v1/me", req); g.Status != 200 {
				t.Fatalf("GET /me with GPC = %d", g.Status)
			}
		}
		r = h.Do("GET", "/api/v1/me/consents", nil, token)
		if s := choice(t, r, "partner_sharing"); s["decision"] != "withdrawn" || s["source"] != "browser_signal" {
			t.Errorf("after GPC: %v", s)
		}
		hist := h.Do("GET", "/api/v1/me/consents/history", nil, token).JSON()["events"].([]any)
		if len(hist) != 4 {
			t.Errorf("history has %d events, want 4 (two opt-ins, a withdrawal, one GPC opt-out)", len(hist))
		}
		// A deliberate opt-in after the signal was honoured stands, signal or not.
		h.Do("PUT", "/api/v1/me/consents", `{"choices":{"partner_sharing":true}}`, token)
		get(h, token, "/api/v1/me", map[string]string{"Sec-GPC": "1"})
		if s := choice(t, h.Do("GET", "/api/v1/me/consents", nil, token), "partner_sharing"); s["decision"] != "granted" {
			t.Errorf("an opt-in after the signal was overridden again: %v", s)
		}
		h.Do("PUT", "/api/v1/me/consents", `{"choices":{"partner_sharing":false}}`, token)
		hist = h.Do("GET", "/api/v1/me/consents/history", nil, token).JSON()["events"].([]any)
		// Staff see the conflicts; a plain member does not.
		if r := h.Do("GET", "/api/v1/staff/consent-conflicts", nil, token); r.Status != 403 {
			t.Errorf("a member reading conflicts = %d", r.Status)
		}
		dpoID, dpo := h.Member("dpo@example.org", pw, nil)
		h.GrantStaff(ctx, dpoID, "dpo")
		if r := h.Do("GET", "/api/v1/staff/consent-conflicts", nil, dpo); r.Status != 200 || len(r.JSON()["conflicts"].([]any)) == 0 {
			t.Errorf("the DPO reading conflicts = %d %s", r.Status, r.Body)
		}
		conflicts, err := h.App.Consent().Conflicts(ctx, 10)
		if err != nil || len(conflicts) < 1 || conflicts[len(conflicts)-1].Purpose != "partner_sharing" || conflicts[len(conflicts)-1].Later.Source != consent.SourceBrowserSignal {
			t.Errorf("conflicts = %+v (%v)", conflicts, err)
		}

		// Restriction stops consented processing; objection stops marketing and
		// legitimate interest; contract processing goes on.
		h.Do("PUT", "/api/v1/me/consents", `{"choices":{"own_offers":true}}`, token)
		r = h.Do("PUT", "/api/v1/me/consents", `{"restricted":true}`, token)
		if choice(t, r, "own_offers")["allowed"] != false || choice(t, r, "account")["allowed"] != true {
			t.Errorf("restricted: %s", r.Body)
		}
		r = h.Do("PUT", "/api/v1/me/consents", `{"restricted":false,"objected":true}`, token)
		if choice(t, r, "own_offers")["allowed"] != false || choice(t, r, "security")["allowed"] != false || choice(t, r, "account")["allowed"] != true {
			t.Errorf("objected: %s", r.Body)
		}
		r = h.Do("PUT", "/api/v1/me/consents", `{"objected":false}`, token)
		if choice(t, r, "own_offers")["allowed"] != true {
			t.Errorf("after lifting the objection: %s", r.Body)
		}
		// Each change of a flag is a decision in the ledger, newest first, with a
		// receipt that names it; setting a flag to what it is records nothing.
		h.Do("PUT", "/api/v1/me/consents", `{"objected":false}`, token)
		flagHist := h.Do("GET", "/api/v1/me/consents/history", nil, token).JSON()["events"].([]any)
		var flagEvents []string
		for _, e := range flagHist {
			m := e.(map[string]any)
			if consent.IsFlag(m["purpose"].(string)) {
				flagEvents = append(flagEvents, m["purpose"].(string)+" "+m["decision"].(string)+" "+m["source"].(string))
			}
		}
		if want := []string{"objection lifted api", "objection set api", "restriction lifted api", "restriction set api"}; strings.Join(flagEvents, ",") != strings.Join(want, ",") {
			t.Errorf("flag events = %v, want %v", flagEvents, want)
		}
		frc := get(h, token, flagHist[0].(map[string]any)["receipt_url"].(string), nil)
		if frc.Status != 200 || !strings.Contains(string(frc.Body), `"purpose_name":"Objection to processing on legitimate interest (GDPR art. 21)"`) ||
			!strings.Contains(string(frc.Body), `"decision":"lifted"`) {
			t.Errorf("receipt of lifting the objection = %d %s", frc.Status, frc.Body)
		}

		// A signed receipt for a decision; changed, it no longer verifies.
		if len(hist) != 6 {
			t.Errorf("history has %d events, want 6", len(hist))
		}
		ev := hist[len(hist)-1].(map[string]any)
		rc := get(h, token, ev["receipt_url"].(string), nil)
		if rc.Status != 200 || !strings.Contains(rc.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("receipt = %d %s", rc.Status, rc.Body)
		}
		pub := h.App.Consent().Signer().PublicKey()
		got, err := consent.Verify(rc.Body, pub)
		if err != nil || got.Subject != id || got.Purpose != "newsletter" || got.Decision != "granted" || got.PolicyVersion == "" {
			t.Errorf("verify = %+v, %v", got, err)
		}
		tampered := bytes.Replace(rc.Body, []byte(`"granted"`), []byte(`"withdrawn"`), 1)
		if _, err := consent.Verify(tampered, pub); err == nil {
			t.Error("a changed receipt verified")
		}
		// The command line checks it with the operator's key.
		file := filepath.Join(t.TempDir(), "receipt.json")
		os.WriteFile(file, rc.Body, 0o600)
		bad := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(bad, tampered, 0o600)
		env := func(k string) string {
			if k == "STEWARD_DATA" {
				return h.Data
			}
			return ""
		}
		var out bytes.Buffer
		if code := cli.Run(ctx, []string{"receipt", "verify", file}, env, &out, &out); code != 0 || !strings.Contains(out.String(), "valid receipt") {
			t.Errorf("receipt verify: exit %d: %s", code, out.String())
		}
		out.Reset()
		if code := cli.Run(ctx, []string{"receipt", "verify", bad}, env, &out, &out); code != 1 || !strings.Contains(out.String(), "INVALID") {
			t.Errorf("receipt verify of a changed receipt: exit %d: %s", code, out.String())
		}
		// Service mail goes out whatever the marketing choices: with processing
		// restricted and an objection, a password reset still arrives.
		h.Do("PUT", "/api/v1/me/consents", `{"restricted":true,"objected":true}`, token)
		h.Do("POST", "/api/v1/password-resets", map[string]string{"email": "consent@example.org"}, "")
		h.WaitLink("consent@example.org", "/password/reset?token=")
		// Another member cannot fetch this member's receipt.
		_, other := h.Member("consent.other@example.org", pw, nil)
		if r := get(h, other, ev["receipt_url"].(string), nil); r.Status != 404 {
			t.Errorf("another member's receipt = %d", r.Status)
		}
		var key map[string]string
		json.Unmarshal(h.Do("GET", "/.well-known/steward-receipt-key", nil, "").Body, &key)
		if key["key_id"] != consent.KeyID(pub) {
			t.Errorf("published key = %v", key)
		}

		// Erasure takes the ledger with the member.
		del := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
		h.WaitErasure(del.JSON()["request_id"].(string))
		var n int
		h.App.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM consent_events WHERE subject_id = $1) + (SELECT count(*) FROM consent_state WHERE subject_id = $1) + (SELECT count(*) FROM processing_flags WHERE subject_id = $1) + (SELECT count(*) FROM consent_conflicts WHERE subject_id = $1)`, id).Scan(&n)
		if n != 0 {
			t.Errorf("%d consent rows left after erasure", n)
		}
	})
}

// A mail to the unsubscribe address withdraws every marketing consent of the member
// who sent it, with the inbound mail as the recorded source, when SPF passes for the
// From: domain (the test client is 127.0.0.1). See TestUnsubscribeMailAuthentication.
func TestUnsubscribeByMail(t *testing.T) {
	h := apptest.Start(t, "", "--inbound-smtp-addr", "127.0.0.1:0")
	h.DNS.TXT("example.org", "v=spf1 ip4:127.0.0.1 -all")
	_, token := h.Member("leaving@example.org", pw, nil)
	h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":true,"email_open_tracking":true}}`, token)
	addr := h.App.InboundAddr()
	if addr == nil {
		t.Fatal("the inbound listener is not running")
	}
	send := func(from string) error {
		msg := "From: <" + from + ">\r\nTo: <unsubscribe@steward.localhost>\r\nSubject: unsubscribe\r\n\r\nplease\r\n"
		return smtp.SendMail(addr.String(), nil, from, []string{"unsubscribe@steward.localhost"}, []byte(msg))
	}
	if err := send("nobody.known@example.org"); err != nil {
		t.Fatalf("mail from an unknown address refused: %v", err)
	}
	if err := send("Leaving@Example.org"); err != nil {
		t.Fatal(err)
	}
	r := h.Do("GET", "/api/v1/me/consents", nil, token)
	for _, k := range []string{"newsletter", "own_offers"} {
		if c := choice(t, r, k); c["decision"] != "withdrawn" || c["source"] != "inbound_email" {
			t.Errorf("%s after the unsubscribe mail: %v", k, c)
		}
	}
	if c := choice(t, r, "email_open_tracking"); c["decision"] != "granted" {
		t.Errorf("a purpose that is not marketing changed: %v", c)
	}
	if err := smtp.SendMail(addr.String(), nil, "x@example.org", []string{"postmaster@steward.localhost"}, []byte("Subject: x\r\n\r\nx")); err == nil {
		t.Error("the listener accepted mail for another address")
	}
}
