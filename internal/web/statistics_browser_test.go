package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"steward/internal/analytics"
	"steward/internal/app/apptest"
	"steward/internal/store/storetest"
)

// statsFlags count example.com's beacons and publish its statistics, at k = 2.
var statsFlags = []string{"--analytics-sites", "example.com", "--stats-public-sites", "example.com", "--stats-k", "2"}

// seedStatistics records a day of five visitors on example.com (the first two read
// /pricing after /) and rolls it up.
func seedStatistics(t *testing.T, s *site) {
	t.Helper()
	a := s.app.Analytics()
	ctx := t.Context()
	for i := range 5 {
		c := analytics.Client{IP: fmt.Sprintf("5.9.0.%d", 10+i), UserAgent: desktopChrome}
		paths := []string{"/"}
		if i < 2 {
			paths = append(paths, "/pricing")
		}
		for _, p := range paths {
			e := analytics.Event{Site: "example.com", Kind: analytics.Pageview, Path: p, Referrer: "https://search.example.net/"}
			if err := a.Record(ctx, e, c, analytics.Signals{Choice: analytics.Granted}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollup(ctx, analytics.DayOf(time.Now())); err != nil {
		t.Fatal(err)
	}
}

// TestStatisticsInBrowser walks the public statistics page as a visitor and the staff
// dashboard as a member of marketing, on each engine: the chart and its table, a
// period chosen from the list, a custom range with a mistake and then right.
func TestStatisticsInBrowser(t *testing.T) {
	t.Parallel()
	root := browserContext(t)
	for dialect, dbURL := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			s := start(t, dbURL, statsFlags...)
			seedStatistics(t, s)
			today := analytics.Date(analytics.DayOf(time.Now()))

			v := s.tab(t, root)
			v.do("open the public page", chromedp.Navigate(v.base+"/statistics"), chromedp.WaitVisible(chromedp.ID("chart")))
			// Five visitors, rounded to a multiple of 2: 6; seven pageviews: 8.
			if got := v.text("visitors", "#total-visitors"); !strings.HasPrefix(got, "6 ") {
				t.Errorf("public visitors %q", got)
			}
			if got := v.text("pages", "#dim-page"); !strings.Contains(got, "/pricing") || !strings.Contains(got, "/") {
				t.Errorf("public pages %q", got)
			}
			v.do("choose 7 days", chromedp.SetValue(chromedp.ID("f-range"), "7"),
				chromedp.Click(chromedp.CSS(`#stats-form button[type="submit"]`)))
			v.until("7 days", "range=7")
			rows, err := chromedp.Run(v.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#days tbody tr").length`))
			if err != nil || rows != 7 {
				t.Errorf("7 days: %d rows, %v", rows, err)
			}
			if got := v.text("a quiet day", "#days tbody tr:first-child"); !strings.Contains(got, "fewer than 2") {
				t.Errorf("a day without visitors: %q", got)
			}

			const email, pw = "grace@example.com", "compiler cobol 1959"
			id := s.signUp(t, s.client(), email, "Grace Hopper", pw)
			if err := apptest.GrantStaff(t.Context(), s.app, id, "marketing"); err != nil {
				t.Fatal(err)
			}
			b := s.tab(t, root)
			b.staffLogin(email, pw, id)
			b.do("open the dashboard", chromedp.Navigate(b.base+"/staff"), chromedp.WaitVisible(chromedp.CSS(`a[href="/staff/analytics"]`)),
				chromedp.Click(chromedp.CSS(`a[href="/staff/analytics"]`)), chromedp.WaitVisible(chromedp.ID("chart")))
			if got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("chart-title").textContent`)); err != nil ||
				got != "Visitors and pageviews per day" {
				t.Errorf("chart title %q", got)
			}
			if got := b.text("transitions", "#dim-transition"); !strings.Contains(got, "/pricing") {
				t.Errorf("transitions %q", got)
			}
			b.do("a custom range, to before from", chromedp.SetValue(chromedp.ID("f-range"), "custom"),
				chromedp.SetValue(chromedp.ID("f-from"), today), chromedp.SetValue(chromedp.ID("f-to"), "2020-01-01"),
				chromedp.Click(chromedp.CSS(`#stats-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("form-error")))
			if got := b.text("error", "#form-error"); !strings.HasPrefix(got, "To ") {
				t.Errorf("error %q", got)
			}
			b.do("the same day", chromedp.SetValue(chromedp.ID("f-to"), today),
				chromedp.Click(chromedp.CSS(`#stats-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("chart")))
			if got := b.text("one day", "#totals"); !strings.Contains(got, "6") || !strings.Contains(got, "from the period before") &&
				!strings.Contains(got, "no comparison") {
				t.Errorf("one day: %q", got)
			}
		})
	}
}
