package web_test

import (
	"bytes"
	"context"
	"html/template"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"steward/internal/consent"
	"steward/internal/store/storetest"
)

// mustVersion is the version of the privacy policy in effect.
func mustVersion(t *testing.T, c *consent.Service) string {
	t.Helper()
	v, err := c.PolicyVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// box reports whether the page has a checkbox named name, and whether it is ticked.
func box(body, name string) (present, ticked bool) {
	m := regexp.MustCompile(`<input[^>]*name="` + regexp.QuoteMeta(name) + `"[^>]*>`).FindString(body)
	return m != "", regexp.MustCompile(` checked[ >]`).MatchString(m)
}

// wantBox fails unless the page has the checkbox, ticked or not as wanted.
func (p page) wantBox(t *testing.T, name string, ticked bool) {
	t.Helper()
	present, on := box(p.body, name)
	if !present {
		t.Fatalf("no checkbox %s:\n%s", name, p.body)
	}
	if on != ticked {
		t.Errorf("checkbox %s ticked = %v, want %v", name, on, ticked)
	}
}

// choices returns the member's current decisions by purpose, and the flags.
func (s *site) choices(subjectID string) (map[string]consent.Choice, consent.Flags) {
	s.t.Helper()
	list, flags, err := s.app.Consent().Choices(s.t.Context(), subjectID)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]consent.Choice{}
	for _, c := range list {
		out[c.Purpose.Key] = c
	}
	return out, flags
}

// history returns the member's ledger, newest first.
func (s *site) history(subjectID string) []consent.Event {
	s.t.Helper()
	h, err := s.app.Consent().History(s.t.Context(), subjectID)
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

var receiptLink = regexp.MustCompile(`href="(/account/preferences/receipts/([0-9]+))"`)

// TestConsent gives, withdraws and objects through the preferences page, honours the
// browser's privacy signal, and downloads a signed receipt, on every engine.
func TestConsent(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testConsent(t, start(t, dbURL))
		})
	}
}

