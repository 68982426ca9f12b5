package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"steward/internal/analytics"
	"steward/internal/app/apptest"
	"steward/internal/server"
)

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

// visit sends one beacon from a client address and browser, a second later than the
// one before (the rollup orders a visitor's day by time).
func visit(t *testing.T, h *apptest.Harness, ip, ua string, body map[string]any) {
	t.Helper()
	h.Clock.Advance(time.Second)
	if r := beacon(t, h, body, map[string]string{"X-Forwarded-For": ip, "User-Agent": ua}); r.Status != 204 {
		t.Fatalf("beacon %v: %d %s", body, r.Status, r.Body)
	}
}

func pv(path, ref string) map[string]any {
	return map[string]any{"site": "example.com", "kind": "pageview", "path": path, "referrer": ref}
}

// knownDay sends a day whose rollup is worked out by hand: three visitors.
//
//	A (DE, Chrome): / (from search.example.net), /pricing, /signup, event "signup"
//	B (FR, Firefox): /, /pricing, /, outbound link to partner.example.org
//	C (unknown country, Chrome): /blog
func knownDay(t *testing.T, h *apptest.Harness) {
	const a, b, c = "5.9.0.1", "193.51.224.1", "10.0.0.1"
	visit(t, h, a, chrome, pv("/", "https://search.example.net/?q=x"))
	visit(t, h, b, firefox, pv("/", ""))
	visit(t, h, a, chrome, pv("/pricing", ""))
	visit(t, h, c, chrome, pv("/blog", ""))
	visit(t, h, b, firefox, pv("/pricing", ""))
	visit(t, h, a, chrome, pv("/signup", ""))
	visit(t, h, a, chrome, map[string]any{"site": "example.com", "kind": "event", "path": "/signup", "name": "signup"})
	visit(t, h, b, firefox, pv("/", ""))
	visit(t, h, b, firefox, map[string]any{"site": "example.com", "kind": "outbound", "path": "/", "name": "https://partner.example.org/offer"})
	// A robot, counted apart, never in the breakdowns.
	visit(t, h, a, "Googlebot/2.1 (+http://www.google.com/bot.html)", pv("/", ""))
	flush(t, h)
}

// The rollup of a known day, on both engines: every breakdown as worked out by hand,
// the country from the full address (only its code kept), and the same rows when the
// day is rolled up again.
func TestRollupBreakdowns(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, append(statsFlags, "--trust-proxy=true")...)
		knownDay(t, h)
		ctx := context.Background()
		day := analytics.DayOf(h.Clock.Now())
		want := []string{
			"browser | Chrome |  | 2 | 4", "browser | Firefox |  | 1 | 3",
			"country | DE |  | 1 | 3", "country | FR |  | 1 | 3", "country | ZZ |  | 1 | 1",
			"entry | / |  | 2 | 2", "entry | /blog |  | 1 | 1",
			"event | signup |  | 1 | 1",
			"exit | / |  | 1 | 1", "exit | /blog |  | 1 | 1", "exit | /signup |  | 1 | 1",
			"outbound | partner.example.org |  | 1 | 1",
			"page | / |  | 2 | 3", "page | /blog |  | 1 | 1", "page | /pricing |  | 2 | 2", "page | /signup |  | 1 | 1",
			"referrer |  |  | 3 | 6", "referrer | search.example.net |  | 1 | 1",
			"total |  |  | 3 | 7",
			"transition | / | /pricing | 2 | 2", "transition | /pricing | / | 1 | 1", "transition | /pricing | /signup | 1 | 1",
		}
		for round := range 2 {
			if err := h.App.Analytics().Rollup(ctx, day); err != nil {
				t.Fatal(err)
			}
			got := queryRows(t, h.App.Analytics().DB(), `SELECT dim, item, next, visitors, hits FROM daily_dims
				WHERE site = 'example.com' AND day = $1 AND rest = 0 ORDER BY dim, item, next`, day)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("round %d: daily_dims:\n%s\nwant:\n%s", round, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		if got := queryRows(t, h.App.Analytics().DB(), `SELECT country FROM events WHERE country NOT IN ('DE', 'FR', 'ZZ')`); len(got) > 0 {
			t.Errorf("countries stored: %v", got)
		}
	})
}

// statsGet is an API call of the statistics.
func statsGet(t *testing.T, h *apptest.Harness, path, tok string) (int, map[string]any) {
	t.Helper()
	r := h.Do("GET", path, nil, tok)
	var out map[string]any
	_ = json.Unmarshal(r.Body, &out)
	return r.Status, out
}

