package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"steward/internal/app/apptest"
	"steward/internal/breaches"
	"steward/internal/consent"
	"steward/internal/disclosures"
	"steward/internal/requests"
	"steward/internal/rights"
)

// axeFile is where .ci/run installs axe-core (npm install --prefix .tools/axe axe-core@4.10.3),
// from the module's root; $STEWARD_TEST_AXE names another file.
const axeFile = ".tools/axe/node_modules/axe-core/axe.min.js"

// axeSource returns axe-core's script, or skips (fails with STEWARD_TEST_REQUIRE_SERVICES=1)
// when it is not installed.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("STEWARD_TEST_AXE")
	if path == "" {
		path = filepath.Join("..", "..", axeFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("STEWARD_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("no axe-core at %s, but STEWARD_TEST_REQUIRE_SERVICES=1 (install it: npm install --prefix .tools/axe axe-core@4.10.3)", path)
		}
		t.Skipf("no axe-core at %s; install it with npm install --prefix .tools/axe axe-core@4.10.3, or set STEWARD_TEST_AXE", path)
	}
	return string(b)
}

// browserContext starts a headless chromium for the test and returns a context whose
// children each get a browser context (cookies) of their own.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	exec := chromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		browserFlags(exec, t.TempDir(), chromedp.Flag("hide-scrollbars", true))...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// widths are the viewports every page is checked at: a phone and a desktop, the
// desktop in the dark colour scheme too.
var widths = []struct {
	scheme        string
	width, height int64
}{{"light", 390, 844}, {"light", 1280, 800}, {"dark", 1280, 800}}

// colorScheme emulates the user's preferred colour scheme, "light" or "dark".
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return chromedp.Void{}, err
	}
}

// documentContent replaces the document of the tab's main frame with html.
func documentContent(html string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		tree, err := cdp.Call(ctx, t, cdppage.GetFrameTree, cdp.Empty{})
		if err != nil {
			return chromedp.Void{}, err
		}
		_, err = cdp.Call(ctx, t, cdppage.SetDocumentContent, cdppage.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: html})
		return chromedp.Void{}, err
	}
}

// axeTags are the rule sets of WCAG 2.2 level AA.
const axeTags = `["wcag2a","wcag2aa","wcag21a","wcag21aa","wcag22aa"]`

// violation is what axe-core reports of one rule.
type violation struct {
	ID    string `json:"id"`
	Help  string `json:"help"`
	Nodes []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// checkPage checks the page the tab shows at every width: it fits without scrolling
// sideways, and axe-core finds no WCAG 2.2 A/AA violation. With STEWARD_SCREENSHOTS=DIR
// it writes DIR/NAME-WIDTH.png.
func checkPage(t *testing.T, ctx context.Context, axe, name string) {
	t.Helper()
	shots := os.Getenv("STEWARD_SCREENSHOTS")
	for _, w := range widths {
		at := fmt.Sprintf("%d px", w.width)
		if w.scheme != "light" {
			at += ", " + w.scheme
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height), colorScheme(w.scheme)); err != nil {
			t.Fatalf("%s: viewport: %v", name, err)
		}
		overflow, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](
			`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`))
		if err != nil {
			t.Fatalf("%s at %s: %v", name, at, err)
		}
		if overflow[0] > overflow[1] {
			wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('body *')).
				filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5).
				slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') +
				' right=' + Math.round(e.getBoundingClientRect().right))`))
			t.Errorf("%s at %s scrolls sideways: %d px wide in %d px; too wide: %v", name, at, overflow[0], overflow[1], wide)
		}
		if shots != "" {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("%s: screenshot: %v", name, err)
			}
			if err := os.MkdirAll(shots, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(shots, fmt.Sprintf("%s-%d-%s.png", name, w.width, w.scheme)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe === "object"`))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !loaded {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[*runtime.RemoteObject](axe)); err != nil {
				t.Fatalf("%s: load axe-core: %v", name, err)
			}
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: `+axeTags+`},
			resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: axe.run: %v", name, err)
		}
		var vs []violation
		if err := json.Unmarshal([]byte(raw), &vs); err != nil {
			t.Fatalf("%s: axe's answer: %v", name, err)
		}
		for _, v := range vs {
			for _, n := range v.Nodes {
				t.Errorf("%s at %s: axe %s (%s): %v: %s", name, at, v.ID, v.Help, n.Target, n.Summary)
			}
		}
	}
}

