package app_test

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/server"
)

// cookieRecorder is a transport that keeps every Set-Cookie the server answers.
type cookieRecorder struct {
	mu  sync.Mutex
	set []recordedCookie
}

type recordedCookie struct {
	route string
	raw   string
}

func (c *cookieRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		for _, v := range resp.Header.Values("Set-Cookie") {
			c.set = append(c.set, recordedCookie{r.Method + " " + r.URL.Path, v})
		}
		c.mu.Unlock()
	}
	return resp, err
}

// Every cookie Steward sets is in the cookie register, with the lifetime the register
// declares: the test drives the flows that set cookies (registration, confirmation
// mail sent again, password reset asked, login, the banner's choice, the member's
// choice through the API, logout) and reads every Set-Cookie. Each entry of the
// register is seen at least once, so the register is not a list of cookies that no
// longer exist either.
func TestCookieRegister(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		rec := &cookieRecorder{}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Transport: rec, Jar: jar, Timeout: 30 * time.Second}
		post := func(path string, form url.Values) {
			t.Helper()
			resp, err := c.PostForm(h.URL+path, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST %s: %d", path, resp.StatusCode)
			}
		}
		get := func(path string) {
			t.Helper()
			resp, err := c.Get(h.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		get("/")
		get("/privacy/cookies")
		if len(rec.set) != 0 {
			t.Fatalf("pages opened before any choice set cookies: %v", rec.set)
		}
		const email, pw = "cookie.jar@example.com", "correct horse battery 9"
		post("/register", url.Values{"email": {email}, "password": {pw}, "name": {"Cookie Jar"}, "birthdate": {"1980-01-01"}, "country": {"DE"}})
		tok := h.WaitLink(email, "/verify?token=")
		post("/verify", url.Values{"token": {tok}})
		post("/verify/resend", url.Values{"email": {email}})
		post("/password/forgot", url.Values{"email": {email}})
		post("/login", url.Values{"email": {email}, "password": {pw}})
		post("/privacy/cookies", url.Values{"choice": {"reject"}, "from": {"banner"}, "return": {"/"}})
		post("/privacy/cookies", url.Values{"choice": {"save"}, "statistics": {"on"}})
		var session string
		for _, ck := range jar.Cookies(mustURL(t, h.URL)) {
			if ck.Name == server.CookieName {
				session = ck.Value
			}
		}
		if r := h.Do("PUT", "/api/v1/me/cookies", map[string]bool{"preferences": true, "statistics": true, "marketing": false}, session); r.Status != 200 {
			t.Fatalf("PUT /api/v1/me/cookies: %d %s", r.Status, r.Body)
		}
		post("/logout", nil)

		seen := map[string]bool{}
		for _, s := range rec.set {
			ck, err := http.ParseSetCookie(s.raw)
			if err != nil {
				t.Fatalf("%s: Set-Cookie %q: %v", s.route, s.raw, err)
			}
			entry, ok := server.CookieOf(ck.Name)
			if !ok {
				t.Errorf("%s sets cookie %q, which the cookie register does not list", s.route, ck.Name)
				continue
			}
			seen[entry.Name] = true
			if ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
				continue // a deletion
			}
			switch {
			case entry.Lifetime == 0 && (ck.MaxAge != 0 || !ck.Expires.IsZero()):
				t.Errorf("%s: %s is declared a session cookie, but is set with Max-Age %d, Expires %v", s.route, ck.Name, ck.MaxAge, ck.Expires)
			case entry.Lifetime != 0 && time.Duration(ck.MaxAge)*time.Second != entry.Lifetime:
				t.Errorf("%s: %s is declared to live %v, but is set with Max-Age %d", s.route, ck.Name, entry.Lifetime, ck.MaxAge)
			}
			if ck.HttpOnly == entry.Script {
				t.Errorf("%s: %s HttpOnly=%v, but the register says page scripts may read it: %v", s.route, ck.Name, ck.HttpOnly, entry.Script)
			}
			if entry.Category != server.Necessary {
				t.Errorf("%s: %s is of category %s: Steward sets only strictly necessary cookies", s.route, ck.Name, entry.Category)
			}
		}
		for _, e := range server.CookieRegister {
			if !seen[e.Name] {
				t.Errorf("the register lists %s, but no flow set it", e.Name)
			}
		}
	})
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The choice cookie holds the choice and nothing else, and reads back only in its own
// version's format.
func TestCookieChoiceValue(t *testing.T) {
	for _, c := range []server.CookieChoice{server.AcceptAll, server.RejectAll, {Decided: true, Statistics: true}} {
		if got := server.ParseCookieChoice(c.Value()); got != c {
			t.Errorf("%s reads back as %+v, want %+v", c.Value(), got, c)
		}
	}
	if got := (server.CookieChoice{Decided: true, Statistics: true}).Value(); got != "v1.p0.s1.m0" {
		t.Errorf("value %q, want v1.p0.s1.m0", got)
	}
	for _, bad := range []string{"", "v2.p1.s1.m1", "v1.p1.s1", "v1.p1.s1.m1.x", "v1.p2.s1.m1", "v1.s1.p1.m1", "yes"} {
		if got := server.ParseCookieChoice(bad); got.Decided {
			t.Errorf("%q reads as a choice: %+v", bad, got)
		}
	}
}