// The published figures at k = 2, on the API and the pages, public and staff: rows
// below k folded into "other" (rounded to multiples of k), suppressed days null and
// "fewer than 2", the period before and its delta, sites not made public refused,
// and bad parameters named.
func TestStatsPublished(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, append(statsFlags, "--trust-proxy=true", "--stats-k", "2", "--stats-public-sites", "example.com")...)
		ctx := context.Background()
		// The day before: two visitors of one page each.
		visit(t, h, "5.9.0.2", chrome, pv("/", ""))
		visit(t, h, "5.9.0.3", chrome, pv("/", ""))
		flush(t, h)
		day0 := analytics.DayOf(h.Clock.Now())
		if err := h.App.Analytics().Rollup(ctx, day0); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(24 * time.Hour)
		knownDay(t, h)
		day1 := analytics.DayOf(h.Clock.Now())
		if err := h.App.Analytics().Rollup(ctx, day1); err != nil {
			t.Fatal(err)
		}
		d0, d1 := analytics.Date(day0), analytics.Date(day1)
		before := analytics.Date(day0 - 1)

		status, got := statsGet(t, h, "/api/v1/stats?site=example.com&from="+before+"&to="+d1, "")
		if status != 200 {
			t.Fatalf("public stats: %d %v", status, got)
		}
		// 3 visitors and 7 pageviews on day 1, rounded to multiples of 2: 4 and 8; day 0:
		// 2 and 2; the day before that had none: suppressed (null).
		if got["k"] != 2.0 || got["visitors"] != 6.0 || got["pageviews"] != 10.0 || got["from"] != before || got["to"] != d1 {
			t.Errorf("totals: %v", got)
		}
		days := got["days"].([]any)
		if len(days) != 3 || days[0].(map[string]any)["visitors"] != nil || days[1].(map[string]any)["visitors"] != 2.0 ||
			days[2].(map[string]any)["pageviews"] != 8.0 {
			t.Errorf("days: %v", days)
		}
		dims := map[string]map[string]any{}
		for _, b := range got["breakdowns"].([]any) {
			dims[b.(map[string]any)["dimension"].(string)] = b.(map[string]any)
		}
		// Pages of day 1: / (2 visitors, 3 views) and /pricing (2, 2) shown; /signup and
		// /blog (1 each) folded into other (2 visitors, 2 views). Day 0: / (2, 2).
		pages, _ := json.Marshal(dims["page"])
		if want := `{"dimension":"page","other":{"hits":2,"visitors":2},"rows":[{"hits":6,"key":"/","visitors":4},{"hits":2,"key":"/pricing","visitors":2}]}`; string(pages) != want {
			t.Errorf("pages:\n%s\nwant\n%s", pages, want)
		}
		// Countries of day 1: three of one visitor each, all in other (3 -> 4, 7 -> 8);
		// day 0: ZZ... the test addresses are German: DE 2.
		countries, _ := json.Marshal(dims["country"])
		if want := `{"dimension":"country","other":{"hits":8,"visitors":4},"rows":[{"hits":2,"key":"DE","visitors":2}]}`; string(countries) != want {
			t.Errorf("countries:\n%s\nwant\n%s", countries, want)
		}
		trans, _ := json.Marshal(dims["transition"])
		if want := `{"dimension":"transition","other":{"hits":2,"visitors":2},"rows":[{"hits":2,"key":"/","next":"/pricing","visitors":2}]}`; string(trans) != want {
			t.Errorf("transitions:\n%s\nwant\n%s", trans, want)
		}
		// The period before: day 1 alone against day 0.
		_, got = statsGet(t, h, "/api/v1/stats?from="+d1+"&to="+d1, "")
		if prev := got["previous"].(map[string]any); prev["from"] != d0 || prev["to"] != d0 || prev["visitors"] != 2.0 || got["visitors"] != 4.0 {
			t.Errorf("previous: %v, now %v", prev, got["visitors"])
		}

		// Bad parameters: 400 naming the field; a site not made public is not shown.
		for _, c := range []struct{ query, field string }{
			{"site=shop.example.com", "site"},
			{"site=nowhere.example", "site"},
			{"from=2026-13-01&to=" + d1, "from"},
			{"from=" + d1, "to"},
			{"from=" + d1 + "&to=" + d0, "to"},
			{"from=2020-01-01&to=" + d1, "range"},
			{"range=365", "range"},
			{"visitor=1", "visitor"},
		} {
			r := h.Do("GET", "/api/v1/stats?"+c.query, nil, "")
			if f, _ := r.ErrorField(); r.Status != 400 || f != c.field {
				t.Errorf("%s: %d %s, want 400 naming %s", c.query, r.Status, r.Body, c.field)
			}
		}

		// Staff: every counted site, the same rule.
		_, tok := staffMember(t, h, "stats.marketing@example.org", "marketing")
		if status, got := statsGet(t, h, "/api/v1/staff/stats?site=shop.example.com&range=7", tok); status != 200 || got["visitors"] != nil {
			t.Errorf("staff stats of shop.example.com: %d %v", status, got)
		}
		if status, got := statsGet(t, h, "/api/v1/staff/stats?range=7", tok); status != 200 || got["visitors"] != 6.0 {
			t.Errorf("staff stats: %d %v", status, got)
		}

		// The pages: the same figures, suppressed ones said.
		for _, c := range []struct{ path, cookie string }{{"/statistics?from=" + before + "&to=" + d1, ""}, {"/staff/analytics?from=" + before + "&to=" + d1, tok}} {
			hd := map[string]string{}
			if c.cookie != "" {
				hd["Cookie"] = server.CookieName + "=" + c.cookie
			}
			p := apptest.Call(t, h.Client, h.URL, "GET", c.path, nil, "", hd)
			body := string(p.Body)
			for _, want := range []string{`id="total-visitors">6 `, "fewer than 2", `<th scope="row">/pricing</th><td>2</td><td>2</td>`,
				`<svg id="chart" role="img"`, `<title id="chart-title">`, `<table id="dim-transition">`, `<td>/pricing</td>`} {
				if p.Status != 200 || !strings.Contains(body, want) {
					t.Errorf("%s: %d, no %q", c.path, p.Status, want)
				}
			}
			if strings.Contains(body, "/signup</th>") || strings.Contains(body, "/blog</th>") {
				t.Errorf("%s: a page of one visitor is shown", c.path)
			}
		}
		if p := apptest.Call(t, h.Client, h.URL, "GET", "/statistics?from=2026-13-01&to="+d1, nil, "", nil); p.Status != 400 ||
			!strings.Contains(string(p.Body), `id="f-from" name="from" value="2026-13-01" aria-invalid="true"`) {
			t.Errorf("a bad date on the page: %d", p.Status)
		}
	})
}

