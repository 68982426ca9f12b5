package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/analytics"
	"steward/internal/app/apptest"
	"steward/internal/newsletter"
)

// attribFlags count beacons on Steward's own host (the tests reach it as 127.0.0.1)
// and read the client's address from X-Forwarded-For, so that the test plays several
// visitors.
var attribFlags = []string{"--analytics-sites", "127.0.0.1,example.com", "--analytics-cookieless=true", "--trust-proxy=true"}

// visitor is one browser at one address.
type visitor struct{ ip, ua string }

func (v visitor) header(extra ...string) map[string]string {
	h := map[string]string{"User-Agent": v.ua}
	if v.ip != "" {
		h["X-Forwarded-For"] = v.ip
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// view sends the pageview beacon of a page of Steward's own site.
func (v visitor) view(t *testing.T, h *apptest.Harness, path string) {
	t.Helper()
	r := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/events", map[string]any{"site": "127.0.0.1", "path": path}, "", v.header())
	if r.Status != http.StatusNoContent {
		t.Fatalf("beacon %s: %d %s", path, r.Status, r.Body)
	}
}

// register registers an account through the API, as v.
func (v visitor) register(t *testing.T, h *apptest.Harness, email string, extra ...string) {
	t.Helper()
	r := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/accounts", map[string]any{"email": email, "password": pw, "name": "Visitor",
		"birthdate": "1985-03-02", "country": "DE"}, "", v.header(extra...))
	if r.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.Status, r.Body)
	}
}

// registerAt registers an account through the API, as v, at Steward reached as host.
func (v visitor) registerAt(t *testing.T, h *apptest.Harness, host, email string) {
	t.Helper()
	req, err := http.NewRequest("POST", h.URL+"/api/v1/accounts", strings.NewReader(`{"email":"`+email+`","password":"`+pw+
		`","name":"Visitor","birthdate":"1985-03-02","country":"DE"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, val := range v.header("Content-Type", "application/json") {
		req.Header.Set(k, val)
	}
	res, err := h.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register %s at %s: %d", email, host, res.StatusCode)
	}
}

// subscribe starts a newsletter subscription through the API, as v.
func (v visitor) subscribe(t *testing.T, h *apptest.Harness, email string, extra ...string) {
	t.Helper()
	r := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/newsletter", map[string]string{"first_name": "Sub", "last_name": "Scriber", "email": email}, "",
		v.header(extra...))
	if r.Status != http.StatusAccepted {
		t.Fatalf("subscribe %s: %d %s", email, r.Status, r.Body)
	}
}

// rollUp writes the analytics buffer and rolls up the campaigns of day.
func rollUp(t *testing.T, h *apptest.Harness, days ...int64) {
	t.Helper()
	flush(t, h)
	for _, d := range days {
		if err := h.App.Analytics().RollupCampaigns(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

// A visitor who arrives with UTM parameters and then registers (or subscribes) is
// attributed, by the same day's visitor hash: same address and browser, same day, same
// site. Another browser, another address or the next day is not; a visitor who
// refused statistics leaves no conversion at all; the figures on the API are those
// of the rollup, below 10 shown as null.
func TestAttributionBySameDayVisitor(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, attribFlags...)
		ctx := context.Background()
		day := analytics.DayOf(h.Clock.Now())
		const spring = "/landing?utm_source=ads&utm_medium=cpc&utm_campaign=spring"

		ann := visitor{"198.51.100.1", chrome}
		ann.view(t, h, spring)
		ann.register(t, h, "ann@example.org") // attributed
		ben := visitor{"198.51.100.2", chrome}
		ben.view(t, h, spring)
		ben.subscribe(t, h, "ben@example.org") // attributed, as a subscription
		cat := visitor{"198.51.100.3", chrome}
		cat.view(t, h, spring)
		visitor{"198.51.100.3", chrome + " Edg/130.0"}.register(t, h, "cat@example.org") // another browser
		dan := visitor{"198.51.100.4", chrome}
		dan.view(t, h, spring)
		visitor{"198.51.100.5", chrome}.register(t, h, "dan@example.org") // another address
		eve := visitor{"198.51.100.6", chrome}
		eve.view(t, h, spring)
		eve.register(t, h, "eve@example.org", "DNT", "1") // refused: no conversion stored
		eve.subscribe(t, h, "eve@example.org", "Sec-GPC", "1")
		fay := visitor{"198.51.100.7", chrome}
		fay.view(t, h, spring)
		flush(t, h)
		h.Clock.Advance(24 * time.Hour)
		fay.register(t, h, "fay@example.org") // the next day

		rollUp(t, h, day, day+1)
		stats, err := h.App.Analytics().Campaigns(ctx, "127.0.0.1", day, day+1)
		if err != nil {
			t.Fatal(err)
		}
		want := []analytics.CampaignStat{{Key: analytics.Key{Source: "ads", Medium: "cpc", Campaign: "spring"}, Visitors: 6, Pageviews: 6, Registrations: 1, Subscriptions: 1}}
		if !slices.Equal(stats, want) {
			t.Errorf("campaigns %+v, want %+v", stats, want)
		}
		// Stored: ann's, ben's, cat's, dan's and fay's conversions; none of eve's.
		if got := queryRows(t, h.App.Analytics().DB(), `SELECT goal, count(*) FROM conversions GROUP BY goal ORDER BY goal`); !slices.Equal(got, []string{"registration | 4", "subscription | 1"}) {
			t.Errorf("conversions stored: %v, want 4 registrations and 1 subscription (none of the visitor who refused)", got)
		}
		// Steward reached at a name that is not a configured site records nothing.
		gus := visitor{"198.51.100.8", chrome}
		gus.view(t, h, spring)
		gus.registerAt(t, h, "steward.example.net", "gus@example.org")
		if got := queryRows(t, h.App.Analytics().DB(), `SELECT count(*) FROM conversions`); got[0] != "5" {
			t.Errorf("%s conversions after a registration at a name that is no site, want still 5", got[0])
		}

		// The API: a key none of whose days had 10 visitors is not listed at all (its
		// name alone would say that someone came by it); the range and k are said.
		staffID, staff := h.Member("marketer@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		r := h.Do("GET", fmt.Sprintf("/api/v1/staff/analytics/campaigns?from=%s&to=%s&site=127.0.0.1", dayString(day), dayString(day+1)), nil, staff)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"campaigns":[]`) || !strings.Contains(string(r.Body), `"k":10`) {
			t.Errorf("campaigns API: %d %s", r.Status, r.Body)
		}
		for q, field := range map[string]string{"?from=yesterday": "from", "?to=2026-13-01": "to", "?from=2026-05-02&to=2026-05-01": "from",
			"?from=2020-01-01&to=2026-01-01": "from", "?site=elsewhere.example": "site"} {
			r := h.Do("GET", "/api/v1/staff/analytics/campaigns"+q, nil, staff)
			if f, _ := r.ErrorField(); r.Status != 400 || f != field {
				t.Errorf("campaigns API %s: %d %s, want 400 naming %s", q, r.Status, r.Body, field)
			}
		}
	})
}

