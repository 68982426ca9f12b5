package web_test

import (
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/store/storetest"
)

// subjects returns the subjects of the mails to the address in the outbox.
func (s *site) subjects(to string) []string {
	s.t.Helper()
	names, _ := filepath.Glob(filepath.Join(s.outbox, "*.eml"))
	var out []string
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			s.t.Fatal(err)
		}
		m, err := mail.ReadMessage(f)
		if err != nil {
			f.Close()
			s.t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(m.Header.Get("To"), to) {
			out = append(out, m.Header.Get("Subject"))
		}
		f.Close()
	}
	return out
}

var versionField = regexp.MustCompile(`name="version" value="([0-9a-f]+)"`)

// TestCampaignDrafts changes, tests, confirms and deletes drafts from the staff pages,
// on every engine: a draft can be edited and deleted until it is sent, a test goes to
// the staff member alone, and a send starts only from its confirmation, which shows the
// audience now.
func TestCampaignDrafts(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testCampaignDrafts(t, start(t, dbURL))
		})
	}
}

func testCampaignDrafts(t *testing.T, s *site) {
	const reader, editor = "reader@example.com", "grace@example.com"
	r := s.client()
	s.signUp(t, r, reader, "Ada Reader", "analytical engine 1843")
	r.post("/account/preferences", url.Values{"consent_newsletter": {"on"}})
	m := s.client()
	id := s.signUp(t, m, editor, "Grace Hopper", "compiler cobol 1959")
	if err := apptest.GrantStaff(t.Context(), s.app, id, "marketing"); err != nil {
		t.Fatal(err)
	}
	p := m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"Autumn news"},
		"body": {"# Autumn\n\nRead [the post](https://example.org/post)."}})
	p.wantRedirect(t, "create", "/staff/campaigns/")
	page := p.location()

	// Edit: the form holds the draft; a bad field is named; a good change is saved.
	p = m.get(page + "/edit")
	p.want(t, "edit form", http.StatusOK, `action="`+page+`/edit"`, `value="Autumn news"`, "# Autumn", `<option value="newsletter" selected>`)
	m.post(page+"/edit", url.Values{"purpose": {"newsletter"}, "subject": {""}, "body": {"x"}}).
		want(t, "edit without subject", http.StatusBadRequest, `id="f-subject-error"`, "Subject is required", "Edit the draft")
	m.post(page+"/edit", url.Values{"purpose": {"partner_sharing"}, "subject": {"x"}, "body": {"x"}}).
		want(t, "edit to a sharing purpose", http.StatusBadRequest, `id="f-purpose-error"`)
	m.post(page+"/edit", url.Values{"purpose": {"newsletter"}, "subject": {"Winter news"}, "body": {"# Winter\n\nSnow <b>today</b>, see [us](https://example.org)."}}).
		wantRedirect(t, "edit", page+"?saved=1")
	p = m.get(page + "?saved=1")
	p.want(t, "saved", http.StatusOK, "Your changes are saved.", "<h1>Winter news</h1>", "Snow today, see us (https://example.org).",
		`href="`+page+`/edit"`, `href="`+page+`/delete"`, `href="`+page+`/send"`, `action="`+page+`/test"`)

	// The preview is the mail in its layout, in a frame of its own under a strict CSP.
	p = m.get(page + "/preview")
	p.want(t, "preview", http.StatusOK, "<title>Winter news</title>", "max-width:600px", "Steward", "Snow today",
		"because you agreed to: Newsletter.", "Unsubscribe with one click")
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "frame-ancestors 'self'") || strings.Contains(csp, "script-src") {
		t.Errorf("the preview's CSP = %q", csp)
	}
	if xfo := p.header.Get("X-Frame-Options"); xfo != "SAMEORIGIN" {
		t.Errorf("the preview's X-Frame-Options = %q", xfo)
	}
	if strings.Contains(p.body, "<b>") {
		t.Errorf("the preview keeps raw HTML:\n%s", p.body)
	}

	// A test goes to the staff member alone, marked, and counts as no delivery.
	m.post(page+"/test", nil).wantRedirect(t, "test", page+"?tested=1")
	m.get(page+"?tested=1").want(t, "tested", http.StatusOK, "A test was sent to your own address, "+editor)
	test := s.find(editor, regexp.MustCompile(`(?s)This is a test.*Hello Grace,.*Winter\r?\n======.*Snow today, see us \(https://example.org\)\..*/unsubscribe/test`))
	if strings.Contains(test, "/unsubscribe?t=") {
		t.Errorf("the test mail holds a working opt-out link:\n%s", test)
	}
	if got := s.subjects(editor); !containsString(got, "[Test] Winter news") {
		t.Errorf("the staff member's mails have the subjects %q, want one [Test] Winter news", got)
	}
	if got := s.subjects(reader); containsString(got, "[Test] Winter news") || containsString(got, "Winter news") {
		t.Errorf("the reader got the test: %q", got)
	}
	var deliveries int
	if err := s.app.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM campaign_deliveries`).Scan(&deliveries); err != nil || deliveries != 0 {
		t.Errorf("after a test there are %d deliveries (%v), want none", deliveries, err)
	}
	// Its opt-out link says it is a test, and changes nothing.
	p = s.client().get("/unsubscribe/test")
	p.want(t, "test opt-out", http.StatusOK, "This was a test mail", "It unsubscribes no one")
	p.lacks(t, "test opt-out", `name="t"`, "Unsubscribe</button>")

	// The send starts from its confirmation, which shows the audience now and the purpose.
	p = m.get(page + "/send")
	p.want(t, "confirm", http.StatusOK, `<dd id="audience">1</dd>`, "<dd>Newsletter</dd>", "Send to 1 recipient</button>",
		`action="`+page+`/send"`)
	ver := versionField.FindStringSubmatch(p.body)
	if ver == nil {
		t.Fatalf("the confirmation carries no version:\n%s", p.body)
	}
	// A confirmation of a draft changed since does not send the change.
	m.post(page+"/edit", url.Values{"purpose": {"newsletter"}, "subject": {"Winter news, again"}, "body": {"Changed."}}).
		wantRedirect(t, "edit again", page+"?saved=1")
	m.post(page+"/send", url.Values{"version": {ver[1]}}).want(t, "stale confirmation", http.StatusConflict, "The draft was changed meanwhile")
	for _, subj := range s.subjects(reader) {
		if strings.Contains(subj, "Winter") {
			t.Errorf("a stale confirmation sent %q", subj)
		}
	}
	p = m.get(page + "/send")
	ver = versionField.FindStringSubmatch(p.body)
	m.post(page+"/send", url.Values{"version": {ver[1]}}).wantRedirect(t, "send", page+"?started=1")
	s.find(reader, regexp.MustCompile(`Changed\.`))

	// Sent: no longer changed nor deleted, on the pages or by a hand-made request.
	for _, path := range []string{"/edit", "/delete", "/send"} {
		m.get(page+path).want(t, "GET "+path+" when sent", http.StatusConflict)
	}
	m.post(page+"/edit", url.Values{"purpose": {"newsletter"}, "subject": {"Late"}, "body": {"Late."}}).
		want(t, "edit when sent", http.StatusConflict, "Only a draft can be changed")
	m.post(page+"/delete", nil).want(t, "delete when sent", http.StatusConflict, "Only a draft can be deleted")
	p = m.get(page)
	p.want(t, "sent campaign", http.StatusOK, "Winter news, again")
	p.lacks(t, "sent campaign", `href="`+page+`/edit"`, `href="`+page+`/delete"`, `href="`+page+`/send"`)

	// Delete a draft: a confirmation first, then it is gone.
	p = m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"Never sent"}, "body": {"x"}})
	draft := p.location()
	m.get(draft+"/delete").want(t, "delete confirmation", http.StatusOK, "Delete the draft “Never sent”?", `action="`+draft+`/delete"`,
		"Yes, delete the draft", `href="`+draft+`"`)
	m.post(draft+"/delete", nil).wantRedirect(t, "delete", "/staff/campaigns?deleted=1")
	p = m.get("/staff/campaigns?deleted=1")
	p.want(t, "deleted", http.StatusOK, "The draft is deleted.", "Winter news, again")
	p.lacks(t, "deleted", "Never sent")
	m.get(draft).want(t, "deleted draft", http.StatusNotFound)
	m.post(draft+"/delete", nil).want(t, "delete twice", http.StatusNotFound)

	// With no one to send to, the confirmation says so and offers no button.
	r.post("/account/preferences", url.Values{})
	p = m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"To nobody"}, "body": {"x"}})
	p = m.get(p.location() + "/send")
	p.want(t, "empty audience", http.StatusOK, `<dd id="audience">0</dd>`, "Nobody would get it now")
	p.lacks(t, "empty audience", "Send to", `name="version"`)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
