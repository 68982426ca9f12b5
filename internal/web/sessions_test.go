package web

import (
	"strings"
	"testing"
)

func TestBrowser(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0":     "Edge on Windows",
		"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36":                  "Chrome on Android",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/604.1": "Safari on iOS",
		"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0":                                                    "Firefox on Linux",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 OPR/105":    "Opera on macOS",
		"curl/8.5.0":              "curl",
		"Mozilla/5.0 (X11; CrOS)": "A browser on ChromeOS",
		"":                        "Unknown browser",
		"Bot":                     "Bot",
	} {
		if got := browser(ua); got != want {
			t.Errorf("browser(%q) = %q, want %q", ua, got, want)
		}
	}
	long := strings.Repeat("é", 30) // 60 bytes, nothing known
	if got := browser(long); got != strings.Repeat("é", 20)+"…" {
		t.Errorf("a long unknown header = %q", got)
	}
}