func dayString(day int64) string { return time.Unix(day*86400, 0).UTC().Format(time.DateOnly) }

// A newsletter campaign's page and its API twin show the visits and conversions its
// own links brought, per day since it was sent; at 10 and over the figures show.
func TestCampaignVisitsPage(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, attribFlags...)
		ctx := context.Background()
		staffID, staff := h.Member("marketer@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		subscribe(t, h, "reader@example.org", true)
		ns := h.App.Newsletter()
		c, err := ns.CreateCampaign(ctx, staffID, newsletter.Purpose, "Spring", "See [our prices](https://127.0.0.1/pricing).")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ns.StartSend(ctx, h.App.Jobs(), c.ID); err != nil {
			t.Fatal(err)
		}
		link := "/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=" + c.Slug()
		var msg string
		for n := 2; msg == "" && n <= 4; n++ {
			for _, m := range h.WaitMail("reader@example.org", n) {
				if strings.Contains(m.Raw, "Subject: Spring") {
					msg = m.Raw
				}
			}
		}
		if !strings.Contains(msg, "https://127.0.0.1"+link) {
			t.Fatalf("the campaign's mail has no tagged link %s:\n%s", link, msg)
		}
		// Twelve readers follow the link; ten of them register, one subscribes; a
		// thirteenth arrives from Google.
		for i := range 12 {
			v := visitor{fmt.Sprintf("203.0.113.%d", i+1), chrome}
			v.view(t, h, link)
			v.view(t, h, "/pricing") // their next page: no campaign visit
			switch {
			case i < 10:
				v.register(t, h, fmt.Sprintf("reader%d@example.org", i))
			case i == 10:
				v.subscribe(t, h, "reader10@example.org")
			}
		}
		r := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/events", map[string]any{"site": "127.0.0.1", "path": "/", "referrer": "https://www.google.com/"}, "",
			visitor{"203.0.113.99", chrome}.header())
		if r.Status != 204 {
			t.Fatal(r.Status)
		}
		flush(t, h)
		if err := h.App.Analytics().Maintain(ctx); err != nil { // the hourly job rolls the campaigns up
			t.Fatal(err)
		}
		today := dayString(analytics.DayOf(h.Clock.Now()))

		v := h.Do("GET", "/api/v1/staff/campaigns/"+c.ID+"/visits", nil, staff)
		// Published: 12 visitors and pageviews rounded to a multiple of 10, 10
		// registrations, the one subscription below 10.
		wantDay := `{"key":"newsletter/email/` + c.Slug() + `","source":"newsletter","medium":"email","campaign":"` + c.Slug() + `","day":"` + today +
			`","visitors":10,"pageviews":10,"conversions":{"registration":10,"subscription":null}}`
		if v.Status != 200 || !strings.Contains(string(v.Body), `"days":[`+wantDay+`]`) || !strings.Contains(string(v.Body), `"utm_campaign":"`+c.Slug()+`"`) {
			t.Errorf("campaign visits API: %d %s\nwant days [%s]", v.Status, v.Body, wantDay)
		}
		all := h.Do("GET", "/api/v1/staff/analytics/campaigns", nil, staff)
		thirty := `"from":"` + dayString(analytics.DayOf(h.Clock.Now())-29) + `","to":"` + today + `"`
		if all.Status != 200 || !strings.Contains(string(all.Body), thirty) || !strings.Contains(string(all.Body), `"key":"newsletter/email/`+c.Slug()+`"`) ||
			strings.Contains(string(all.Body), `google/organic`) {
			t.Errorf("campaigns API: %d %s", all.Status, all.Body)
		}

		page := apptest.Call(t, h.Client, h.URL, "GET", "/staff/campaigns/"+c.ID, nil, "", map[string]string{"Cookie": "steward_session=" + staff})
		body := string(page.Body)
		if page.Status != 200 || !strings.Contains(body, `id="visits"`) || !strings.Contains(body, "<dt>Visitors</dt><dd>10</dd>") ||
			!strings.Contains(body, "<dt>Registrations</dt><dd>10</dd>") || !strings.Contains(body, "<dt>Subscriptions</dt><dd>fewer than 10</dd>") ||
			!strings.Contains(body, "<th scope=\"row\">"+today+"</th><td>10</td><td>10</td><td>10</td><td>fewer than 10</td>") {
			t.Errorf("campaign page: %d %s", page.Status, body)
		}
		list := apptest.Call(t, h.Client, h.URL, "GET", "/staff/analytics/campaigns", nil, "", map[string]string{"Cookie": "steward_session=" + staff})
		body = string(list.Body)
		if list.Status != 200 || !strings.Contains(body, "<code>newsletter/email/"+c.Slug()+"</code></th>\n      <td>10</td>\n      <td>10</td>\n      <td>10</td>\n      <td>fewer than 10</td>") ||
			strings.Contains(body, "google/organic") {
			t.Errorf("campaigns page: %d %s", list.Status, body)
		}
		// The next day three more readers come: that day is not listed (3 visitors), and
		// the total is the sum of the days shown: 10 visitors, 10 registrations.
		h.Clock.Advance(24 * time.Hour)
		for i := range 3 {
			visitor{fmt.Sprintf("203.0.113.%d", 50+i), chrome}.view(t, h, link)
		}
		flush(t, h)
		if err := h.App.Analytics().Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		h.KeepStaff(ctx, staffID)
		v = h.Do("GET", "/api/v1/staff/campaigns/"+c.ID+"/visits", nil, staff)
		next := dayString(analytics.DayOf(h.Clock.Now()))
		if v.Status != 200 || strings.Contains(string(v.Body), `"day":"`+next+`"`) || !strings.Contains(string(v.Body), `"days":[`+wantDay+`]`) ||
			!strings.Contains(string(v.Body), `"total":{"key":"newsletter/email/`+c.Slug()+`","source":"newsletter","medium":"email","campaign":"`+c.Slug()+
				`","visitors":10,"pageviews":10,"conversions":{"registration":10,"subscription":null}}`) {
			t.Errorf("campaign visits over two days: %d %s", v.Status, v.Body)
		}
		bad := apptest.Call(t, h.Client, h.URL, "GET", "/staff/analytics/campaigns?from=someday", nil, "", map[string]string{"Cookie": "steward_session=" + staff})
		if bad.Status != 400 || !strings.Contains(string(bad.Body), `id="f-from-error"`) {
			t.Errorf("campaigns page with a bad date: %d %s", bad.Status, bad.Body)
		}
	})
}
