package analytics

import (
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of what is stored of a path, a referrer, a name and the properties of an event.
const (
	MaxPath      = 256 // bytes kept of a path or a referrer, after cleaning
	MaxInputURL  = 2048
	MaxName      = 64
	MaxProps     = 8
	MaxPropKey   = 32
	MaxPropValue = 100
)

// Network is the client's address truncated to its network: a.b.c.0/24 for IPv4,
// the first 48 bits for IPv6 (an IPv4 address mapped into IPv6 is read as IPv4). An
// address that does not parse is "".
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// CleanPath is the path as it is stored: the query and fragment dropped, every segment
// that holds an address replaced by ":email" and every segment that looks like an id or a
// token (six digits or more, a UUID, a long mix of letters and digits or of cases) by
// ":id", and the whole cut to MaxPath bytes.
func CleanPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	// Most paths keep every segment: those are kept as they came, without copies.
	keep := true
	for rest := p; keep; {
		seg, after, more := strings.Cut(rest, "/")
		keep = cleanSegment(seg) == seg
		if !more {
			break
		}
		rest = after
	}
	if keep {
		return cut(p, MaxPath)
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = cleanSegment(s)
	}
	return cut(strings.Join(segs, "/"), MaxPath)
}

// cleanSegment replaces a segment that names someone by its placeholder.
func cleanSegment(s string) string {
	if s == "" {
		return s
	}
	d, err := url.PathUnescape(s)
	if err != nil {
		d = s
	}
	if strings.Contains(d, "@") {
		return ":email"
	}
	if looksLikeID(d) {
		return ":id"
	}
	if !utf8.ValidString(d) {
		return ":id"
	}
	return s
}

// looksLikeID reports whether s looks like a number long enough to name someone (an id,
// a phone or card number), a UUID, or a token: at least 16 characters switching
// often between letters and digits or between cases.
func looksLikeID(s string) bool {
	digits, switches := 0, 0
	var prev rune
	for i, r := range s {
		if unicode.IsDigit(r) {
			digits++
		}
		if i > 0 && classOf(prev) != 0 && classOf(r) != 0 && classOf(prev) != classOf(r) {
			switches++
		}
		prev = r
	}
	if digits >= 6 {
		return true
	}
	return len(s) >= 16 && switches >= 6
}

// classOf is 1 for a digit, 2 for a lower-case letter, 3 for an upper-case one, 0 else.
func classOf(r rune) int {
	switch {
	case unicode.IsDigit(r):
		return 1
	case unicode.IsLower(r):
		return 2
	case unicode.IsUpper(r):
		return 3
	}
	return 0
}

// CleanURL is a referrer or a link's target as it is stored: host and cleaned path,
// without scheme, user, port, query or fragment. ok is false when raw is not an
// absolute http(s) URL.
func CleanURL(raw string) (clean string, ok bool) {
	if raw == "" {
		return "", true
	}
	if len(raw) > MaxInputURL {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, "@") {
		return "", false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return cut(host+CleanPath(p), MaxPath), true
}

// cleanValue is a name or a property's value as stored: an address becomes ":email",
// an id or token ":id", the rest is cut to max bytes.
func cleanValue(s string, max int) string {
	if strings.Contains(s, "@") {
		return ":email"
	}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '/' || r == '=' || r == '&' || r == '?' }) {
		if looksLikeID(f) {
			return ":id"
		}
	}
	return cut(s, max)
}

// cut shortens s to at most n bytes, at a character's boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// campaignOf keeps the campaign parameters of a page's query (utm_source, utm_medium,
// utm_campaign), cleaned, as a query string; "" when there are none.
func campaignOf(rawPath string) string {
	i := strings.IndexByte(rawPath, '?')
	if i < 0 {
		return ""
	}
	q := rawPath[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return ""
	}
	out := url.Values{}
	for _, k := range []string{"utm_source", "utm_medium", "utm_campaign"} {
		if v := vals.Get(k); v != "" {
			out.Set(k, cleanValue(v, 64))
		}
	}
	return out.Encode()
}