func testConsent(t *testing.T, s *site) {
	reg := s.app.Consent().Register()
	c := s.client()
	id := s.signUp(t, c, "ada@example.com", "Ada Lovelace", "analytical engine 1843")
	c.get("/account").want(t, "account", http.StatusOK, `<a href="/account/preferences">Privacy preferences</a>`)

	// A new member: every box there, none ticked; opt-in only.
	p := c.get("/account/preferences")
	p.want(t, "preferences", http.StatusOK, `action="/account/preferences"`, "Save my choices",
		"Privacy policy version "+mustVersion(t, s.app.Consent())+" is in force.", "No decisions yet.",
		"Contract — needed for the service", "Legitimate interest — you may object", "Consent — only if you opt in",
		`href="/receipts/verify"`)
	if strings.Contains(p.body, "steward receipt") {
		t.Error("the preferences page names a server command")
	}
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("preferences Cache-Control = %q, want no-store", got)
	}
	for _, pu := range reg.Purposes {
		switch {
		case pu.NeedsConsent():
			p.wantBox(t, "consent_"+pu.Key, false)
		case pu.Objectable():
			p.wantBox(t, "object_"+pu.Key, false)
		default:
			if present, _ := box(p.body, "consent_"+pu.Key); present {
				t.Errorf("purpose %s on %s has a checkbox", pu.Key, pu.Basis)
			}
			if !strings.Contains(p.body, `id="purpose-`+pu.Key+`"`) {
				t.Errorf("purpose %s is not listed", pu.Key)
			}
		}
	}
	p.wantBox(t, "restricted", false)
	p.wantBox(t, "objected", false)
	if regexp.MustCompile(`<input[^>]* checked[ >]`).MatchString(p.body) {
		t.Error("a box is ticked for a new member")
	}
	for _, bad := range []string{"<script", "style=", "<style", "onclick", "javascript:", "zgotmplz"} {
		if strings.Contains(strings.ToLower(p.body), bad) {
			t.Errorf("preferences page contains %q", bad)
		}
	}

	// Tick the newsletter and save.
	c.post("/account/preferences", url.Values{"consent_newsletter": {"on"}}).
		wantRedirect(t, "save", "/account/preferences?saved=1")
	p = c.get("/account/preferences?saved=1")
	p.want(t, "saved", http.StatusOK, "Your choices are saved.", "Consent given.", "through the preferences form", "Newsletter: consent given")
	p.wantBox(t, "consent_newsletter", true)
	p.wantBox(t, "consent_own_offers", false)
	p.wantBox(t, "object_security", false)
	ch, _ := s.choices(id)
	if n := ch["newsletter"]; n.Decision != consent.Granted || n.Source != consent.SourceForm || !n.Verdict.Allowed {
		t.Errorf("newsletter after ticking = %+v", n)
	}
	for k, c := range ch {
		if k != "newsletter" && c.Decision != "" {
			t.Errorf("saving recorded %s = %s, which the member did not touch", k, c.Decision)
		}
	}

	// Untick it: the same page, the same button.
	c.post("/account/preferences", url.Values{}).wantRedirect(t, "withdraw", "/account/preferences?saved=1")
	c.get("/account/preferences").wantBox(t, "consent_newsletter", false)
	ch, _ = s.choices(id)
	if n := ch["newsletter"]; n.Decision != consent.Withdrawn || n.Verdict.Allowed {
		t.Errorf("newsletter after unticking = %+v", n)
	}
	h := s.history(id)
	if len(h) != 2 {
		t.Fatalf("history has %d events, want 2: %+v", len(h), h)
	}
	for i, want := range []consent.Decision{consent.Withdrawn, consent.Granted} {
		if h[i].Purpose != "newsletter" || h[i].Decision != want || h[i].Source != consent.SourceForm {
			t.Errorf("event %d = %+v, want newsletter %s from the form", i, h[i], want)
		}
	}

	// Object to security and restrict processing; then take both back.
	c.post("/account/preferences", url.Values{"object_security": {"on"}, "restricted": {"on"}}).
		wantRedirect(t, "object", "/account/preferences?saved=1")
	p = c.get("/account/preferences")
	p.want(t, "objected", http.StatusOK, "Security and fraud prevention: objected", "Processing is restricted.")
	p.wantBox(t, "object_security", true)
	p.wantBox(t, "restricted", true)
	p.wantBox(t, "objected", false)
	ch, flags := s.choices(id)
	if sec := ch["security"]; sec.Decision != consent.Withdrawn || sec.Verdict.Allowed {
		t.Errorf("security after objecting = %+v", sec)
	}
	if !flags.Restricted || flags.Objected {
		t.Errorf("flags = %+v, want restricted only", flags)
	}
	c.post("/account/preferences", url.Values{"objected": {"on"}}).wantRedirect(t, "lift", "/account/preferences?saved=1")
	p = c.get("/account/preferences")
	p.wantBox(t, "object_security", false)
	p.wantBox(t, "restricted", false)
	p.wantBox(t, "objected", true)
	ch, flags = s.choices(id)
	if sec := ch["security"]; sec.Decision != consent.Granted {
		t.Errorf("security after lifting the objection = %+v", sec)
	}
	if sec := ch["security"]; sec.Verdict.Allowed {
		t.Errorf("security allowed although the member objects to all: %+v", sec)
	}
	if flags.Restricted || !flags.Objected {
		t.Errorf("flags = %+v, want objected only", flags)
	}
	c.post("/account/preferences", url.Values{}).wantRedirect(t, "clear", "/account/preferences?saved=1")
	if ch, flags = s.choices(id); flags.Restricted || flags.Objected || !ch["security"].Verdict.Allowed {
		t.Errorf("after clearing: flags %+v, security %+v", flags, ch["security"])
	}
	// Four decisions about purposes, and each flag set and lifted: four more.
	if h := s.history(id); len(h) != 8 {
		t.Errorf("history has %d events, want 8: %+v", len(h), h)
	} else if h[0].Purpose != consent.FlagObjection || h[0].Decision != consent.FlagLifted || h[0].Source != consent.SourceForm {
		t.Errorf("the newest event = %+v, want the objection lifted through the form", h[0])
	}
	c.get("/account/preferences").want(t, "flags in the history", http.StatusOK,
		"Restriction of processing (GDPR art. 18)", "Objection to processing on legitimate interest (GDPR art. 21)")

	// A purpose the register lacks is not read; nothing is recorded.
	other := s.client()
	otherID := s.signUp(t, other, "charles@example.com", "Charles Babbage", "difference engine 1822")
	other.post("/account/preferences", url.Values{"consent_horoscope": {"on"}, "object_horoscope": {"on"}, "consent_account": {"on"}}).
		wantRedirect(t, "unknown purpose", "/account/preferences?saved=1")
	if h := s.history(otherID); len(h) != 0 {
		t.Errorf("a form with unknown purposes recorded %+v", h)
	}
	if _, flags := s.choices(otherID); flags != (consent.Flags{}) {
		t.Errorf("a form with unknown purposes set the flags %+v", flags)
	}

	// The browser's Global Privacy Control on any page opts out of sharing, once.
	for range 2 {
		c.send(http.MethodGet, "/account/files", nil, http.Header{"Sec-GPC": {"1"}}).want(t, "files with GPC", http.StatusOK)
	}
	ch, _ = s.choices(id)
	if ps := ch["partner_sharing"]; ps.Decision != consent.Withdrawn || ps.Source != consent.SourceBrowserSignal {
		t.Errorf("partner_sharing after GPC = %+v", ps)
	}
	h = s.history(id)
	if len(h) != 9 || h[0].Purpose != "partner_sharing" || h[0].Source != consent.SourceBrowserSignal {
		t.Errorf("history after GPC = %+v, want one opt-out of partner_sharing by the browser signal", h)
	}
	c.get("/account/preferences").want(t, "after GPC", http.StatusOK,
		"Sharing with selected partners: consent withdrawn", "through your browser’s signal (Global Privacy Control)")

	// Receipts: the newest decision's downloads and verifies; another member finds none.
	p = c.get("/account/preferences")
	m := receiptLink.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no receipt link:\n%s", p.body)
	}
	if n := len(receiptLink.FindAllString(p.body, -1)); n != 9 {
		t.Errorf("%d receipt links, want 9", n)
	}
	// The link opens the receipt in words, with its file to download.
	r := c.get(m[1])
	r.want(t, "receipt page", http.StatusOK, "Sharing with selected partners", "consent withdrawn",
		"your browser’s signal (Global Privacy Control)", "version "+mustVersion(t, s.app.Consent()), "What the signature proves",
		`href="`+m[1]+`/download"`, "Download the signed receipt", `href="/receipts/verify"`, `href="/.well-known/steward-receipt-key"`)
	if strings.Contains(r.body, `"signature"`) || strings.Contains(r.body, "browser_signal") {
		t.Errorf("the receipt page shows the raw receipt:\n%s", r.body)
	}
	r = c.get(m[1] + "/download")
	r.want(t, "receipt", http.StatusOK)
	if got := r.header.Get("Content-Disposition"); !strings.HasPrefix(got, "attachment") {
		t.Errorf("receipt Content-Disposition = %q", got)
	}
	rc, err := consent.Verify([]byte(r.body), s.app.Consent().Signer().PublicKey())
	if err != nil {
		t.Fatalf("receipt does not verify: %v\n%s", err, r.body)
	}
	if rc.ReceiptID != m[2] || rc.Subject != id || rc.Purpose != "partner_sharing" || rc.Decision != "withdrawn" || rc.Source != "browser_signal" {
		t.Errorf("receipt = %+v", rc)
	}
	other.get(m[1]).want(t, "other's receipt", http.StatusNotFound, "Page not found")
	other.get(m[1]+"/download").want(t, "other's receipt file", http.StatusNotFound, "Page not found")
	c.get("/account/preferences/receipts/nope").want(t, "bad receipt id", http.StatusNotFound, "Page not found")
	c.get("/account/preferences/receipts/nope/download").want(t, "bad receipt file id", http.StatusNotFound, "Page not found")

	// Anyone can check it, without an account: pasted or uploaded, as it is, it is
	// valid; a changed byte, or none, is not.
	anon := s.client()
	anon.get("/receipts/verify").want(t, "check page", http.StatusOK, `action="/receipts/verify"`, `type="file"`, `name="receipt"`)
	anon.post("/receipts/verify", url.Values{"receipt": {r.body}}).want(t, "valid receipt", http.StatusOK,
		"<strong>Valid.</strong>", "Sharing with selected partners", "consent withdrawn")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile("file", "consent-receipt.json")
	part.Write([]byte(r.body))
	mw.Close()
	anon.send(http.MethodPost, "/receipts/verify", &body, http.Header{"Content-Type": {mw.FormDataContentType()}}).
		want(t, "valid receipt file", http.StatusOK, "<strong>Valid.</strong>", "consent withdrawn")
	changed := strings.Replace(r.body, `"withdrawn"`, `"granted"`, 1)
	if changed == r.body {
		t.Fatalf("the receipt has no decision to change:\n%s", r.body)
	}
	p = anon.post("/receipts/verify", url.Values{"receipt": {changed}})
	p.want(t, "changed receipt", http.StatusOK, "<strong>Not valid.</strong>", "changed after we signed it")
	if strings.Contains(p.body, "<strong>Valid.") {
		t.Error("a changed receipt is called valid")
	}
	anon.post("/receipts/verify", url.Values{"receipt": {"{}"}}).want(t, "not a receipt", http.StatusOK, "<strong>Not valid.</strong>", "not a consent receipt")
	anon.post("/receipts/verify", url.Values{}).want(t, "nothing given", http.StatusBadRequest, "is required", `id="form-error"`)
}

// TestPurposesPage shows the register to anyone.
func TestPurposesPage(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	reg := s.app.Consent().Register()
	p := s.client().get("/privacy/purposes")
	p.want(t, "purposes", http.StatusOK, "Email delivery provider", template.HTMLEscapeString("Sends the site's email on its behalf"), "DE",
		`Email address <code class="nowrap small">user.contact.email</code>`, "Processing agreement (GDPR art. 28)", `href="#processor-email_provider"`,
		"Contract — needed for the service", "Legitimate interest — you may object", "Consent — only if you opt in",
		"Privacy policy version "+mustVersion(t, s.app.Consent()), `href="/login"`)
	for _, pu := range reg.Purposes {
		for _, want := range []string{template.HTMLEscapeString(pu.Name), template.HTMLEscapeString(pu.Description)} {
			if !strings.Contains(p.body, want) {
				t.Errorf("purposes page lacks %q", want)
			}
		}
	}
	// Every page links to it.
	s.client().get("/").want(t, "home", http.StatusOK, `href="/privacy/purposes"`)
}
