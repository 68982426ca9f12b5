package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"steward/internal/server"
	"steward/internal/store/storetest"
)

// cookieJar is what the browser context holds for the given sites, as name=value.
func cookieJar(urls ...string) chromedp.Action[[]string] {
	return func(ctx context.Context, t *chromedp.Target) ([]string, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: urls})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range res.Cookies {
			out = append(out, c.Name+"="+c.Value)
		}
		slices.Sort(out)
		return out, nil
	}
}

// onlyNecessary fails unless every cookie of jar is strictly necessary in the register.
func onlyNecessary(t *testing.T, when string, jar []string) {
	t.Helper()
	for _, c := range jar {
		name, _, _ := strings.Cut(c, "=")
		e, ok := server.CookieOf(name)
		if !ok || e.Category != server.Necessary {
			t.Errorf("%s: the browser holds %s, not a strictly necessary cookie of the register", when, c)
		}
	}
}

// The server-rendered banner in a real browser, without script: pages opened fresh
// leave only strictly necessary cookies (none before a login); "Accept all" and "Reject
// all" look the same; "Reject all" leaves only the choice cookie, and the page the
// visitor was on; "Accept all" records all three; a member's choice on the cookie page
// goes to the ledger; Sec-GPC is said and honoured.
func TestCookieBannerInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	s := start(t, "")
	c := s.client()
	memberID := s.signUp(t, c, "crumb@example.com", "Cookie Crumb", "a long secret phrase 12")
	tab := func() context.Context {
		ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
		t.Cleanup(cancelT)
		return ctx
	}
	run := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	jar := func(ctx context.Context) []string {
		t.Helper()
		j, err := chromedp.Run(ctx, cookieJar(s.url))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}

	// A fresh visitor: pages, the banner on each, no cookie.
	ctx := tab()
	for _, p := range []string{"/", "/register", "/login", "/privacy/purposes", "/newsletter"} {
		run(ctx, p, chromedp.Navigate(s.url+p), chromedp.WaitVisible(chromedp.ID("cookie-banner")))
	}
	if j := jar(ctx); len(j) != 0 {
		t.Errorf("before a choice the browser holds %v", j)
	}
	// Equally prominent: the same button, the same size.
	look, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["cookie-accept", "cookie-reject"].map(id => {
		const e = document.getElementById(id), s = getComputedStyle(e), r = e.getBoundingClientRect();
		return [s.backgroundColor, s.color, s.fontSize, s.fontWeight, s.borderTopWidth, s.borderTopColor, Math.round(r.width), Math.round(r.height)].join(" ");
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if look[0] != look[1] {
		t.Errorf("accept and reject differ: %q vs %q", look[0], look[1])
	}
	// The page comes back without the banner once the choice is saved (the same page
	// was on screen before: waiting for it would not wait for the answer).
	run(ctx, "reject", chromedp.Click(chromedp.ID("cookie-reject")), chromedp.WaitNotPresent(chromedp.ID("cookie-banner")),
		chromedp.WaitVisible(chromedp.ID("page-newsletter")))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#cookie-banner").length`)); err != nil || n != 0 {
		t.Errorf("after the choice the banner is still shown (%d, %v)", n, err)
	}
	if j := jar(ctx); !slices.Equal(j, []string{"steward_cookies=v1.p0.s0.m0"}) {
		t.Errorf("after Reject all the browser holds %v", j)
	}

	// Another visitor accepts, with the keyboard.
	ctx = tab()
	run(ctx, "home", chromedp.Navigate(s.url+"/privacy/purposes"), chromedp.WaitVisible(chromedp.ID("cookie-banner")),
		chromedp.Focus(chromedp.ID("cookie-accept")), chromedp.KeyEvent("\r"), chromedp.WaitNotPresent(chromedp.ID("cookie-banner")),
		chromedp.WaitVisible(chromedp.ID("page-purposes")))
	if j := jar(ctx); !slices.Equal(j, []string{"steward_cookies=v1.p1.s1.m1"}) {
		t.Errorf("after Accept all the browser holds %v", j)
	}
	run(ctx, "cookie page", chromedp.Navigate(s.url+"/privacy/cookies"), chromedp.WaitVisible(chromedp.ID("cookie-current")))
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("cookie-current"))); !strings.Contains(txt, "preferences on, statistics on, marketing on") {
		t.Errorf("the cookie page says %q", txt)
	}

	// A member logs in (strictly necessary cookies only), and chooses statistics alone
	// on the cookie page: the ledger records it, from the cookie page.
	ctx = tab()
	run(ctx, "login", chromedp.Navigate(s.url+"/login"), chromedp.WaitVisible(chromedp.ID("page-login")),
		chromedp.SendKeys(chromedp.ID("f-email"), "crumb@example.com"), chromedp.SendKeys(chromedp.ID("f-password"), "a long secret phrase 12"),
		chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("page-account")))
	onlyNecessary(t, "after login", jar(ctx))
	run(ctx, "choose", chromedp.Navigate(s.url+"/privacy/cookies"), chromedp.WaitVisible(chromedp.ID("cookie-form")))
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#cookie-form input[type=checkbox]")].map(b => b.name + (b.checked ? "+" : "-") + (b.disabled ? "d" : ""))`))
	if err != nil || !slices.Equal(boxes, []string{"necessary+d", "preferences-", "statistics-", "marketing-"}) {
		t.Errorf("the cookie page's boxes: %v (%v): necessary on and disabled, the rest off", boxes, err)
	}
	run(ctx, "save", chromedp.Click(chromedp.ID("k-statistics")), chromedp.Click(chromedp.CSS(`#cookie-form button[value="save"]`)),
		chromedp.WaitVisible(chromedp.ID("cookies-saved")))
	j := jar(ctx)
	onlyNecessary(t, "after the member's choice", j)
	if !slices.Contains(j, "steward_cookies=v1.p0.s1.m0") {
		t.Errorf("after choosing statistics the browser holds %v", j)
	}
	var got []string
	for _, e := range s.history(memberID) {
		if strings.HasPrefix(e.Purpose, "cookies_") {
			got = append(got, e.Purpose+" "+string(e.Decision)+" "+string(e.Source))
		}
	}
	slices.Sort(got)
	if want := []string{"cookies_marketing withdrawn cookie_page", "cookies_preferences withdrawn cookie_page", "cookies_statistics granted cookie_page"}; !slices.Equal(got, want) {
		t.Errorf("the ledger holds %v, want %v", got, want)
	}

	// Global Privacy Control: the banner says it is honoured, and Accept all leaves
	// statistics and marketing off.
	ctx = tab()
	run(ctx, "gpc", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Sec-GPC": "1"}})
		return chromedp.Void{}, err
	}, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("cookie-banner")))
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("cookie-banner"))); !strings.Contains(txt, "Global Privacy Control (Sec-GPC: 1), and we honour it") {
		t.Errorf("under GPC the banner says %q", txt)
	}
	run(ctx, "cookie page under gpc", chromedp.Navigate(s.url+"/privacy/cookies"), chromedp.WaitVisible(chromedp.ID("cookie-signal")))
	boxes, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#cookie-form input[type=checkbox]")].map(b => b.name + (b.checked ? "+" : "-") + (b.disabled ? "d" : ""))`))
	if err != nil || !slices.Equal(boxes, []string{"necessary+d", "preferences-", "statistics-d", "marketing-d"}) {
		t.Errorf("the cookie page under GPC: %v (%v): statistics and marketing disabled", boxes, err)
	}
	run(ctx, "home", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("cookie-banner")))
	run(ctx, "accept under gpc", chromedp.Click(chromedp.ID("cookie-accept")), chromedp.WaitNotPresent(chromedp.ID("cookie-banner")),
		chromedp.WaitVisible(chromedp.ID("page-home")))
	if j := jar(ctx); !slices.Equal(j, []string{"steward_cookies=v1.p1.s0.m0"}) {
		t.Errorf("Accept all under GPC: the browser holds %v", j)
	}
}

