package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
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
	s := start(t, "", "--dev")

	// The state the pages show, made over HTTP.
	const (
		member, memberPW = "ada@example.com", "analytical engine 1843"
		staff, staffPW   = "grace@example.com", "compiler cobol 1959"
		child, childPW   = "kid@example.com", "treehouse secret 42"
	)
	c := s.client()
	memberID := s.signUp(t, c, member, "Ada Lovelace", memberPW)
	c.post("/account/preferences", url.Values{"consent_newsletter": {"on"}})
	c.post("/account/requests", url.Values{"right": {"rectification"}, "details": {"My name at birth was Byron."}}).
		wantRedirect(t, "a request", "/account/requests?notice=sent")
	reqs, err := s.app.Requests().List(t.Context(), memberID)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("the member's requests = %v, %v", reqs, err)
	}

	st := s.client()
	staffID := s.signUp(t, st, staff, "Grace Hopper", staffPW)
	for _, role := range []string{"marketing", "dpo"} {
		if err := s.app.Staff().Grant(t.Context(), staffID, role); err != nil {
			t.Fatal(err)
		}
	}
	p := st.post("/staff/campaigns/new", url.Values{"purpose": {"newsletter"}, "subject": {"Autumn news"},
		"body": {"Dear reader,\n\nThe engine is running.\n\nSee you soon."}})
	campaign := p.location()
	if !strings.HasPrefix(campaign, "/staff/campaigns/") {
		t.Fatalf("creating a campaign answered %d, location %q", p.status, campaign)
	}

	gone := s.client()
	s.signUp(t, gone, "gone@example.com", "Charles Babbage", "difference engine 1822")
	p = gone.post("/account/delete", url.Values{"password": {"difference engine 1822"}})
	erasure := p.location()
	if !strings.HasPrefix(erasure, "/erasures/") {
		t.Fatalf("deleting an account answered %d, location %q", p.status, erasure)
	}

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

	n.post("/newsletter", url.Values{"first_name": {"Hedy"}, "last_name": {"Lamarr"}, "email": {"hedy@example.com"}})
	confirm := s.link("hedy@example.com", "/newsletter/confirm")

	type visit struct{ name, path string }
	visitor := []visit{
		{"home", "/"}, {"register", "/register"}, {"register-sent", "/register/sent"},
		{"verify", verify}, {"verify-bad", "/verify?token=bogus"}, {"verify-done", "/verify/done?status=active"},
		{"login", "/login"}, {"forgot", "/password/forgot"}, {"forgot-sent", "/password/forgot/sent"},
		{"reset-bad", "/password/reset?token=bogus"}, {"purposes", "/privacy/purposes"},
		{"public-profile", "/members/" + memberID}, {"erasure", erasure}, {"not-found", "/no-such-page"},
		{"guardian", guardian}, {"guardian-done", "/guardian/done?decision=agreed"},
		{"newsletter", "/newsletter"}, {"newsletter-sent", "/newsletter/sent"}, {"newsletter-confirm", confirm},
		{"newsletter-confirmed", "/newsletter/confirmed"}, {"unsubscribe-bad", "/unsubscribe?t=bogus"},
		{"request-new", "/requests/new"}, {"request-sent", "/requests/sent"}, {"request-confirm", requestConfirm},
		{"request-confirmed", "/requests/confirmed"},
		{"styleguide", "/_styleguide"},
	}
	members := []visit{
		{"account", "/account"}, {"files", "/account/files"}, {"preferences", "/account/preferences"},
		{"sessions", "/account/sessions"}, {"password", "/account/password"}, {"activity", "/account/activity"},
		{"delete", "/account/delete"}, {"requests", "/account/requests"},
	}
	staffs := []visit{
		{"staff-requests", "/staff/requests"}, {"staff-request", "/staff/requests/" + reqs[0].ID},
		{"campaigns", "/staff/campaigns"}, {"campaign-new", "/staff/campaigns/new"}, {"campaign", campaign}, // last: the send dialog
	}

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

	ctx = tab()
	login(ctx, child, childPW)
	open(ctx, visit{"account-child", "/account"})

	ctx = tab()
	login(ctx, staff, staffPW)
	for _, v := range staffs {
		open(ctx, v)
	}
	// Sending asks first, with the audience's size, in a dialog that needs no script.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#send > summary`)), chromedp.WaitVisible(chromedp.ID("send-question"))); err != nil {
		t.Fatalf("open the send dialog: %v", err)
	}
	checkPage(t, ctx, axe, "campaign-send")
	if q, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("send-question"))); err != nil || !strings.Contains(q, "to 1 recipient now?") {
		t.Errorf("the send dialog asks %q (%v), want the audience of 1 recipient named", q, err)
	}
}

// publicBox matches the accessible names of the account page's public-profile boxes.
var publicBox = regexp.MustCompile(`^Show (.+) on my public profile$`)
