package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/store/storetest"
)

// desktopChrome is the browser the statistics test presents as: headless Chromium
// names itself HeadlessChrome, which Steward counts as a robot.
const desktopChrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"

// TestAnalyticsInBrowser loads a page of the operator's own site (another origin) that
// includes Steward's script, in a real browser: its pageview, a custom event and a
// click on an outbound link arrive in the analytics store, cleaned, on each engine.
func TestAnalyticsInBrowser(t *testing.T) {
	t.Parallel()
	exec := chromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserFlags(exec, t.TempDir(), chromedp.UserAgent(desktopChrome))...)
	t.Cleanup(cancelAlloc)
	root, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>Partner</title><h1 id="landed">Partner</h1></html>`)
	}))
	t.Cleanup(partner.Close)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--analytics-sites", "127.0.0.1", "--analytics-cookieless=true")
			shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Shop</title>
<script defer src="%s/static/steward-analytics.js"></script></head>
<body><h1>Welcome</h1><a id="out" href="%s/offer/jane@example.com?ref=42">Our partner</a></body></html>`, s.url, partner.URL)
			}))
			t.Cleanup(shop.Close)
			ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
			t.Cleanup(cancel)
			ctx, cancelT := context.WithTimeout(ctx, time.Minute)
			t.Cleanup(cancelT)

			// wait reads the events table until one row matches, writing the buffer first.
			wait := func(what, where string) string {
				t.Helper()
				for {
					if err := s.app.Analytics().Flush(ctx); err != nil {
						t.Fatal(err)
					}
					var row string
					err := s.app.Analytics().DB().QueryRowContext(ctx, `SELECT kind || ' ' || path || ' ' || name || ' ' || props || ' ' || campaign || ' ' || browser || ' ' || bot
						FROM events WHERE `+where).Scan(&row)
					if err == nil {
						return row
					}
					select {
					case <-ctx.Done():
						t.Fatalf("%s never arrived: %v", what, err)
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(shop.URL+"/welcome?utm_source=mail&utm_campaign=spring&session=abc"),
				chromedp.WaitVisible(chromedp.ID("out"))); err != nil {
				t.Fatal(err)
			}
			if got := wait("the pageview", `kind = 'pageview' AND path = '/welcome'`); got != "pageview /welcome   utm_campaign=spring&utm_source=mail Chrome 0" {
				t.Errorf("pageview stored as %q", got)
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`steward("signup", {plan: "pro"})`)); err != nil {
				t.Fatal(err)
			}
			if got := wait("the custom event", `kind = 'event'`); got != `event /welcome signup {"plan":"pro"} utm_campaign=spring&utm_source=mail Chrome 0` {
				t.Errorf("event stored as %q", got)
			}
			// A page of a single-page site: pushState is a pageview.
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`history.pushState({}, "", "/next?utm_source=app")`)); err != nil {
				t.Fatal(err)
			}
			if got := wait("the pushState pageview", `kind = 'pageview' AND path = '/next'`); got != "pageview /next   utm_source=app Chrome 0" {
				t.Errorf("pushState pageview stored as %q", got)
			}
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("out")), chromedp.WaitVisible(chromedp.ID("landed"))); err != nil {
				t.Fatal(err)
			}
			got := wait("the outbound click", `kind = 'outbound'`)
			host := strings.TrimPrefix(partner.URL, "http://")
			host = host[:strings.IndexByte(host, ':')]
			if want := "outbound /next " + host + "/offer/:email  utm_source=app Chrome 0"; got != want {
				t.Errorf("outbound click stored as %q, want %q", got, want)
			}
		})
	}
}
