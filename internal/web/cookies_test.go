package web_test

import (
	"net/http"
	"strings"
	"testing"

	"steward/internal/server"
)

// The cookie page lists every cookie of the register with its lifetime, says whether
// the operator declared the statistics cookieless and which sites send beacons, and
// ticks no optional category before a choice; the banner is on every other page until
// one.
func TestCookiePage(t *testing.T) {
	t.Parallel()
	for _, cookieless := range []string{"true", "false"} {
		s := start(t, "", "--analytics-sites", "shop.example.com", "--analytics-cookieless="+cookieless)
		c := s.client()
		p := c.get("/privacy/cookies")
		want := []string{"shop.example.com", `name="necessary" value="on" checked disabled`, "Persistent: 180 days", "Persistent: 10 minutes",
			"Session: deleted when you close the browser"}
		for _, e := range server.CookieRegister {
			want = append(want, "<code>"+e.Name)
		}
		if cookieless == "true" {
			want = append(want, `id="stats-cookieless"`)
		} else {
			want = append(want, `id="stats-consent"`)
		}
		p.want(t, "cookie page, cookieless="+cookieless, http.StatusOK, want...)
		for _, cat := range []string{"preferences", "statistics", "marketing"} {
			if !strings.Contains(p.body, `name="`+cat+`" value="on" aria-describedby`) {
				t.Errorf("%s is ticked or disabled before a choice", cat)
			}
		}
		p.lacks(t, "cookie page", `id="cookie-banner"`)
		c.get("/").want(t, "home", http.StatusOK, `id="cookie-banner"`, `value="accept" id="cookie-accept"`, `value="reject" id="cookie-reject"`)
	}
}