// The banner script and the statistics script on a real page of the operator's other
// site, in a real browser, on each engine: before a choice nothing is sent or counted
// and the banner (a dialog with the focus) passes axe-core; "Accept all" by keyboard
// counts the pageview; in another browser "Reject all" sends and counts nothing, even
// a custom event; the choice is a first-party cookie of the site recording only it,
// and the banner does not come back.
func TestConsentScriptInBrowser(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--analytics-sites", "127.0.0.1")
			shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				// The page notes every beacon it sends, to prove that nothing was sent.
				// /gpc is a browser that sends Global Privacy Control; /v2 asks anew.
				gpc, version := "", ""
				if r.URL.Path == "/gpc" {
					gpc = `Object.defineProperty(navigator, "globalPrivacyControl", {value: true});`
				}
				if r.URL.Path == "/v2" {
					version = ` data-version="2"`
				}
				fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Shop</title>
<script>window.sent = []; const b = navigator.sendBeacon.bind(navigator); navigator.sendBeacon = (u, d) => { window.sent.push(u); return b(u, d); };%[2]s</script>
<script defer src="%[1]s/static/steward-consent.js"%[3]s></script>
<script defer src="%[1]s/static/steward-analytics.js"></script></head>
<body><main><h1>Welcome</h1><p><a id="more" href="/more">More</a></p></main></body></html>`, s.url, gpc, version)
			}))
			t.Cleanup(shop.Close)
			tab := func() context.Context {
				ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
				t.Cleanup(cancel)
				ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
				t.Cleanup(cancelT)
				if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
					t.Fatal(err)
				}
				// Headless Chromium names itself a robot, which is counted apart.
				if _, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
					_, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: desktopChrome})
					return chromedp.Void{}, err
				}); err != nil {
					t.Fatal(err)
				}
				return ctx
			}
			count := func(ctx context.Context, path string) int {
				t.Helper()
				if err := s.app.Analytics().Flush(ctx); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := s.app.Analytics().DB().QueryRowContext(ctx, `SELECT count(*) FROM events WHERE path = $1`, path).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			sent := func(ctx context.Context) int {
				t.Helper()
				n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.sent.length`))
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			open := func(ctx context.Context, path string) {
				t.Helper()
				if err := chromedp.Do(ctx, chromedp.Navigate(shop.URL+path), chromedp.WaitVisible(chromedp.ID("steward-consent"))); err != nil {
					t.Fatal(err)
				}
				// Deferred scripts ran before DOMContentLoaded; the banner shows after both.
				if ready, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState != "loading" && "stewardConsent" in window && typeof steward == "function"`)); err != nil || !ready {
					t.Fatalf("the scripts did not run: %v", err)
				}
			}

			// Accept, with the keyboard.
			ctx := tab()
			open(ctx, "/accept")
			if n := sent(ctx); n != 0 {
				t.Errorf("before a choice the page sent %d beacons", n)
			}
			if n := count(ctx, "/accept"); n != 0 {
				t.Errorf("before a choice %d events were counted", n)
			}
			state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[document.activeElement.id, document.activeElement.getAttribute("role"),
				stewardConsent.decided, stewardConsent.statistics].join(" ")`))
			if err != nil || state != "steward-consent dialog false false" {
				t.Errorf("the banner: %q (%v), want the focus on the dialog and no choice", state, err)
			}
			link, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#steward-consent a").href`))
			if err != nil || link != s.url+"/privacy/cookies" {
				t.Errorf("the banner links to %q (%v), want the cookie page", link, err)
			}
			checkPage(t, ctx, axe, "consent-banner")
			// Tab to "Accept all", the first button, and press Enter.
			for i := 0; i < 5; i++ {
				label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`))
				if label == "Accept all" {
					break
				}
				if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
					t.Fatal(err)
				}
			}
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"), chromedp.WaitNotPresent(chromedp.ID("steward-consent"))); err != nil {
				t.Fatal(err)
			}
			for count(ctx, "/accept") == 0 {
				select {
				case <-ctx.Done():
					t.Fatal("the pageview after Accept all was never counted")
				case <-time.After(50 * time.Millisecond):
				}
			}
			shopURL := shop.URL
			jar, err := chromedp.Run(ctx, cookieJar(shopURL, s.url))
			if err != nil || !slices.Equal(jar, []string{"steward_cookies=v1.p1.s1.m1"}) {
				t.Errorf("after Accept all the browser holds %v (%v)", jar, err)
			}
			// The next page: no banner, the choice read back, the pageview counted.
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("more")), chromedp.WaitVisible(chromedp.ID("more"))); err != nil {
				t.Fatal(err)
			}
			again, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[document.querySelectorAll("#steward-consent").length, stewardConsent.decided, stewardConsent.marketing].join(" ")`))
			if err != nil || again != "0 true true" {
				t.Errorf("the next page: %q (%v), want no banner and the choice", again, err)
			}
			// A new version of the categories asks again.
			if err := chromedp.Do(ctx, chromedp.Navigate(shop.URL+"/v2"), chromedp.WaitVisible(chromedp.ID("steward-consent"))); err != nil {
				t.Fatalf("a new version does not ask again: %v", err)
			}

			// Reject, with a click, in a browser of its own.
			ctx = tab()
			open(ctx, "/reject")
			// "Choose" shows a box per category, strictly necessary on and disabled.
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#steward-consent button:nth-of-type(3)`)),
				chromedp.WaitVisible(chromedp.ID("steward-consent-choose"))); err != nil {
				t.Fatal(err)
			}
			boxes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#steward-consent input")].map(b => b.name + (b.checked ? "+" : "-") + (b.disabled ? "d" : ""))`))
			if err != nil || !slices.Equal(boxes, []string{"necessary+d", "preferences-", "statistics-", "marketing-"}) {
				t.Errorf("Choose shows %v (%v)", boxes, err)
			}
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#steward-consent button:nth-of-type(2)`)), chromedp.WaitNotPresent(chromedp.ID("steward-consent"))); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`steward("signup")`)); err != nil {
				t.Fatal(err)
			}
			if n := sent(ctx); n != 0 {
				t.Errorf("after Reject all the page sent %d beacons", n)
			}
			if n := count(ctx, "/reject"); n != 0 {
				t.Errorf("after Reject all %d events were counted", n)
			}
			jar, err = chromedp.Run(ctx, cookieJar(shopURL, s.url))
			if err != nil || !slices.Equal(jar, []string{"steward_cookies=v1.p0.s0.m0"}) {
				t.Errorf("after Reject all the browser holds %v (%v)", jar, err)
			}

			// Global Privacy Control: the banner says it is honoured; Accept all keeps
			// statistics and marketing off, and nothing is sent.
			ctx = tab()
			open(ctx, "/gpc")
			if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("steward-consent-text"))); !strings.Contains(txt, "Global Privacy Control, and we honour it") {
				t.Errorf("under GPC the banner says %q", txt)
			}
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#steward-consent button`)), chromedp.WaitNotPresent(chromedp.ID("steward-consent"))); err != nil {
				t.Fatal(err)
			}
			st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[stewardConsent.preferences, stewardConsent.statistics, stewardConsent.marketing, window.sent.length].join(" ")`))
			if err != nil || st != "true false false 0" {
				t.Errorf("Accept all under GPC: %q (%v)", st, err)
			}
			jar, err = chromedp.Run(ctx, cookieJar(shopURL, s.url))
			if err != nil || !slices.Equal(jar, []string{"steward_cookies=v1.p1.s0.m0"}) {
				t.Errorf("Accept all under GPC: the browser holds %v (%v)", jar, err)
			}
		})
	}
}