// TestPagesInBrowser opens every page, as a visitor, a member, a guardian, a subscriber
// and a staff member would, on a phone and a desktop: none scrolls sideways and
// axe-core finds no WCAG 2.2 AA violation on any. STEWARD_SCREENSHOTS=DIR keeps a
// screenshot of each.
func TestPagesInBrowser(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	root := browserContext(t)
	s := start(t, "", append([]string{"--dev"}, statsFlags...)...)
	seedStatistics(t, s)

	// The state the pages show, made over HTTP.
	const (
		member, memberPW = "ada@example.com", "analytical engine 1843"
		staff, staffPW   = "grace@example.com", "compiler cobol 1959"
		child, childPW   = "kid@example.com", "treehouse secret 42"
	)
	c := s.client()
	memberID := s.signUp(t, c, member, "Ada Lovelace", memberPW)
	c.post("/account/preferences", url.Values{"consent_newsletter": {"on"}})
	c.upload("annual report.pdf", []byte("the engine's accounts"))
	fileLink := downloadLink.FindStringSubmatch(c.get("/account/files").body)
	if fileLink == nil {
		t.Fatal("the member's file has no download link")
	}
	decisions := s.history(memberID)
	if len(decisions) == 0 {
		t.Fatal("the member has no decision to show a receipt of")
	}
	receipt := fmt.Sprintf("/account/preferences/receipts/%d", decisions[0].ID)
	c.post("/account/requests", url.Values{"right": {"rectification"}, "details": {"My name at birth was Byron."}}).
		wantRedirect(t, "a request", "/account/requests?notice=sent")
	reqs, err := s.app.Requests().List(t.Context(), memberID)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("the member's requests = %v, %v", reqs, err)
	}

	st := s.client()
	staffID := s.signUp(t, st, staff, "Grace Hopper", staffPW)
	for _, role := range []string{"marketing", "dpo", "admin"} {
		if err := apptest.GrantStaff(t.Context(), s.app, staffID, role); err != nil {
			t.Fatal(err)
		}
	}
	// The DPO's role too, for the consent conflicts: 60 of them (two pages), made by
	// decisions that alternate between two sources.
	if err := apptest.GrantStaff(t.Context(), s.app, staffID, "dpo"); err != nil {
		t.Fatal(err)
	}
	for i := range 61 {
		d, src := consent.Granted, consent.SourceForm
		if i%2 == 1 {
			d, src = consent.Withdrawn, consent.SourceAPI
		}
		if _, err := s.app.Consent().Record(t.Context(), memberID, "partner_sharing", d, src, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := st.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"Autumn news"},
		"body": {"Dear reader,\n\nThe engine is running.\n\nSee you soon."}})
	campaign := p.location()
	if !strings.HasPrefix(campaign, "/staff/campaigns/") {
		t.Fatalf("creating a campaign answered %d, location %q", p.status, campaign)
	}

	// A campaign being sent: its page shows the visits its links brought.
	sent, err := s.app.Newsletter().CreateCampaign(t.Context(), staffID, "newsletter", "Winter news", "Snow is coming.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.Newsletter().StartSend(t.Context(), s.app.Jobs(), sent.ID); err != nil {
		t.Fatal(err)
	}

	gone := s.client()
	s.signUp(t, gone, "gone@example.com", "Charles Babbage", "difference engine 1822")
	p = gone.post("/account/delete", url.Values{"password": {"difference engine 1822"}})
	erasure := p.location()
	if !strings.HasPrefix(erasure, "/erasures/") {
		t.Fatalf("deleting an account answered %d, location %q", p.status, erasure)
	}

	// Legal holds: one on the member (her delete page and privacy center say what it
	// keeps), and one on a member who then deleted the account (the erasure page
	// lists what is kept, why and until when).
	st.post("/staff/holds", url.Values{"subject": {member}, "holders": {"requests", "audit_log"},
		"reason": {"Pending litigation about a 2025 invoice"}, "until": {"2099-12-31"}}).wantRedirect(t, "a hold", "/staff/holds?done=placed")
	// A retention run, so that its page lists one.
	st.post("/staff/retention/run", url.Values{}).wantRedirect(t, "a retention run", "/staff/retention?done=ran")
	held := s.client()
	s.signUp(t, held, "held@example.com", "Herbert Held", "kept for the court 1")
	st.post("/staff/holds", url.Values{"subject": {"held@example.com"}, "holders": {"requests"}, "reason": {"Tax audit"}}).
		wantRedirect(t, "a hold", "/staff/holds?done=placed")
	heldErasure := held.post("/account/delete", url.Values{"password": {"kept for the court 1"}}).location()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, err := s.app.Rights().Request(t.Context(), strings.TrimPrefix(heldErasure, "/erasures/"))
		if err == nil && req.State == rights.StateHolding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the held member's erasure is not holding: %+v, %v", req, err)
		}
	}
	memberHolds, err := s.app.Holds().List(t.Context(), memberID)
	if err != nil || len(memberHolds) != 1 {
		t.Fatalf("the member's holds = %v, %v", memberHolds, err)
	}

	// The privacy policy: a material version in effect that asks the sharing with
	// partners again (the member's pages show its notice), and a draft.
	first, err := s.app.Policy().Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.post("/staff/policy/new", url.Values{"label": {"2026.1"}, "kind": {"policy"}, "summary": {"The newsletter goes through a new provider."},
		"body": {first.Body + "\nWe now send the newsletter through a new provider.\n"}, "material": {"on"}, "purposes": {"partner_sharing"}}).
		wantRedirect(t, "a policy draft", "/staff/policy/2026.1?saved=1")
	st.post("/staff/policy/2026.1/publish", nil).wantRedirect(t, "publishing", "/staff/policy/2026.1?published=1")
	st.post("/staff/policy/new", url.Values{"label": {"2027.1"}, "kind": {"business_transfer"}, "controller": {"Acme Holdings"},
		"summary": {"Acme Holdings takes over."}, "body": {"# Policy\n\nAcme Holdings is the controller.\n"}, "effective": {"2099-01-01"}}).
		wantRedirect(t, "a transfer draft", "/staff/policy/2027.1?saved=1")

	k := s.client()
	form := registration(child, "Young Coder", childPW)
	form.Set("birthdate", time.Now().AddDate(-12, 0, 0).Format("2006-01-02"))
	form.Set("guardian_email", "parent@example.com")
	k.post("/register", form)
	k.post("/verify", url.Values{"token": {strings.TrimPrefix(s.link(child, "/verify"), "/verify?token=")}})
	guardian := s.link("parent@example.com", "/guardian")

	n := s.client()
	n.post("/register", registration("new@example.com", "Nell Newcomer", "fresh start 2026"))
	verify := s.link("new@example.com", "/verify")

	n.post("/requests/new", url.Values{"name": {"Vera Visitor"}, "email": {"vera@example.com"}, "right": {"access"}}).
		wantRedirect(t, "a request without a login", "/requests/sent")
	requestConfirm := s.link("vera@example.com", "/requests/confirm")
	// Two requests with an identity document: one waiting for the identity check, one
	// answered with a download link.
	visitorRequest := func(email string) string {
		pdf := []byte("%PDF-1.4\nan identity card\n%%EOF\n")
		if err := s.app.Requests().SubmitVisitor(t.Context(), requests.VisitorSubmission{Name: "Wanda Visitor", NotifyEmail: email,
			HeldEmail: member, Right: requests.Access, Document: &requests.Document{Name: "id.pdf", ContentType: "application/pdf",
				Body: bytes.NewReader(pdf)}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.app.Requests().Confirm(t.Context(), strings.TrimPrefix(s.link(email, "/requests/confirm"), "/requests/confirm?token="))
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	checkID := visitorRequest("wanda@example.com")
	answered := visitorRequest("xena@example.com")
	dpoActor := requests.Actor{Kind: requests.ByStaff, ID: staffID}
	if _, err := s.app.Requests().VerifyIdentity(t.Context(), answered, true, "", dpoActor); err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.Requests().Transition(t.Context(), answered, requests.Change{State: requests.Done}, dpoActor); err != nil {
		t.Fatal(err)
	}
	requestDownload := s.link("xena@example.com", "/requests/download")

	n.post("/newsletter", url.Values{"first_name": {"Hedy"}, "last_name": {"Lamarr"}, "email": {"hedy@example.com"}})
	confirm := s.link("hedy@example.com", "/newsletter/confirm")

	type visit struct{ name, path string }
	visitor := []visit{
		{"home", "/"}, {"register", "/register"}, {"register-sent", "/register/sent"},
		{"verify", verify}, {"verify-bad", "/verify?token=bogus"}, {"verify-done", "/verify/done?status=active"},
		{"login", "/login"}, {"forgot", "/password/forgot"}, {"forgot-sent", "/password/forgot/sent"},
		{"reset-bad", "/password/reset?token=bogus"}, {"purposes", "/privacy/purposes"},
		{"public-profile", "/members/" + memberID}, {"erasure", erasure}, {"erasure-holding", heldErasure}, {"not-found", "/no-such-page"},
		{"guardian", guardian}, {"guardian-done", "/guardian/done?decision=agreed"},
		{"guardian-purpose-bad", "/guardian/purpose?token=bogus"}, {"guardian-purpose-done", "/guardian/purpose?done=agreed"},
		{"newsletter", "/newsletter"}, {"newsletter-sent", "/newsletter/sent"}, {"newsletter-confirm", confirm},
		{"newsletter-confirmed", "/newsletter/confirmed"}, {"newsletter-confirmed-guardian", "/newsletter/confirmed?guardian=1"},
		{"unsubscribe-bad", "/unsubscribe?t=bogus"},
		{"styleguide", "/_styleguide"}, {"resend", "/verify/resend"}, {"resend-sent", "/verify/resend/sent"},
		{"receipt-verify", "/receipts/verify"},
		{"unsubscribe-test", "/unsubscribe/test"},
		{"request-new", "/requests/new"}, {"request-sent", "/requests/sent"}, {"request-confirm", requestConfirm},
		{"request-confirmed", "/requests/confirmed"},
		{"request-download", requestDownload}, {"request-download-bad", "/requests/download?token=bogus"},
		{"privacy-processors", "/privacy/processors"}, {"cookies", "/privacy/cookies"},
		{"privacy-processors", "/privacy/processors"},
		{"statistics", "/statistics"}, {"statistics-bad", "/statistics?from=2026-13-01&to=2026-01-01"},
	}
	// The privacy policy's public pages (a tab of their own: each tab has its deadline).
	policyPages := []visit{
		{"policy", "/privacy/policy"}, {"policy-versions", "/privacy/policy/versions"}, {"policy-version", "/privacy/policy/" + first.Label},
		{"policy-diff", "/privacy/policy/diff?from=" + first.Label + "&to=2026.1"},
	}
	members := []visit{
		{"account", "/account"}, {"files", "/account/files"}, {"preferences", "/account/preferences"},
		{"sessions", "/account/sessions"}, {"password", "/account/password"}, {"activity", "/account/activity"},
		{"delete", "/account/delete"}, {"requests", "/account/requests"}, {"access", "/account/access"},
	}
	// Member pages outside the tabs.
	memberOther := []visit{{"children", "/account/children"}, {"account-policy", "/account/policy"}}
	st.post(campaign+"/test", nil).wantRedirect(t, "test mail", campaign+"?tested=1")
	// The erased member's notice to the mail provider, which has no endpoint: a task.
	var task string
	for deadline := time.Now().Add(20 * time.Second); task == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		list, err := s.app.Notices().List(t.Context(), "task", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			task = "/staff/processor-notices/" + list[0].ID
		}
	}
	if task == "" {
		t.Fatal("the erasure left no processor task")
	}
	// The registers: a disclosure the member was told of (her privacy center lists
	// it), one not told yet (its page offers to lift or keep the flag), and a breach
	// with the member selected.
	pdf := func() *disclosures.Document {
		return &disclosures.Document{Name: "order.pdf", ContentType: "application/pdf", Body: bytes.NewReader([]byte("%PDF-1.4\nan order\n%%EOF\n"))}
	}
	dpoBy := disclosures.Actor{ID: staffID}
	if _, err := s.app.Disclosures().Record(t.Context(), dpoBy, disclosures.Record{Authority: "District Court of Example", LegalBasis: "Order 4711",
		Categories: []string{"contact details"}, What: "Her email address", DisclosedAt: time.Now().Add(-time.Hour), Members: []string{member},
		Document: pdf()}); err != nil {
		t.Fatal(err)
	}
	withheld, err := s.app.Disclosures().Record(t.Context(), dpoBy, disclosures.Record{Authority: "Federal Police", LegalBasis: "Warrant 12",
		Categories: []string{"login times"}, What: "Login times of March", DisclosedAt: time.Now().Add(-time.Hour), Members: []string{member},
		Document: pdf(), Withhold: true, WithholdReason: "The inquiry is secret", ReviewAt: time.Now().AddDate(0, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	breach, err := s.app.Breaches().Record(t.Context(), breaches.Actor{ID: staffID}, breaches.Report{Description: "A laptop was stolen",
		DiscoveredAt: time.Now().Add(-2 * time.Hour), Categories: []string{"contact details"}, Consequences: "Phishing", Measures: "Disk encrypted"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.app.Breaches().Select(t.Context(), breaches.Actor{ID: staffID}, breach.ID, breaches.Selection{Emails: []string{member}}, false); err != nil {
		t.Fatal(err)
	}
	staffs := []visit{
		{"staff-disclosures", "/staff/disclosures"}, {"staff-disclosure", "/staff/disclosures/" + withheld.ID},
		{"staff-breaches", "/staff/breaches"}, {"staff-breach", "/staff/breaches/" + breach.ID},
		{"processor-notices", "/staff/processor-notices"}, {"processor-notice", task}, {"processor-notice-done", task + "/done"},
		{"staff-requests", "/staff/requests"}, {"staff-request", "/staff/requests/" + reqs[0].ID},
		{"staff-request-visitor", "/staff/requests/" + checkID}, {"staff-request-answered", "/staff/requests/" + answered},
		{"campaigns", "/staff/campaigns"}, {"campaign-new", "/staff/campaigns/new"}, {"campaign", campaign},
		{"campaign-tested", campaign + "?tested=1"}, {"campaign-edit", campaign + "/edit"},
		{"campaign-delete", campaign + "/delete"}, {"campaign-send", campaign + "/send"},
		{"campaigns-deleted", "/staff/campaigns?deleted=1"},
		{"campaign-sent", "/staff/campaigns/" + sent.ID},
		{"staff-analytics-campaigns", "/staff/analytics/campaigns"}, {"staff-analytics-campaigns-invalid", "/staff/analytics/campaigns?from=someday"},
		{"staff-holds", "/staff/holds"}, {"staff-hold-release", "/staff/holds/" + memberHolds[0].ID + "/release"},
		{"staff-retention", "/staff/retention"}, {"staff-analytics", "/staff/analytics"},
		{"staff-policies", "/staff/policy"}, {"staff-policy-new", "/staff/policy/new"}, {"staff-policy-draft", "/staff/policy/2027.1"},
		{"staff-policy-published", "/staff/policy/2026.1?published=1"},
		{"staff-processors", "/staff/processors"}, {"staff-processor", "/staff/processors/email_provider"}, {"staff-ropa", "/staff/ropa"},
		{"staff-members", "/staff/members"}, {"staff-member", "/staff/members/" + memberID}, {"staff-grants", "/staff/grants"},
		{"staff-people", "/staff/people"}, {"staff-audit", "/staff/audit"}, {"second-factor-setup", "/account/second-factor"},
	}
	// The DPO read the member: her staff access page lists the read.
	st.get("/staff/members/"+memberID).want(t, "the member-view", http.StatusOK, "Ada Lovelace")

	// tab is a fresh browser context (no cookies) with a deadline.
	tab := func() context.Context {
		ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
		t.Cleanup(cancelT)
		return ctx
	}
	open := func(ctx context.Context, v visit) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+v.path), chromedp.WaitReady(chromedp.CSS("footer"))); err != nil {
			t.Fatalf("open %s: %v", v.path, err)
		}
		checkPage(t, ctx, axe, v.name)
	}
	login := func(ctx context.Context, email, password string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(s.url+"/login"),
			chromedp.WaitVisible(chromedp.ID("page-login")),
			chromedp.SendKeys(chromedp.ID("f-email"), email),
			chromedp.SendKeys(chromedp.ID("f-password"), password),
			chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("page-account")),
		); err != nil {
			t.Fatalf("log in as %s: %v", email, err)
		}
	}

	ctx := tab()
	for _, v := range policyPages {
		open(ctx, v)
	}
	ctx = tab()
	for _, v := range visitor {
		open(ctx, v)
	}
	// A failed submit: the error summary has the focus, and the page passes too.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/login"),
		chromedp.WaitVisible(chromedp.ID("page-login")),
		chromedp.SendKeys(chromedp.ID("f-email"), member),
		chromedp.SendKeys(chromedp.ID("f-password"), "not the password"),
		chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	); err != nil {
		t.Fatalf("failed login: %v", err)
	}
	checkPage(t, ctx, axe, "login-failed")
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil || focused != "form-error" {
		t.Errorf("after a failed login the focus is on %q (%v), want the error summary #form-error", focused, err)
	}
	// A failed registration: the summary has the focus and links to each field in
	// error; following the first link puts the cursor in that field.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/register"),
		chromedp.WaitVisible(chromedp.ID("page-register")),
		chromedp.SetValue(chromedp.ID("f-email"), "late@example.com"),
		chromedp.SetValue(chromedp.ID("f-password"), "a long enough passphrase"),
		chromedp.SetValue(chromedp.ID("f-name"), "Late Comer"),
		chromedp.SetValue(chromedp.ID("f-birthdate"), "1990-05-17"),
		chromedp.SetValue(chromedp.ID("f-country"), "DE"),
		// A guardian for an adult: refused by the server, not the browser.
		chromedp.SetValue(chromedp.ID("f-guardian_email"), "parent@example.org"),
		chromedp.Click(chromedp.CSS(`#page-register button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	); err != nil {
		t.Fatalf("failed registration: %v", err)
	}
	checkPage(t, ctx, axe, "register-failed")
	focused, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil || focused != "form-error" {
		t.Errorf("after a failed registration the focus is on %q (%v), want the error summary #form-error", focused, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#form-error .error-links a`))); err != nil {
		t.Fatalf("follow the summary's first link: %v", err)
	}
	focused, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil || focused != "f-password" {
		t.Errorf("the summary's first link leads to %q (%v), want the password to type again, f-password", focused, err)
	}
	// The guardian's Decline asks first, on a page of its own.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+guardian),
		chromedp.WaitVisible(chromedp.CSS(`button[value="decline"]`)),
		chromedp.Click(chromedp.CSS(`button[value="decline"]`)),
		chromedp.WaitReady(chromedp.CSS(`input[name="confirm"]`)),
	); err != nil {
		t.Fatalf("guardian's decline: %v", err)
	}
	checkPage(t, ctx, axe, "guardian-decline")
	// A receipt checked by anyone: pasted, it is valid.
	receiptFile := c.get(receipt + "/download").body
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/receipts/verify"),
		chromedp.WaitVisible(chromedp.ID("f-receipt")),
		chromedp.SetValue(chromedp.ID("f-receipt"), receiptFile),
		chromedp.Click(chromedp.CSS(`#page-receipt-verify button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("verdict")),
	); err != nil {
		t.Fatalf("check a receipt: %v", err)
	}
	checkPage(t, ctx, axe, "receipt-verify-valid")
	if v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("verdict"))); err != nil || !strings.HasPrefix(strings.TrimSpace(v), "Valid.") {
		t.Errorf("the check of a genuine receipt says %q (%v)", v, err)
	}

	// The guardian agrees, so that the child can log in.
	k.post("/guardian", url.Values{"token": {strings.TrimPrefix(guardian, "/guardian?token=")}, "decision": {"agree"}}).
		wantRedirect(t, "guardian agrees", "/guardian/done?decision=agreed")

	ctx = tab()
	login(ctx, member, memberPW)
	for _, v := range members {
		open(ctx, v)
		current, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('[aria-current="page"]')).map(a => a.getAttribute('href'))`))
		if err != nil {
			t.Fatal(err)
		}
		if len(current) != 1 || current[0] != v.path {
			t.Errorf("%s: the links marked as the current page are %q, want just %s", v.name, current, v.path)
		}
	}
	for _, v := range memberOther {
		open(ctx, v)
	}
	// One request, under the tab of them all.
	open(ctx, visit{"request", "/account/requests/" + reqs[0].ID})
	// On a phone each choice of the preferences is a switch whose target is at least 44 px high.
	open(ctx, visit{"preferences", "/account/preferences"})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	small, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#page-preferences input[type="checkbox"]')).
		filter(b => !b.closest('label') || b.closest('label').getBoundingClientRect().height < 44).map(b => b.name)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(small) > 0 {
		t.Errorf("on a phone these preferences have no 44 px target: %q", small)
	}

	// Each box of the profile form names its field: no two share an accessible name.
	open(ctx, visit{"account", "/account"})
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#page-account input[type="checkbox"]')).
		map(b => (b.getAttribute('aria-label') || Array.from(b.labels).map(l => l.textContent).join(' ')).replace(/\s+/g, ' ').trim())`))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || !publicBox.MatchString(n) {
			t.Errorf("a public-profile box is named %q; want each named after its field (all: %q)", n, names)
		}
		seen[n] = true
	}
	if len(names) == 0 {
		t.Error("the account page has no public-profile boxes")
	}
	// Pages below the tabs: a file's delete confirmation, a receipt.
	open(ctx, visit{"file-delete", "/account/files/" + fileLink[1] + "/delete"})
	open(ctx, visit{"receipt", receipt})

	ctx = tab()
	login(ctx, child, childPW)
	open(ctx, visit{"account-child", "/account"})

	// Staff give their second factor after the password.
	ctx = tab()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/login"),
		chromedp.WaitVisible(chromedp.ID("page-login")),
		chromedp.SendKeys(chromedp.ID("f-email"), staff),
		chromedp.SendKeys(chromedp.ID("f-password"), staffPW),
		chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("page-second-factor")),
	); err != nil {
		t.Fatalf("log in as %s: %v", staff, err)
	}
	checkPage(t, ctx, axe, "second-factor")
	// The code is taken after the page's checks: on a loaded machine they outlast the
	// code's half minute.
	code, err := apptest.NextCode(t.Context(), s.app, staffID)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-totp"), code),
		chromedp.Click(chromedp.CSS(`#page-second-factor button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body.staff`)),
	); err != nil {
		t.Fatalf("second factor of %s: %v", staff, err)
	}
	for _, v := range staffs {
		open(ctx, v)
	}
	// Sending asks first, on a page of its own, with the audience's size now.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+campaign+"/send"), chromedp.WaitReady(chromedp.CSS("footer"))); err != nil {
		t.Fatalf("open the send confirmation: %v", err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("audience"))); err != nil || strings.TrimSpace(n) != "1" {
		t.Errorf("the send confirmation names an audience of %q (%v), want 1", n, err)
	}
	// A staff list with its filter and pagination, on its first and last page.
	open(ctx, visit{"conflicts", "/staff/consent-conflicts"})
	open(ctx, visit{"conflicts-page-2", "/staff/consent-conflicts?page=2&purpose=partner_sharing"})
	// The HTML preview is the mail in its layout: it fits a phone and passes as well.
	// Its CSP sandbox runs no script, axe-core's included, so the same HTML is checked
	// in a blank page.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+campaign+"/preview"), chromedp.WaitReady(chromedp.CSS("body table"))); err != nil {
		t.Fatalf("open the preview: %v", err)
	}
	preview := st.get(campaign + "/preview")
	preview.want(t, "preview", http.StatusOK, "max-width:600px")
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"), documentContent(preview.body), chromedp.WaitReady(chromedp.CSS("body table"))); err != nil {
		t.Fatalf("show the preview's HTML: %v", err)
	}
	checkPage(t, ctx, axe, "campaign-preview")
}

// publicBox matches the accessible names of the account page's public-profile boxes.
var publicBox = regexp.MustCompile(`^Show (.+) on my public profile$`)