// With no public site, the public page says so and the API answers 404.
func TestStatsNothingPublic(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, statsFlags...)
		if r := h.Do("GET", "/api/v1/stats", nil, ""); r.Status != 404 {
			t.Errorf("api: %d %s", r.Status, r.Body)
		}
		p := apptest.Call(t, h.Client, h.URL, "GET", "/statistics", nil, "", nil)
		if p.Status != 200 || !strings.Contains(string(p.Body), `id="no-sites"`) {
			t.Errorf("page: %d", p.Status)
		}
	})
}

// Campaigns and their conversions are breakdowns of the published statistics under
// the same rule (k = 2 here): spring's 3 visitors show (as 4, a multiple of 2); the
// one visitor of solo goes to other, which then takes summer (2) to reach k: solo's
// name is never published.
func TestStatsCampaignBreakdown(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, append(statsFlags, "--trust-proxy=true", "--stats-k", "2", "--stats-public-sites", "example.com")...)
		n := 0
		for campaign, visitors := range map[string]int{"spring": 3, "summer": 2, "solo": 1} {
			for range visitors {
				n++
				visit(t, h, fmt.Sprintf("5.9.1.%d", n), chrome, pv("/?utm_source=ads&utm_medium=cpc&utm_campaign="+campaign, ""))
			}
		}
		flush(t, h)
		if err := h.App.Analytics().Maintain(context.Background()); err != nil {
			t.Fatal(err)
		}
		d := analytics.Date(analytics.DayOf(h.Clock.Now()))
		status, got := statsGet(t, h, "/api/v1/stats?from="+d+"&to="+d, "")
		if status != 200 {
			t.Fatalf("stats: %d %v", status, got)
		}
		var campaigns []byte
		for _, b := range got["breakdowns"].([]any) {
			if b.(map[string]any)["dimension"] == "campaign" {
				campaigns, _ = json.Marshal(b)
			}
		}
		if want := `{"dimension":"campaign","other":{"hits":4,"visitors":4},"rows":[{"hits":4,"key":"ads/cpc/spring","visitors":4}]}`; string(campaigns) != want {
			t.Errorf("campaigns:\n%s\nwant\n%s", campaigns, want)
		}
	})
}
