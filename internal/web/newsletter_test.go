package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/jobs"
	"steward/internal/newsletter"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// subscriber returns the newsletter subscriber's status and subject.
func (s *site) subscriber(email string) (status, subject string) {
	s.t.Helper()
	if err := s.app.DB().QueryRowContext(s.t.Context(), `SELECT status, subject_id FROM subscribers WHERE email_hash = $1`,
		s.app.Newsletter().AddressHash(email)).
		Scan(&status, &subject); err != nil {
		s.t.Fatalf("subscriber %s: %v", email, err)
	}
	return status, subject
}

var (
	campaignLink    = regexp.MustCompile(`href="/staff/campaigns/([0-9a-f]+)"`)
	unsubscribeLink = regexp.MustCompile(`/unsubscribe\?t=[a-z2-7]+`)
)

// TestNewsletter subscribes with double opt-in, sends a campaign from the staff pages
// and unsubscribes by the mail's link, on every engine.
func TestNewsletter(t *testing.T) {
	t.Parallel()
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			testNewsletter(t, start(t, dbURL))
		})
	}
}

func testNewsletter(t *testing.T, s *site) {
	const email = "hedy@example.com"
	c := s.client()

	// The form: what is required is marked, nothing is ticked, and every page links to it.
	p := c.get("/newsletter")
	p.want(t, "newsletter form", http.StatusOK, `action="/newsletter"`,
		`First name <span class="need">(optional)</span>`, `Last name <span class="need">(optional)</span>`,
		`Email address <span class="need">(required)</span>`, `Company <span class="need">(optional)</span>`,
		"nothing else is sent until you open it", `href="/privacy/purposes"`)
	if strings.Contains(p.body, "checked") || strings.Contains(p.body, `type="checkbox"`) {
		t.Errorf("the subscription form has a checkbox:\n%s", p.body)
	}
	c.get("/").want(t, "home", http.StatusOK, `<a href="/newsletter">Newsletter</a>`)

	// A bad address is named beside its field; what was typed stays.
	form := url.Values{"first_name": {""}, "last_name": {"Lamarr"}, "email": {"hedy at example"}, "company": {"Frequency Hopping Ltd"}}
	p = c.post("/newsletter", form)
	p.want(t, "bad address", http.StatusBadRequest, `id="f-email-error"`, `value="Lamarr"`, `value="hedy at example"`,
		`value="Frequency Hopping Ltd"`)
	form.Set("email", email)
	// The address alone is enough (issue 12, finding 9).
	c.post("/newsletter", url.Values{"email": {"only.me@example.com"}}).wantRedirect(t, "address alone", "/newsletter/sent")
	s.link("only.me@example.com", "/newsletter/confirm")

	// Subscribe: a mail goes out, and nothing is subscribed until its link is used.
	form.Set("first_name", "Hedy")
	c.post("/newsletter", form).wantRedirect(t, "subscribe", "/newsletter/sent")
	c.get("/newsletter/sent").want(t, "sent", http.StatusOK, "Check your mailbox", "Nothing will be sent until you confirm.")
	link := s.link(email, "/newsletter/confirm")
	c.get(link).want(t, "confirm page", http.StatusOK, "Confirm my subscription", `name="token"`, `action="/newsletter/confirm"`)
	status, subject := s.subscriber(email)
	if status != "pending" {
		t.Fatalf("after opening the link the subscriber is %s, want pending", status)
	}
	if ch, _ := s.choices(subject); ch["newsletter"].Decision != "" {
		t.Fatalf("opening the link recorded %+v", ch["newsletter"])
	}
	c.get("/newsletter/confirm").want(t, "confirm without a token", http.StatusBadRequest, "This link is incomplete")

	token := strings.TrimPrefix(link, "/newsletter/confirm?token=")
	p = c.post("/newsletter/confirm", url.Values{"token": {token}})
	p.wantRedirect(t, "confirm", "/newsletter/confirmed")
	c.get(p.location()).want(t, "confirmed", http.StatusOK, "You are subscribed")
	if status, _ := s.subscriber(email); status != "confirmed" {
		t.Fatalf("after confirming the subscriber is %s, want confirmed", status)
	}
	ch, _ := s.choices(subject)
	if n := ch["newsletter"]; n.Decision != consent.Granted || n.Source != consent.SourceEmailLink || !n.Verdict.Allowed {
		t.Errorf("newsletter after confirming = %+v, want granted through the email link", n)
	}
	// The same answer for an address already subscribed: the form reveals nothing.
	c.post("/newsletter", form).wantRedirect(t, "subscribe again", "/newsletter/sent")
	p = c.post("/newsletter/confirm", url.Values{"token": {token}})
	p.want(t, "used link", http.StatusBadRequest, "This link is invalid, used or expired.", `href="/newsletter"`)
	if strings.Contains(p.body, "Confirm my subscription</button>") {
		t.Error("a dead link still shows the button")
	}

	// Staff pages: a member without the role is refused, and sees no link to them.
	m := s.client()
	id := s.signUp(t, m, "joan@example.com", "Joan Clarke", "bombe at bletchley")
	for _, r := range []struct{ method, path string }{
		{"GET", "/staff/campaigns"}, {"GET", "/staff/campaigns/new"}, {"POST", "/staff/campaigns/new"},
		{"GET", "/staff/campaigns/0123456789abcdef"}, {"POST", "/staff/campaigns/0123456789abcdef/send"},
	} {
		var form url.Values
		if r.method == "POST" {
			form = url.Values{"purpose": {"newsletter"}, "subject": {"x"}, "body": {"x"}}
		}
		m.do(r.method, r.path, form).want(t, "plain member "+r.path, http.StatusForbidden, "Staff only")
		s.client().do(r.method, r.path, form).wantRedirect(t, "anonymous "+r.path, "/login")
	}
	if p := m.get("/account"); strings.Contains(p.body, `href="/staff"`) {
		t.Error("a member without a staff role sees the Staff link")
	}
	if err := apptest.GrantStaff(t.Context(), s.app, id, "marketing"); err != nil {
		t.Fatal(err)
	}
	m.get("/account").want(t, "account as staff", http.StatusOK, `<a href="/staff">Staff</a>`)
	m.get("/staff/campaigns").want(t, "no campaigns", http.StatusOK, "No campaigns yet.", `href="/staff/campaigns/new"`)

	// The form offers the marketing purposes that share nothing, none chosen.
	p = m.get("/staff/campaigns/new")
	p.want(t, "campaign form", http.StatusOK, `<option value="">Choose a purpose</option>`, `<option value="newsletter">`,
		`name="subject"`, `<textarea id="f-body" name="body" rows="16"`)
	for _, pu := range s.app.Consent().Register().Purposes {
		offered := strings.Contains(p.body, `<option value="`+pu.Key+`"`)
		if want := pu.Marketing && !pu.Sharing; offered != want {
			t.Errorf("purpose %s offered = %v, want %v", pu.Key, offered, want)
		}
	}
	m.post("/staff/campaigns/new", url.Values{"purpose": {""}, "subject": {"Hello"}, "body": {"Hi"}}).
		want(t, "no purpose", http.StatusBadRequest, `id="f-purpose-error"`, "Purpose is required.", `value="Hello"`)
	m.post("/staff/campaigns/new", url.Values{"purpose": {"partner_sharing"}, "subject": {"Hello"}, "body": {"Hi"}}).
		want(t, "sharing purpose", http.StatusBadRequest, `id="f-purpose-error"`, "is not a purpose marketing mail can be sent for")
	m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {""}, "body": {"Hi"}}).
		want(t, "no subject", http.StatusBadRequest, `id="f-subject-error"`, "Subject is required")

	// Create one: the preview shows the mail and whom the ledger allows it to go to.
	const subjectLine = "Spread spectrum news"
	p = m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {subjectLine},
		"body": {"# Frequency hopping\n\nA *secret* communication system. <b>raw</b>"}})
	p.wantRedirect(t, "create", "/staff/campaigns/")
	page := p.location()
	p = m.get(page)
	p.want(t, "campaign", http.StatusOK, subjectLine, "draft", "Will go to 1 recipient the consent ledger allows now.",
		"List-Unsubscribe", "List-Unsubscribe=One-Click", "/unsubscribe/one-click?t=", `<iframe class="preview" sandbox src="`+page+`/preview"`,
		"Frequency hopping\n=================", "A secret communication system. raw", "Send now", `href="`+page+`/send"`)
	if strings.Contains(p.body, "<h1>Frequency hopping") || strings.Contains(p.body, "# Frequency") || strings.Contains(p.body, "&lt;b&gt;") {
		t.Errorf("the page shows the mail's HTML unframed, or the text part keeps Markdown or raw HTML:\n%s", p.body)
	}
	p = m.get(page + "/preview")
	p.want(t, "preview", http.StatusOK, `<h1 style="`, "Frequency hopping</h1>", "<em>secret</em>", "max-width:600px")
	if strings.Contains(p.body, "<b>") {
		t.Errorf("the preview keeps raw HTML:\n%s", p.body)
	}
	m.get("/staff/campaigns").want(t, "list", http.StatusOK, subjectLine, "Newsletter", "draft")

	// Send it: the subscriber gets it, with a working opt-out link.
	m.get(page+"/send").want(t, "confirm send", http.StatusOK, "Send to 1 recipient</button>", `action="`+page+`/send"`)
	m.post(page+"/send", url.Values{}).wantRedirect(t, "send", page+"?started=1")
	m.get(page+"?started=1").want(t, "sending", http.StatusOK, "The campaign is being sent.")
	m.post(page+"/send", url.Values{}).want(t, "send again", http.StatusConflict, "This campaign was already sent.")
	unsub := s.find(email, unsubscribeLink)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(m.get("/staff/campaigns").body, `<span class="badge ok">sent</span>`) {
		if time.Now().After(deadline) {
			t.Fatal("the campaign did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p = m.get(page)
	p.want(t, "sent campaign", http.StatusOK, "1: 1 sent, 0 skipped", "Finished")
	if strings.Contains(p.body, "Send now") {
		t.Error("a sent campaign offers Send now")
	}

	// Opening the link changes nothing; the button unsubscribes, with no login.
	u := s.client()
	p = u.get(unsub)
	p.want(t, "unsubscribe page", http.StatusOK, `action="/unsubscribe"`, `name="t"`, `value="`+strings.TrimPrefix(unsub, "/unsubscribe?t=")+`"`,
		"Unsubscribe</button>")
	if ch, _ := s.choices(subject); !ch["newsletter"].Verdict.Allowed {
		t.Fatalf("opening the opt-out link withdrew consent: %+v", ch["newsletter"])
	}
	tok := strings.TrimPrefix(unsub, "/unsubscribe?t=")
	p = u.post("/unsubscribe", url.Values{"t": {tok}})
	p.want(t, "unsubscribe", http.StatusOK, "You are unsubscribed from Newsletter. You will not get this mail again.",
		`href="/account/preferences"`)
	ch, _ = s.choices(subject)
	if n := ch["newsletter"]; n.Decision != consent.Withdrawn || n.Source != consent.SourceEmailLink || n.Verdict.Allowed {
		t.Errorf("newsletter after unsubscribing = %+v, want withdrawn through the email link", n)
	}
	if !strings.Contains(p.body, `href="/newsletter"`) || strings.Contains(p.body, "already") {
		t.Errorf("the unsubscribed page offers no way to subscribe again, or says already:\n%s", p.body)
	}
	// A second click does no harm; the used link says it is done, and asks nothing.
	u.post("/unsubscribe", url.Values{"t": {tok}}).want(t, "unsubscribe again", http.StatusOK, "You are already unsubscribed")
	p = u.get(unsub)
	p.want(t, "used unsubscribe link", http.StatusOK, "You are already unsubscribed", "Newsletter", `href="/newsletter"`)
	if strings.Contains(p.main(), `<button`) {
		t.Error("a used opt-out link asks again")
	}

	// A forged or missing token is refused with a page that says so.
	forged := []byte(tok)
	forged[5] = map[bool]byte{true: 'b', false: 'a'}[forged[5] == 'a']
	p = u.post("/unsubscribe", url.Values{"t": {string(forged)}})
	p.want(t, "forged", http.StatusBadRequest, "This opt-out link is not valid or has expired.")
	if strings.Contains(p.body, `name="t"`) {
		t.Error("a forged link still shows the button")
	}
	u.get("/unsubscribe").want(t, "no token", http.StatusBadRequest, "This link is incomplete")
	u.post("/unsubscribe", url.Values{}).want(t, "empty token", http.StatusBadRequest, "This opt-out link is not valid or has expired.")

	// Subjects are escaped on the list.
	m.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"<script>x</script>"}, "body": {"Hi"}}).
		wantRedirect(t, "create hostile", "/staff/campaigns/")
	p = m.get("/staff/campaigns")
	p.want(t, "list", http.StatusOK, "&lt;script&gt;x&lt;/script&gt;")
	if strings.Contains(p.body, "<script") {
		t.Errorf("the subject is not escaped:\n%s", p.body)
	}
	if n := len(campaignLink.FindAllString(p.body, -1)); n != 2 {
		t.Errorf("the list links %d campaigns, want 2", n)
	}
}

