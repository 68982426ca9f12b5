package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/analytics"
	"steward/internal/app/apptest"
	"steward/internal/newsletter"
	"steward/internal/store/storetest"
)

// TestAttributionInBrowser walks attribution as people do, in a real browser on each
// engine: a newsletter campaign links to a page of the operator's site (another
// origin, with Steward's script); a reader opens the link from the mail, so the
// script counts a visit carrying the campaign's UTM parameters; the same browser then
// registers on Steward; once the hourly job has rolled the day up, a marketer sees the
// campaign's page and the campaigns page. With one visit and one registration, below
// the minimum of 10, the totals say "fewer than 10" and no day and no key is listed
// (not even the key's name); the figures behind them (1 and 1) are read from the
// analytics store.
func TestAttributionInBrowser(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	exec := chromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserFlags(exec, t.TempDir(), chromedp.UserAgent(desktopChrome))...)
	t.Cleanup(cancelAlloc)
	root, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, "--analytics-sites", "127.0.0.1", "--analytics-cookieless=true")
			ctx := t.Context()
			shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Spring sale</title>
<script defer src="%s/static/steward-analytics.js"></script></head>
<body><h1 id="sale">Spring sale</h1><a id="join" href="%s/register">Join us</a></body></html>`, s.url, s.url)
			}))
			t.Cleanup(shop.Close)

			// The marketer, and a campaign to one reader linking to the shop.
			const marketer, marketerPW = "mara@example.com", "market stall 1999"
			staffID := s.signUp(t, s.client(), marketer, "Mara Marketer", marketerPW)
			if err := apptest.GrantStaff(ctx, s.app, staffID, "marketing"); err != nil {
				t.Fatal(err)
			}
			ns := s.app.Newsletter()
			if rep, err := ns.Import(ctx, strings.NewReader("email,first_name,last_name\nreader@example.org,Rita,Reader\n"), newsletter.Purpose, staffID); err != nil || rep.Imported != 1 {
				t.Fatalf("import: %+v %v", rep, err)
			}
			c, err := ns.CreateCampaign(ctx, staffID, newsletter.Purpose, "Spring", "Our [spring sale]("+shop.URL+"/spring) is on.")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ns.StartSend(ctx, s.app.Jobs(), c.ID); err != nil {
				t.Fatal(err)
			}
			link := s.find("reader@example.org", regexp.MustCompile(regexp.QuoteMeta(shop.URL)+`/spring\?utm_source=newsletter&utm_medium=email&utm_campaign=nl-[a-z]{10}`))
			if !strings.HasSuffix(link, c.Slug()) {
				t.Fatalf("the mailed link %s does not name the campaign %s", link, c.Slug())
			}

			// The reader follows the link, then registers in the same browser.
			tab, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
			t.Cleanup(cancel)
			tab, cancelT := context.WithTimeout(tab, 2*time.Minute)
			t.Cleanup(cancelT)
			if err := chromedp.Do(tab, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("sale"))); err != nil {
				t.Fatal(err)
			}
			db := s.app.Analytics().DB()
			for {
				if err := s.app.Analytics().Flush(tab); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := db.QueryRowContext(tab, `SELECT count(*) FROM events WHERE path = '/spring' AND campaign <> ''`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == 1 {
					break
				}
				select {
				case <-tab.Done():
					t.Fatal("the campaign visit never arrived")
				case <-time.After(50 * time.Millisecond):
				}
			}
			if err := chromedp.Do(tab,
				chromedp.Click(chromedp.ID("join")),
				chromedp.WaitVisible(chromedp.ID("page-register")),
				chromedp.SendKeys(chromedp.ID("f-name"), "Rita Reader"),
				chromedp.SendKeys(chromedp.ID("f-email"), "rita@example.org"),
				chromedp.SendKeys(chromedp.ID("f-password"), "spring is in the air"),
				chromedp.SetValue(chromedp.ID("f-birthdate"), "1990-12-10"),
				chromedp.SetValue(chromedp.ID("f-country"), "DE"),
				chromedp.Click(chromedp.CSS(`#page-register button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("page-register-sent")),
			); err != nil {
				t.Fatalf("register: %v", err)
			}

			// The hourly job rolls the day up.
			if err := s.app.Analytics().Maintain(ctx); err != nil {
				t.Fatal(err)
			}
			today := analytics.DayOf(s.app.Now())
			days, err := s.app.Analytics().CampaignDays(ctx, analytics.NewsletterKey(c.Slug()), today, today)
			if err != nil || len(days) != 1 || days[0].Visitors != 1 || days[0].Pageviews != 1 || days[0].Registrations != 1 || days[0].Subscriptions != 0 {
				t.Fatalf("the campaign's day in the store: %+v %v, want 1 visitor, 1 pageview, 1 registration", days, err)
			}

			// The marketer reads the campaign's page, then the campaigns page.
			staff, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
			t.Cleanup(cancel)
			staff, cancelS := context.WithTimeout(staff, 2*time.Minute)
			t.Cleanup(cancelS)
			code, err := apptest.NextCode(ctx, s.app, staffID)
			if err != nil {
				t.Fatal(err)
			}
			var total, daysText, table string
			if err := chromedp.Do(staff,
				chromedp.Navigate(s.url+"/login"),
				chromedp.WaitVisible(chromedp.ID("page-login")),
				chromedp.SendKeys(chromedp.ID("f-email"), marketer),
				chromedp.SendKeys(chromedp.ID("f-password"), marketerPW),
				chromedp.Click(chromedp.CSS(`#page-login button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("page-second-factor")),
				chromedp.SendKeys(chromedp.ID("f-totp"), code),
				chromedp.Click(chromedp.CSS(`#page-second-factor button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.CSS(`body.staff`)),
				chromedp.Navigate(s.url+"/staff/campaigns/"+c.ID),
				chromedp.WaitVisible(chromedp.ID("visits")),
			); err != nil {
				t.Fatalf("the marketer opens the campaign: %v", err)
			}
			total, err = chromedp.Run(staff, chromedp.Text(chromedp.ID("visits-total")))
			if err == nil {
				daysText, err = chromedp.Run(staff, chromedp.Text(chromedp.ID("no-visits")))
			}
			if err != nil {
				t.Fatal(err)
			}
			norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if got, want := norm(total), "Visitors fewer than 10 Page views fewer than 10 Registrations fewer than 10 Subscriptions fewer than 10"; got != want {
				t.Errorf("campaign totals %q, want %q", got, want)
			}
			if !strings.Contains(norm(daysText), "No day with 10 visitors or more") {
				t.Errorf("campaign days %q, want no day listed", norm(daysText))
			}
			checkPage(t, staff, axe, "campaign-visits")
			// The campaigns page: the key the link carried, its figures.
			if err := chromedp.Do(staff,
				chromedp.Navigate(s.url+"/staff/analytics/campaigns"),
				chromedp.WaitVisible(chromedp.ID("no-campaigns")),
			); err != nil {
				t.Fatal(err)
			}
			if table, err = chromedp.Run(staff, chromedp.Text(chromedp.CSS("main"))); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(table, c.Slug()) || !strings.Contains(norm(table), "No campaign had 10 visitors or more") {
				t.Errorf("campaigns page %q, want no key listed", norm(table))
			}
			checkPage(t, staff, axe, "staff-analytics-campaigns-figures")
		})
	}
}
