package analytics

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// each runs fn on a fresh analytics store of every engine.
func each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for dialect, u := range storetest.Engines(t) {
		t.Run(string(dialect), func(t *testing.T) {
			au, err := StoreURL(u, "")
			if err != nil {
				t.Fatal(err)
			}
			db, err := OpenStore(context.Background(), au)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			fn(t, db)
		})
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStoreURL(t *testing.T) {
	for _, c := range []struct{ main, override, want string }{
		{"sqlite:/data/steward.db", "", "sqlite:/data/analytics.db"},
		{"sqlite:/data/steward.db", "sqlite:/elsewhere/a.db", "sqlite:/elsewhere/a.db"},
		{"postgres://u@h/db?sslmode=disable", "", "postgres://u@h/db?search_path=analytics&sslmode=disable"},
		{"postgres://u@h/db?search_path=public", "", "postgres://u@h/db?search_path=analytics"},
		{"postgres://u@h/db?search_path=steward", "", "postgres://u@h/db?search_path=steward_analytics"},
	} {
		got, err := StoreURL(c.main, c.override)
		if err != nil || got != c.want {
			t.Errorf("StoreURL(%q, %q) = %q, %v; want %q", c.main, c.override, got, err, c.want)
		}
	}
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.77":             "203.0.113.0/24",
		"::ffff:198.51.100.9":      "198.51.100.0/24",
		"2001:db8:abcd:12:1:2:3:4": "2001:db8:abcd::/48",
		"fe80::1%eth0":             "fe80::/48",
		"not an address":           "",
	} {
		if got := Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}

// Paths and referrers that carry an address, a token or a long id are cut before
// storage; ordinary paths stay as they are.
func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                                           "/",
		"/pricing":                                    "/pricing",
		"/blog/2024/05/how-to-bake-a-pie":             "/blog/2024/05/how-to-bake-a-pie",
		"/iphone-15-review":                           "/iphone-15-review",
		"/search?q=jane@example.com&page=2":           "/search",
		"/users/jane@example.com/profile":             "/users/:email/profile",
		"/users/jane%40example.com":                   "/users/:email",
		"/orders/1234567":                             "/orders/:id",
		"/call/+44-20-7946-0958":                      "/call/:id",
		"/files/3f2b8c1e-9d4a-4b7e-8f00-1a2b3c4d5e6f": "/files/:id",
		"/reset/kJ8hG2fD9sA7qW3eR5tY":                 "/reset/:id",
		"/verify/AbCdEfGhIjKlMnOpQrSt":                "/verify/:id",
		"/a#frag":                                     "/a",
	} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	long := "/" + strings.Repeat("abc/", 200)
	if got := CleanPath(long); len(got) > MaxPath {
		t.Errorf("a path of %d bytes was kept at %d, over %d", len(long), len(got), MaxPath)
	}
	for in, want := range map[string]string{
		"":                                   "",
		"https://News.example.org/a/b?x=1#y": "news.example.org/a/b",
		"https://user:pw@example.org:8443/t/123456789": "example.org/t/:id",
		"http://example.org":                           "example.org/",
	} {
		got, ok := CleanURL(in)
		if !ok || got != want {
			t.Errorf("CleanURL(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"javascript:alert(1)", "/relative", "ftp://example.org/", "https://" + strings.Repeat("a", 3000)} {
		if _, ok := CleanURL(in); ok {
			t.Errorf("CleanURL(%q) accepted", in)
		}
	}
}

func newService(t *testing.T, db *store.DB, cfg Config, now func() time.Time) *Service {
	if cfg.Sites == nil {
		cfg.Sites = []string{"example.com"}
	}
	s := New(db, cfg, now, quiet())
	return s
}

// Bad input is refused with the field at fault, and nothing is stored; what is stored
// is cleaned.
func TestRecordInput(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{Cookieless: true}, time.Now)
		c := Client{IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"}
		bad := []struct {
			e     Event
			field string
		}{
			{Event{Path: "/"}, "site"},
			{Event{Site: "evil.example", Path: "/"}, "site"},
			{Event{Site: "example.com", Kind: "purchase", Path: "/"}, "kind"},
			{Event{Site: "example.com", Path: "pricing"}, "path"},
			{Event{Site: "example.com", Path: "/" + strings.Repeat("a", MaxInputURL)}, "path"},
			{Event{Site: "example.com", Path: "/", Referrer: "not a url"}, "referrer"},
			{Event{Site: "example.com", Kind: Outbound, Path: "/"}, "name"},
			{Event{Site: "example.com", Kind: Custom, Path: "/"}, "name"},
			{Event{Site: "example.com", Kind: Custom, Path: "/", Name: strings.Repeat("n", MaxName+1)}, "name"},
			{Event{Site: "example.com", Path: "/", Name: "x"}, "name"},
			{Event{Site: "example.com", Kind: Custom, Path: "/", Name: "x", Props: map[string]string{"Bad Key": "v"}}, "props"},
			{Event{Site: "example.com", Kind: Custom, Path: "/", Name: "x", Props: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9"}}, "props"},
			{Event{Site: "example.com", Kind: Custom, Path: "/", Name: "x", Props: map[string]string{"plan": strings.Repeat("v", MaxPropValue+1)}}, "props.plan"},
		}
		for _, b := range bad {
			err := s.Record(ctx, b.e, c, Signals{})
			e, ok := apperr.As(err)
			if !ok || e.Field != b.field {
				t.Errorf("Record(%+v) = %v, want an error on %q", b.e, err, b.field)
			}
		}
		good := []Event{
			{Site: "Example.com", Path: "/users/jane@example.com?utm_source=news&utm_campaign=spring&token=abcdef0123456789abcdef", Referrer: "https://search.example.net/q/jane.doe@example.org"},
			{Site: "example.com", Kind: Outbound, Path: "/a", Name: "https://partner.example.org/x/99999999?ref=jane@example.com"},
			{Site: "example.com", Kind: Custom, Path: "/a", Name: "signup", Props: map[string]string{"plan": "pro", "who": "jane@example.com", "ref": "tok_AbC1dE2fG3hI4jK5"}},
		}
		for _, e := range good {
			if err := s.Record(ctx, e, c, Signals{}); err != nil {
				t.Fatalf("Record(%+v): %v", e, err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `SELECT site, kind, path, referrer, name, props, campaign FROM events ORDER BY kind DESC`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var f [7]string
			if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]); err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.Join(f[:], " | "))
		}
		want := []string{
			"example.com | pageview | /users/:email | search.example.net/q/:email |  |  | utm_campaign=spring&utm_source=news",
			"example.com | outbound | /a |  | partner.example.org/x/:id |  | ",
			"example.com | event | /a |  | signup | {\"plan\":\"pro\",\"ref\":\":id\",\"who\":\":email\"} | ",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// Sec-GPC, DNT and a refusal are never counted; without a choice, only where the
// operator declared the statistics cookieless.
func TestCounts(t *testing.T) {
	for _, c := range []struct {
		cookieless bool
		sig        Signals
		want       bool
	}{
		{true, Signals{}, true},
		{false, Signals{}, false},
		{true, Signals{GPC: true}, false},
		{true, Signals{DNT: true}, false},
		{true, Signals{Choice: Refused}, false},
		{false, Signals{Choice: Granted}, true},
		{false, Signals{Choice: Granted, GPC: true}, false},
	} {
		s := &Service{cfg: Config{Cookieless: c.cookieless}}
		if got := s.Counts(c.sig); got != c.want {
			t.Errorf("cookieless=%v %+v: counts %v, want %v", c.cookieless, c.sig, got, c.want)
		}
	}
}

// A full buffer refuses events (ErrFull, a 503) rather than growing, and drops request
// log lines, counted; once written, it takes events again.
func TestBufferFull(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{Cookieless: true, Buffer: 16}, time.Now) // not started: nothing writes
		c := Client{IP: "203.0.113.7", UserAgent: "Mozilla/5.0"}
		for i := range 16 {
			if err := s.Record(ctx, Event{Site: "example.com", Path: "/"}, c, Signals{}); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		err := s.Record(ctx, Event{Site: "example.com", Path: "/"}, c, Signals{})
		if !errors.Is(err, ErrFull) || apperr.KindOf(err) != apperr.Unavailable {
			t.Fatalf("event 17 into a buffer of 16: %v, want ErrFull", err)
		}
		s.LogRequest(Request{At: time.Now(), Method: "GET", Path: "/", Status: 200})
		if s.Dropped() != 1 {
			t.Errorf("dropped %d log lines, want 1", s.Dropped())
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, Event{Site: "example.com", Path: "/"}, c, Signals{}); err != nil {
			t.Fatalf("after a write: %v", err)
		}
		if err := s.buf.close(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 17 {
			t.Errorf("%d events stored, want 17", n)
		}
	})
}

// A write that fails keeps its rows: the next one writes them.
func TestBufferKeepsRowsOnFailure(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenStore(context.Background(), "sqlite:"+filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := newService(t, db, Config{Cookieless: true}, time.Now)
	ctx := context.Background()
	if err := s.Record(ctx, Event{Site: "example.com", Path: "/"}, Client{IP: "203.0.113.7"}, Signals{}); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Flush(cancelled); err == nil {
		t.Fatal("a write on a cancelled context succeeded")
	}
	if s.buf.waiting() != 1 {
		t.Fatalf("%d rows waiting after a failed write, want 1", s.buf.waiting())
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d events, %v; want 1", n, err)
	}
}

// Two nodes on one store hash a visitor alike (they share the day's salt through it),
// and a visitor is another number the next day.
func TestNodesShareTheSalt(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now()
		clock := func() time.Time { return now }
		a := newService(t, db, Config{Cookieless: true}, clock)
		b := newService(t, db, Config{Cookieless: true}, clock)
		c := Client{IP: "203.0.113.7", UserAgent: "Mozilla/5.0"}
		ra, err := a.prepare(ctx, Event{Site: "example.com", Path: "/"}, c)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.prepare(ctx, Event{Site: "example.com", Path: "/"}, c)
		if err != nil {
			t.Fatal(err)
		}
		if ra.visitor != rb.visitor {
			t.Errorf("two nodes: visitors %d and %d, want one", ra.visitor, rb.visitor)
		}
		other, err := a.prepare(ctx, Event{Site: "example.com", Path: "/"}, Client{IP: "203.0.113.8", UserAgent: "Mozilla/5.0"})
		if err != nil || other.visitor == ra.visitor {
			t.Errorf("another address is the same visitor (%v)", err)
		}
		now = now.Add(24 * time.Hour)
		next, err := b.prepare(ctx, Event{Site: "example.com", Path: "/"}, c)
		if err != nil || next.visitor == ra.visitor {
			t.Errorf("the next day the visitor is the same number (%v)", err)
		}
	})
}

// User agents are read as a browser family, and robots as robots.
func TestParseAgent(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36":                                          "Chrome",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0":                  "Edge",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/115.0.0.0":                  "Opera",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:131.0) Gecko/20100101 Firefox/131.0":                                                            "Firefox",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1":        "Safari",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/130.0.6723.90 Mobile/15E148 Safari/604.1": "Chrome",
		"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36":     "Samsung Browser",
		"Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko":                                                                                 "Internet Explorer",
		"SomethingElse/1.0": "",
	} {
		if got, bot := parseAgent(ua); got != want || bot {
			t.Errorf("parseAgent(%q) = %q, %v; want %q, not a robot", ua, got, bot, want)
		}
	}
	for _, ua := range []string{"", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.5.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/130.0.0.0 Safari/537.36",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "python-requests/2.32.3", "Go-http-client/1.1"} {
		if _, bot := parseAgent(ua); !bot {
			t.Errorf("parseAgent(%q) is not a robot", ua)
		}
	}
}

// The day's key reuses HMAC states: every answer is still the HMAC of the site, the
// address and the user agent under the salt, whatever the hasher hashed before it,
// and another salt gives another visitor.
func TestDayKeyVisitor(t *testing.T) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	want := func(salt []byte, site, ip, ua string) int64 {
		m := hmac.New(sha256.New, salt)
		m.Write([]byte(site + "\x00" + ip + "\x00" + ua))
		return int64(binary.BigEndian.Uint64(m.Sum(nil)[:8]))
	}
	k := newDayKey(salt)
	long := strings.Repeat("Mozilla/5.0 ", 200) // past the buffer kept in the pool
	cases := [][3]string{
		{"example.com", "203.0.113.7", "Mozilla/5.0 Firefox/130.0"},
		{"example.com", "203.0.113.7", long},
		{"example.com", "2001:db8::1", ""},
		{"shop.example.com", "203.0.113.7", "Mozilla/5.0 Firefox/130.0"},
	}
	for round := range 3 {
		for _, c := range cases {
			if got, w := k.visitor(c[0], c[1], c[2]), want(salt, c[0], c[1], c[2]); got != w {
				t.Fatalf("round %d: visitor(%q, %q, %.20q) = %d, want %d", round, c[0], c[1], c[2], got, w)
			}
		}
	}
	// The separator keeps fields apart: "ab"+"c" is not "a"+"bc".
	if k.visitor("ab", "c", "") == k.visitor("a", "bc", "") {
		t.Error("two different (site, address) pairs hash alike")
	}
	other := newDayKey([]byte("another day's salt, 32 bytes...."))
	if other.visitor(cases[0][0], cases[0][1], cases[0][2]) == k.visitor(cases[0][0], cases[0][1], cases[0][2]) {
		t.Error("two salts give the same visitor")
	}
}