// noJobs takes the place of the job queue: the campaign stays as the test leaves it.
type noJobs struct{}

func (noJobs) Enqueue(context.Context, *store.Tx, jobs.Args) error { return nil }

// The campaign's page counts the mails that may not have been delivered: those a
// crash left being handed to the mail server, settled as unconfirmed.
func TestCampaignPageUnconfirmed(t *testing.T) {
	s := start(t, "")
	ctx := t.Context()
	ns := s.app.Newsletter()
	csv := "email,first_name,last_name\na@example.org,A,A\nb@example.org,B,B\nc@example.org,C,C\n"
	if rep, err := ns.Import(ctx, strings.NewReader(csv), newsletter.Purpose, "staff-1"); err != nil || rep.Imported != 3 {
		t.Fatalf("import: %+v %v", rep, err)
	}
	cp, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, "Interrupted", "Hello.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.StartSend(ctx, noJobs{}, cp.ID); err != nil {
		t.Fatal(err)
	}
	// As the run after a crash over SMTP leaves them: two unconfirmed, one sent.
	if _, err := s.app.DB().ExecContext(ctx, `UPDATE campaign_deliveries SET state = 'unconfirmed' WHERE campaign_id = $1`, cp.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.DB().ExecContext(ctx, `UPDATE campaign_deliveries SET state = 'sent' WHERE token_id = (SELECT min(token_id) FROM campaign_deliveries WHERE campaign_id = $1)`, cp.ID); err != nil {
		t.Fatal(err)
	}
	m := s.client()
	id := s.signUp(t, m, "joan@example.com", "Joan Clarke", "bombe at bletchley")
	if err := apptest.GrantStaff(ctx, s.app, id, "marketing"); err != nil {
		t.Fatal(err)
	}
	m.get("/staff/campaigns/"+cp.ID).want(t, "campaign page", http.StatusOK,
		"3: 1 sent, 0 skipped (their consent ended before their turn), 2 may not have been delivered (the server stopped while sending)")
}