// A member's choice in the banner, on the cookie page and through the API goes to the
// consent ledger too, each with its source and the request as evidence; a browser
// signal refuses statistics and marketing and is named in the evidence. GET
// /api/v1/me/cookies reads it back. Bad input names the field and records nothing.
func TestCookieChoiceLedger(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		id, tok := h.Member("ledger.cookies@example.com", "correct horse battery 9", nil)
		form := func(v url.Values, header map[string]string) apptest.Response {
			t.Helper()
			hd := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Cookie": server.CookieName + "=" + tok}
			for k, x := range header {
				hd[k] = x
			}
			return apptest.Call(t, noRedirect, h.URL, "POST", "/privacy/cookies", v.Encode(), "", hd)
		}
		cookieState := func() map[string]consent.Choice {
			t.Helper()
			cs, _, err := h.App.Consent().Choices(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]consent.Choice{}
			for _, c := range cs {
				if c.Purpose.Cookies != "" {
					out[c.Purpose.Cookies] = c
				}
			}
			return out
		}
		if got := h.Do("GET", "/api/v1/me/cookies", nil, tok).JSON(); got["decided"] != false {
			t.Errorf("before a choice: %v", got)
		}
		r := form(url.Values{"choice": {"accept"}, "from": {"banner"}, "return": {"/account"}}, nil)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Fatalf("banner accept: %d to %q", r.Status, r.Header.Get("Location"))
		}
		if ck := r.Header.Get("Set-Cookie"); !strings.HasPrefix(ck, server.ChoiceCookie+"=v1.p1.s1.m1;") {
			t.Errorf("banner accept sets %q", ck)
		}
		for _, cat := range consent.CookieCategories {
			if c := cookieState()[cat]; c.Decision != consent.Granted || c.Source != consent.SourceCookieBanner {
				t.Errorf("after accept, %s: %s through %s", cat, c.Decision, c.Source)
			}
		}
		r = form(url.Values{"choice": {"save"}, "preferences": {"on"}, "return": {"https://evil.example/"}}, nil)
		if r.Header.Get("Location") != "/privacy/cookies?saved=1" {
			t.Errorf("a return to another site goes to %q", r.Header.Get("Location"))
		}
		st := cookieState()
		if st["preferences"].Decision != consent.Granted || st["statistics"].Decision != consent.Withdrawn ||
			st["marketing"].Decision != consent.Withdrawn || st["statistics"].Source != consent.SourceCookiePage {
			t.Errorf("after the page's save: %+v", st)
		}
		got := h.Do("GET", "/api/v1/me/cookies", nil, tok).JSON()
		if fmt.Sprint(got) != "map[decided:true marketing:false preferences:true statistics:false]" {
			t.Errorf("GET /api/v1/me/cookies: %v", got)
		}
		// Accept all under Global Privacy Control: statistics and marketing stay refused.
		put := apptest.Call(t, h.Client, h.URL, "PUT", "/api/v1/me/cookies", map[string]bool{"preferences": true, "statistics": true, "marketing": true},
			tok, map[string]string{"Sec-GPC": "1"})
		if put.Status != 200 || fmt.Sprint(put.JSON()) != "map[decided:true marketing:false preferences:true signal:Global Privacy Control (Sec-GPC: 1) statistics:false]" {
			t.Errorf("PUT under GPC: %d %s", put.Status, put.Body)
		}
		hist, err := h.App.Consent().History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var apiEvents int
		for _, e := range hist {
			if e.Source == consent.SourceAPI {
				apiEvents++
				t.Errorf("under GPC the API recorded %s %s: nothing changed", e.Purpose, e.Decision)
			}
		}
		// Without the signal, the API's grant is recorded with its source.
		if r := h.Do("PUT", "/api/v1/me/cookies", map[string]bool{"preferences": true, "statistics": true, "marketing": false}, tok); r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		if c := cookieState()["statistics"]; c.Decision != consent.Granted || c.Source != consent.SourceAPI {
			t.Errorf("after the API's grant: %s through %s", c.Decision, c.Source)
		}
		// The banner under DNT: statistics withdrawn again, the signal in the evidence.
		form(url.Values{"choice": {"accept"}, "from": {"banner"}}, map[string]string{"DNT": "1"})
		hist, err = h.App.Consent().History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if e := hist[0]; e.Purpose != "cookies_statistics" || e.Decision != consent.Withdrawn || e.Evidence["signal"] != "Do Not Track (DNT: 1)" || e.Evidence["ip"] == "" {
			t.Errorf("the newest event: %+v", e)
		}
		before := len(hist)
		for _, bad := range []struct {
			body  any
			field string
		}{
			{map[string]any{"preferences": true, "statistics": true}, "marketing"},
			{map[string]any{"preferences": "yes", "statistics": true, "marketing": true}, "preferences"},
			{map[string]any{"preferences": true, "statistics": true, "marketing": true, "sale": true}, "sale"},
		} {
			r := h.Do("PUT", "/api/v1/me/cookies", bad.body, tok)
			if f, _ := r.ErrorField(); r.Status != 400 || f != bad.field {
				t.Errorf("PUT %v: %d %s, want 400 naming %s", bad.body, r.Status, r.Body, bad.field)
			}
		}
		if r := form(url.Values{"choice": {"maybe"}}, nil); r.Status != 400 || !strings.Contains(string(r.Body), "accept, reject or save") {
			t.Errorf("choice=maybe: %d", r.Status)
		}
		if hist, _ = h.App.Consent().History(t.Context(), id); len(hist) != before {
			t.Errorf("bad input recorded %d events", len(hist)-before)
		}
		// The cookie purposes are purposes like any other: listed with the member's
		// consents, and a decision has its signed receipt.
		cs := h.Do("GET", "/api/v1/me/consents", nil, tok)
		if !strings.Contains(string(cs.Body), `"key":"cookies_statistics"`) {
			t.Errorf("GET /api/v1/me/consents lacks the cookie purposes: %s", cs.Body)
		}
		if rc := h.Do("GET", fmt.Sprintf("/api/v1/me/consents/receipts/%d", hist[0].ID), nil, tok); rc.Status != 200 || !strings.Contains(string(rc.Body), "cookies_statistics") {
			t.Errorf("receipt of a cookie decision: %d %s", rc.Status, rc.Body)
		}
		// A visitor's choice goes to the cookie only.
		v := apptest.Call(t, noRedirect, h.URL, "POST", "/privacy/cookies", "choice=reject&from=banner&return=/", "",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if v.Status != http.StatusSeeOther || !strings.HasPrefix(v.Header.Get("Set-Cookie"), server.ChoiceCookie+"=v1.p0.s0.m0;") {
			t.Errorf("a visitor's reject: %d %q", v.Status, v.Header.Get("Set-Cookie"))
		}
	})
}

