package analytics

import "strings"

// families are the browser families the request log and events keep, each found by the
// token its user agent carries, in the order that tells them apart: Edge and Opera say
// "Chrome" too, Chrome says "Safari", and in-app and minor browsers name the engine they
// are built on. A parser with the full tables (github.com/medama-io/go-useragent, tried
// first) holds about 9 MiB of memory for names Steward does not keep; a family is
// enough for operating the site and for the statistics.
var families = []struct{ token, family string }{
	{"edg/", "Edge"}, {"edge/", "Edge"}, {"edgios/", "Edge"}, {"edga/", "Edge"},
	{"opr/", "Opera"}, {"opera", "Opera"},
	{"samsungbrowser/", "Samsung Browser"},
	{"yabrowser/", "Yandex Browser"},
	{"vivaldi/", "Vivaldi"},
	{"firefox/", "Firefox"}, {"fxios/", "Firefox"},
	{"crios/", "Chrome"}, {"chrome/", "Chrome"}, {"chromium/", "Chrome"},
	{"msie ", "Internet Explorer"}, {"trident/", "Internet Explorer"},
	{"safari/", "Safari"},
}

// botWords are what a robot's user agent says of itself.
var botWords = []string{"bot", "crawl", "spider", "slurp", "curl/", "wget/", "python-", "go-http-client", "java/", "libwww",
	"httpclient", "scrapy", "headless", "phantomjs", "lighthouse", "preview", "monitor", "uptime", "facebookexternalhit",
	"bingpreview", "feedfetcher", "mediapartners"}

// parseAgent is a user agent's browser family ("" when none is known) and whether it
// is a robot: it names itself as one, or gives no user agent at all.
func parseAgent(ua string) (family string, bot bool) {
	if strings.TrimSpace(ua) == "" {
		return "", true
	}
	l := strings.ToLower(ua)
	for _, w := range botWords {
		if strings.Contains(l, w) {
			return "", true
		}
	}
	if !strings.HasPrefix(l, "mozilla/") && !strings.HasPrefix(l, "opera") {
		return "", false
	}
	for _, f := range families {
		if strings.Contains(l, f.token) {
			return f.family, false
		}
	}
	return "", false
}
