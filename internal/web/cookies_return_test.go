package web

import "testing"

// The banner goes back only to a path of this site: never to another host, however
// the path is written (browsers drop tabs and line breaks from a URL).
func TestCookieReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"/account?x=1":       "/account?x=1",
		"/":                  "/",
		"":                   "/privacy/cookies?saved=1",
		"https://evil.test/": "/privacy/cookies?saved=1",
		"//evil.test/":       "/privacy/cookies?saved=1",
		`/\evil.test/`:       "/privacy/cookies?saved=1",
		"/\t/evil.test/":     "/privacy/cookies?saved=1",
		"/\n/evil.test/":     "/privacy/cookies?saved=1",
		"/a\x00b":            "/privacy/cookies?saved=1",
		`/./\evil.test`:      "/privacy/cookies?saved=1",
	} {
		if got := returnTo(in); got != want {
			t.Errorf("returnTo(%q) = %q, want %q", in, got, want)
		}
	}
}