// Statistics beacons count only where the visitor's choice allows, on both engines:
// without a choice only where the operator declared them cookieless; with a grant
// (the event's consent field, the pixel's c, or Steward's own choice cookie) always;
// never with a refusal, Sec-GPC or DNT, cookieless or not. An unknown consent value
// is a 400 naming the field.
func TestBeaconChoice(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		for _, cookieless := range []bool{false, true} {
			h := apptest.Start(t, dbURL, "--analytics-sites", "example.com", fmt.Sprintf("--analytics-cookieless=%v", cookieless))
			cases := []struct {
				name    string
				consent string
				header  map[string]string
				counted bool
			}{
				{"undecided", "", nil, cookieless},
				{"granted", "granted", nil, true},
				{"refused", "refused", nil, false},
				{"granted-gpc", "granted", map[string]string{"Sec-GPC": "1"}, false},
				{"granted-dnt", "granted", map[string]string{"DNT": "1"}, false},
				{"undecided-gpc", "", map[string]string{"Sec-GPC": "1"}, false},
				{"cookie-granted", "", map[string]string{"Cookie": "steward_cookies=v1.p0.s1.m0"}, true},
				{"cookie-refused", "", map[string]string{"Cookie": "steward_cookies=v1.p1.s0.m1"}, false},
				{"cookie-refused-event-granted", "granted", map[string]string{"Cookie": "steward_cookies=v1.p1.s0.m1"}, false},
				{"cookie-old-version", "", map[string]string{"Cookie": "steward_cookies=v0.p1.s1.m1"}, cookieless},
			}
			// Both runs share the engine's analytics store: each counts under its own paths.
			e, px := fmt.Sprintf("/e%v/", cookieless), fmt.Sprintf("/px%v/", cookieless)
			for _, c := range cases {
				body := map[string]string{"site": "example.com", "path": e + c.name}
				if c.consent != "" {
					body["consent"] = c.consent
				}
				if r := beacon(t, h, body, c.header); r.Status != 204 {
					t.Fatalf("%s: %d %s", c.name, r.Status, r.Body)
				}
				q := "/b.gif?s=example.com&p=" + px + c.name
				if c.consent != "" {
					q += "&c=" + c.consent
				}
				hd := map[string]string{"User-Agent": chrome}
				for k, v := range c.header {
					hd[k] = v
				}
				if r := apptest.Call(t, h.Client, h.URL, "GET", q, nil, "", hd); r.Status != 200 {
					t.Fatalf("pixel %s: %d %s", c.name, r.Status, r.Body)
				}
			}
			bad := beacon(t, h, map[string]string{"site": "example.com", "path": "/", "consent": "maybe"}, nil)
			if f, code := bad.ErrorField(); bad.Status != 400 || f != "consent" || code != "invalid" {
				t.Errorf("consent=maybe: %d %s %s", bad.Status, f, code)
			}
			pb := apptest.Call(t, h.Client, h.URL, "GET", "/b.gif?s=example.com&p=/&c=yes", nil, "", nil)
			if f, _ := pb.ErrorField(); pb.Status != 400 || f != "consent" {
				t.Errorf("pixel c=yes: %d %s", pb.Status, pb.Body)
			}
			flush(t, h)
			got := queryRows(t, h.App.Analytics().DB(), `SELECT path FROM events WHERE path LIKE $1 OR path LIKE $2 ORDER BY path`, e+"%", px+"%")
			var want []string
			for _, c := range cases {
				if c.counted {
					want = append(want, e+c.name, px+c.name)
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("cookieless=%v: counted %v, want %v", cookieless, got, want)
			}
			banner := apptest.Call(t, h.Client, h.URL, "GET", "/static/steward-consent.js", nil, "", nil)
			if banner.Status != 200 || banner.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" ||
				banner.Header.Get("Cache-Control") != "public, max-age=3600" || !strings.HasPrefix(banner.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("the banner script: %d %v", banner.Status, banner.Header)
			}
			js := string(apptest.Call(t, h.Client, h.URL, "GET", "/static/steward-analytics.js", nil, "", nil).Body)
			if !strings.Contains(js, fmt.Sprintf("/*cookieless*/ %v", cookieless)) {
				t.Errorf("cookieless=%v: the script does not say so", cookieless)
			}
			h.Close()
		}
	})
}
