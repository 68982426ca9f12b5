package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"steward/internal/analytics"
	"steward/internal/app"
	"steward/internal/app/apptest"
	"steward/internal/config"
	"steward/internal/store"
)

const chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"

var statsFlags = []string{"--analytics-sites", "example.com,shop.example.com", "--analytics-cookieless=true"}

// flush writes what the analytics buffer holds.
func flush(t *testing.T, h *apptest.Harness) {
	t.Helper()
	if err := h.App.Analytics().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// queryRows reads a query of the analytics store as lines of " | "-joined values.
func queryRows(t *testing.T, db *store.DB, q string, args ...any) []string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func beacon(t *testing.T, h *apptest.Harness, body any, header map[string]string) apptest.Response {
	t.Helper()
	hd := map[string]string{"User-Agent": chrome}
	for k, v := range header {
		hd[k] = v
	}
	return apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/events", body, "", hd)
}

// Page beacons are taken from the script (JSON, or text/plain as sendBeacon sends) and
// the pixel, cleaned and counted; the visitor's refusal signals, bad input, unknown
// sites and a wrong origin are not.
func TestBeacons(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, statsFlags...)
		ok := []struct {
			body   any
			header map[string]string
		}{
			{map[string]any{"site": "example.com", "kind": "pageview", "path": "/pricing?utm_source=news", "referrer": "https://search.example.net/?q=steward"}, nil},
			{`{"site":"example.com","path":"/pricing"}`, map[string]string{"Content-Type": "text/plain;charset=UTF-8",
				"Origin": "https://example.com", "Sec-Fetch-Site": "cross-site"}}, // sendBeacon from the operator's site
			{map[string]any{"site": "example.com", "kind": "outbound", "path": "/pricing", "name": "https://partner.example.org/offer"}, nil},
			{map[string]any{"site": "example.com", "kind": "event", "path": "/signup", "name": "signup", "props": map[string]string{"plan": "pro"}}, nil},
			{map[string]any{"site": "example.com", "path": "/pricing"}, map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}},
			// Not counted, but not refused either: the visitor said no.
			{map[string]any{"site": "example.com", "path": "/gpc"}, map[string]string{"Sec-GPC": "1"}},
			{map[string]any{"site": "example.com", "path": "/dnt"}, map[string]string{"DNT": "1"}},
		}
		for _, c := range ok {
			if r := beacon(t, h, c.body, c.header); r.Status != 204 {
				t.Fatalf("event %v: %d %s, want 204", c.body, r.Status, r.Body)
			}
		}
		bad := []struct {
			body        any
			header      map[string]string
			status      int
			field, code string
		}{
			{map[string]any{"site": "spoofed.example", "path": "/"}, nil, 400, "site", "unknown_site"},
			{map[string]any{"site": "example.com", "path": "/"}, map[string]string{"Origin": "https://spoofed.example"}, 400, "site", "wrong_origin"},
			{map[string]any{"site": "example.com", "kind": "sale", "path": "/"}, nil, 400, "kind", "invalid"},
			{map[string]any{"site": "example.com", "path": "/", "user": "jane"}, nil, 400, "user", "unknown_field"},
			{`{"site": "example.com", "path": `, nil, 400, "", "malformed_json"},
			{`{"site":"example.com","path":"/` + strings.Repeat("a", analytics.MaxInputURL) + `"}`, nil, 400, "path", "invalid"},
			{`{"site":"example.com","path":"/","name":"` + strings.Repeat("a", 5000) + `"}`, nil, 413, "", "body_too_large"},
		}
		for _, b := range bad {
			r := beacon(t, h, b.body, b.header)
			field, code := r.ErrorField()
			if r.Status != b.status || field != b.field || code != b.code {
				t.Errorf("event %.80v: %d %s %s, want %d %s %s", b.body, r.Status, field, code, b.status, b.field, b.code)
			}
		}
		px := apptest.Call(t, h.Client, h.URL, "GET", "/b.gif?s=shop.example.com&p=/cart/jane%40example.com&r=https://mail.example.net/inbox", nil, "",
			map[string]string{"User-Agent": chrome})
		if px.Status != 200 || px.Header.Get("Content-Type") != "image/gif" || px.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
			t.Fatalf("pixel: %d %v", px.Status, px.Header)
		}
		if r := apptest.Call(t, h.Client, h.URL, "GET", "/b.gif?s=nowhere.example&p=/", nil, "", nil); r.Status != 400 {
			t.Errorf("pixel of an unknown site: %d, want 400", r.Status)
		}
		js := apptest.Call(t, h.Client, h.URL, "GET", "/static/steward-analytics.js", nil, "", nil)
		if js.Status != 200 || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") ||
			js.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" || !bytes.Contains(js.Body, []byte("sendBeacon")) {
			t.Errorf("script: %d %v", js.Status, js.Header)
		}
		flush(t, h)
		db := h.App.Analytics().DB()
		got := queryRows(t, db, `SELECT site, kind, path, referrer, name, props, campaign, browser, bot FROM events ORDER BY site, kind, bot, path`)
		want := []string{
			"example.com | event | /signup |  | signup | {\"plan\":\"pro\"} |  | Chrome | 0",
			"example.com | outbound | /pricing |  | partner.example.org/offer |  |  | Chrome | 0",
			"example.com | pageview | /pricing | search.example.net/ |  |  | utm_source=news | Chrome | 0",
			"example.com | pageview | /pricing |  |  |  |  | Chrome | 0",
			"example.com | pageview | /pricing |  |  |  |  |  | 1",
			"shop.example.com | pageview | /cart/:email | mail.example.net/inbox |  |  |  | Chrome | 0",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// One visitor (one address and browser) on each site, the robot counted apart.
		today := analytics.DayOf(h.Clock.Now())
		if err := h.App.Analytics().Rollup(context.Background(), today); err != nil {
			t.Fatal(err)
		}
		days, err := h.App.Analytics().Days(context.Background(), "example.com", today, today)
		if err != nil || len(days) != 1 {
			t.Fatalf("days: %v %v", days, err)
		}
		if d := days[0]; d.Visitors != 1 || d.Pageviews != 2 || d.Events != 2 || d.Bots != 1 {
			t.Errorf("rolled up %+v, want 1 visitor, 2 pageviews, 2 events, 1 robot", d)
		}
		pages, err := h.App.Analytics().TopPages(context.Background(), "example.com", today, 10)
		if err != nil || len(pages) != 1 || pages[0] != (analytics.Page{Path: "/pricing", Visitors: 1, Pageviews: 2}) {
			t.Errorf("top pages %+v %v", pages, err)
		}
	})
}

// Without the operator's declaration (and before the cookie banner records choices),
// beacons are checked and answered but not counted.
func TestBeaconsNeedDeclaration(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--analytics-sites", "example.com")
		if r := beacon(t, h, map[string]any{"site": "example.com", "path": "/"}, nil); r.Status != 204 {
			t.Fatalf("event: %d %s", r.Status, r.Body)
		}
		if r := beacon(t, h, map[string]any{"site": "example.com", "path": 7}, nil); r.Status != 400 {
			t.Fatalf("a bad event, not counted, is still refused: %d", r.Status)
		}
		flush(t, h)
		if got := queryRows(t, h.App.Analytics().DB(), `SELECT count(*) FROM events`); got[0] != "0" {
			t.Errorf("%s events counted without a declaration or a choice", got[0])
		}
	})
}

// A flood from one address is refused (429) while another address is served.
func TestBeaconFlood(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		// One beacon a minute, a burst of 10: the loop below cannot earn another token
		// however slow the machine.
		h := apptest.Start(t, dbURL, append(statsFlags, "--rate-limits=true", "--analytics-rate", "1", "--trust-proxy=true")...)
		from := func(ip string) int {
			return beacon(t, h, map[string]any{"site": "example.com", "path": "/"}, map[string]string{"X-Forwarded-For": ip}).Status
		}
		accepted := 0
		for range 30 {
			if from("198.51.100.1") == 204 {
				accepted++
			}
		}
		if accepted != 10 {
			t.Errorf("%d of 30 beacons from one address accepted at once, want the burst of 10", accepted)
		}
		if s := from("198.51.100.1"); s != 429 {
			t.Errorf("flooding address: %d, want 429", s)
		}
		if s := from("198.51.100.2"); s != 204 {
			t.Errorf("another address during the flood: %d, want 204", s)
		}
		h.Clock.Advance(time.Minute)
		if s := from("198.51.100.1"); s != 204 {
			t.Errorf("the flooding address a minute later: %d, want 204", s)
		}
	})
}

// The request log keeps the time, method, path without its query, status, size,
// duration, browser family and the client's /24; never the session, the member, the
// query or the address. It is purged after --request-log-days.
func TestRequestLog(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, "--request-log-days", "3")
		id, token := h.Member("logged@example.com", "correct horse battery", nil)
		r := apptest.Call(t, h.Client, h.URL, "GET", "/api/v1/me?token="+token+"&email=logged@example.com", nil, token, map[string]string{"User-Agent": chrome})
		if r.Status != 200 {
			t.Fatalf("me: %d", r.Status)
		}
		apptest.Call(t, h.Client, h.URL, "GET", "/api/v1/members/"+id, nil, "", map[string]string{"User-Agent": chrome})
		flush(t, h)
		db := h.App.Analytics().DB()
		got := queryRows(t, db, `SELECT method, path, status, browser, net FROM request_log WHERE path LIKE '/api/v1/me%' OR path LIKE '/api/v1/members/%' ORDER BY at`)
		want := []string{"GET | /api/v1/me | 200 | Chrome | 127.0.0.0/24", "GET | /api/v1/members/:id | 200 | Chrome | 127.0.0.0/24"}
		if !slices.Equal(got, want) {
			t.Errorf("request log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		all := strings.Join(queryRows(t, db, `SELECT * FROM request_log`), "\n")
		for _, secret := range []string{token, id, "logged@example.com", "127.0.0.1"} {
			if strings.Contains(all, secret) {
				t.Errorf("the request log holds %q", secret)
			}
		}
		if got := queryRows(t, db, `SELECT count(*) FROM request_log WHERE bytes > 0 AND micros >= 0`); got[0] == "0" {
			t.Error("no line records the size of its answer")
		}
		h.Clock.Advance(4 * 24 * time.Hour)
		apptest.Call(t, h.Client, h.URL, "GET", "/healthz", nil, "", nil)
		flush(t, h)
		if err := h.App.Analytics().Maintain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := queryRows(t, db, `SELECT path FROM request_log`); !slices.Equal(got, []string{"/healthz"}) {
			t.Errorf("after 4 days of 3, the log holds %v, want only the newest line", got)
		}
	})
}

// A beacon taken is in the events, not in the request log as well; a beacon refused
// (a spoofed site here) is in the log, where floods and probes are looked for.
func TestRequestLogBeacons(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, statsFlags...)
		ok := apptest.Call(t, h.Client, h.URL, "GET", "/b.gif?s=example.com&p=/taken", nil, "", map[string]string{"User-Agent": chrome})
		bad := apptest.Call(t, h.Client, h.URL, "GET", "/b.gif?s=spoofed.example&p=/refused", nil, "", map[string]string{"User-Agent": chrome})
		post := apptest.Call(t, h.Client, h.URL, "POST", "/api/v1/events", map[string]string{"site": "example.com", "path": "/posted"}, "", map[string]string{"User-Agent": chrome})
		if ok.Status != 200 || bad.Status != 400 || post.Status != 204 {
			t.Fatalf("beacons: %d, %d, %d; want 200, 400, 204", ok.Status, bad.Status, post.Status)
		}
		flush(t, h)
		db := h.App.Analytics().DB()
		if got := queryRows(t, db, `SELECT method, path, status FROM request_log WHERE path IN ('/b.gif', '/api/v1/events')`); !slices.Equal(got, []string{"GET | /b.gif | 400"}) {
			t.Errorf("beacons in the request log: %v, want only the refused one", got)
		}
		if got := queryRows(t, db, `SELECT path FROM events ORDER BY path`); !slices.Equal(got, []string{"/posted", "/taken"}) {
			t.Errorf("events: %v, want /posted and /taken", got)
		}
	})
}

// analyticsURL is the URL of the analytics store of a harness started on dbURL.
func analyticsURL(t *testing.T, h *apptest.Harness, dbURL string) string {
	if dbURL == "" {
		return "sqlite:" + filepath.Join(h.Data, "analytics.db")
	}
	u, err := analytics.StoreURL(dbURL, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// lockEvents holds the analytics store's events table (SQLite: its only writer) from a
// connection of the test's own until the returned function runs: the buffer cannot
// write meanwhile.
func lockEvents(t *testing.T, u string) func() {
	t.Helper()
	driver, dsn := "pgx", u
	if p, ok := strings.CutPrefix(u, "sqlite:"); ok {
		driver, dsn = "sqlite", "file:"+p+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lock := `LOCK TABLE events IN ACCESS EXCLUSIVE MODE`
	if driver == "sqlite" {
		lock = `BEGIN IMMEDIATE`
	} else if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Error(err)
		}
		conn.Close()
		db.Close()
	}
}

// A full buffer answers 503 rather than growing, and a clean shutdown writes every
// event it accepted, though the store could not take them until then.
func TestBufferFullAndShutdown(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, append(statsFlags, "--analytics-buffer", "16")...)
		u := analyticsURL(t, h, dbURL)
		// The day's salt is made (a write) by the first beacon of the day.
		if r := beacon(t, h, map[string]any{"site": "example.com", "path": "/first"}, nil); r.Status != 204 {
			t.Fatalf("first event: %d", r.Status)
		}
		flush(t, h)
		release := lockEvents(t, u)
		accepted, refused := 0, 0
		for i := range 40 {
			r := beacon(t, h, map[string]any{"site": "example.com", "path": fmt.Sprintf("/p%d", i)}, nil)
			switch r.Status {
			case 204:
				accepted++
			case 503:
				refused++
				if r.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			default:
				t.Fatalf("event %d: %d %s", i, r.Status, r.Body)
			}
		}
		if accepted == 0 || accepted > 16 || refused == 0 {
			t.Fatalf("buffer of 16 with its store held: %d accepted, %d refused", accepted, refused)
		}
		// The server stops while the rows still wait: the shutdown writes them once
		// the store lets it.
		done := make(chan struct{})
		go func() { h.Close(); close(done) }()
		release()
		<-done
		db, err := analytics.OpenStore(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := queryRows(t, db, `SELECT count(*) FROM events`); got[0] != fmt.Sprint(accepted+1) {
			t.Errorf("%s events stored after the shutdown, want the %d accepted", got[0], accepted+1)
		}
	})
}

// A visitor's hash changes with the day, and the salt of a past day is destroyed: the
// row is gone, and on SQLite its bytes are in neither the file nor its log; on
// PostgreSQL the table is unlogged (the salt never enters the WAL) and truncating it
// gave it a new file.
func TestSaltRotation(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, statsFlags...)
		ctx := context.Background()
		db := h.App.Analytics().DB()
		pageview := func() {
			if r := beacon(t, h, map[string]any{"site": "example.com", "path": "/"}, nil); r.Status != 204 {
				t.Fatalf("event: %d %s", r.Status, r.Body)
			}
			flush(t, h)
		}
		pageview()
		pageview()
		var oldSalt []byte
		if err := db.QueryRowContext(ctx, `SELECT salt FROM salts`).Scan(&oldSalt); err != nil || len(oldSalt) != 32 {
			t.Fatalf("salt: %x %v", oldSalt, err)
		}
		var file1 string
		if db.Dialect == store.Postgres {
			var persistence string
			if err := db.QueryRowContext(ctx, `SELECT c.relpersistence, pg_relation_filepath(c.oid) FROM pg_class c
				WHERE c.relname = 'salts' AND c.relnamespace = current_schema()::regnamespace`).Scan(&persistence, &file1); err != nil {
				t.Fatal(err)
			}
			if persistence != "u" {
				t.Errorf("salts is %q, want unlogged (u)", persistence)
			}
		}
		h.Clock.Advance(24 * time.Hour)
		pageview()
		visitors := queryRows(t, db, `SELECT DISTINCT day, visitor FROM events ORDER BY day`)
		if len(visitors) != 2 {
			t.Fatalf("one client over two days is %d visitors, want one a day: %v", len(visitors), visitors)
		}
		if err := h.App.Analytics().DestroySalts(ctx); err != nil {
			t.Fatal(err)
		}
		today := analytics.DayOf(h.Clock.Now())
		if got := queryRows(t, db, `SELECT day FROM salts`); !slices.Equal(got, []string{fmt.Sprint(today)}) {
			t.Errorf("salts left: %v, want today's (%d) only", got, today)
		}
		if db.Dialect == store.SQLite {
			for _, f := range []string{db.Path(), db.Path() + "-wal"} {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if bytes.Contains(b, oldSalt) {
					t.Errorf("%s still holds yesterday's salt", filepath.Base(f))
				}
			}
		} else {
			var file2 string
			if err := db.QueryRowContext(ctx, `SELECT pg_relation_filepath('salts')`).Scan(&file2); err != nil {
				t.Fatal(err)
			}
			if file2 == file1 {
				t.Errorf("salts kept its file %s: yesterday's salt is still in it", file1)
			}
		}
		// Today's salt is kept: the same client is still the same visitor today.
		pageview()
		if got := queryRows(t, db, `SELECT count(DISTINCT visitor) FROM events WHERE day = $1`, today); got[0] != "1" {
			t.Errorf("today's visitors after the rotation: %s, want 1", got[0])
		}
	})
}

// idLike reports whether a column's name says it holds an identifier, an address, a
// contact or a keyed hash: the columns a join to a member would go through.
func idLike(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"_id", "_idx", "_hash", "_ip", "_token"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	for _, s := range []string{"email", "subject", "account", "member", "token", "session", "phone", "address", "name_idx"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return n == "id" || n == "ip" || n == "key" || n == "wrapped" || n == "user_agent"
}

// The analytics store cannot be joined to a member: read from its live schema on each
// engine, no column is named or typed as an identifier of the main store, no value in
// it is a value of one of the main store's identifying columns (ids, blind indexes,
// keyed hashes) after a member used the site, no value is a whole IP address, and the
// daily salt is not the key of the member side's keyed hashes.
func TestAnalyticsCannotJoinMembers(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		h := apptest.Start(t, dbURL, statsFlags...)
		ctx := context.Background()
		id, token := h.Member("joined@example.com", "correct horse battery", nil)
		for _, p := range []string{"/welcome", "/users/joined@example.com", "/u/" + id} {
			beacon(t, h, map[string]any{"site": "example.com", "path": p}, map[string]string{"Authorization": "Bearer " + token})
		}
		apptest.Call(t, h.Client, h.URL, "GET", "/api/v1/me", nil, token, map[string]string{"User-Agent": chrome})
		// A visit from a campaign, then a registration at Steward reached as that site:
		// a conversion, attributed in daily_campaigns.
		beacon(t, h, map[string]any{"site": "example.com", "path": "/?utm_source=news&utm_medium=email&utm_campaign=spring"}, nil)
		visitor{ua: chrome}.registerAt(t, h, "example.com", "converted@example.com")
		flush(t, h)
		if err := h.App.Analytics().Rollup(ctx, analytics.DayOf(h.Clock.Now())); err != nil {
			t.Fatal(err)
		}
		if err := h.App.Analytics().RollupCampaigns(ctx, analytics.DayOf(h.Clock.Now())); err != nil {
			t.Fatal(err)
		}
		if got := queryRows(t, h.App.Analytics().DB(), `SELECT campaign, registrations FROM daily_campaigns`); !slices.Equal(got, []string{"spring | 1"}) {
			t.Fatalf("daily_campaigns: %v, want the registration attributed to spring", got)
		}

		acols, err := h.App.Analytics().DB().Columns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mcols, err := h.App.DB().Columns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tables := map[string]bool{}
		for _, c := range acols {
			tables[c.Table] = true
		}
		for _, want := range []string{"salts", "request_log", "events", "daily_sites", "daily_pages", "conversions", "daily_campaigns"} {
			if !tables[want] {
				t.Fatalf("the analytics store's schema has no %s: read %v", want, tables)
			}
		}
		if len(mcols) < 100 {
			t.Fatalf("read %d columns of the main store", len(mcols))
		}
		mainTables := map[string]bool{}
		idCols := map[string]string{} // name -> type, of the main store's identifying columns
		for _, c := range mcols {
			mainTables[c.Table] = true
			if idLike(c.Name) {
				idCols[c.Name] = c.Type
			}
		}
		for table := range tables {
			if mainTables[table] && table != "goose_db_version" {
				t.Errorf("table %s is in both stores", table)
			}
		}
		for _, c := range acols {
			if c.Table == "goose_db_version" {
				continue // the analytics store's own migration bookkeeping: version numbers
			}
			if idLike(c.Name) {
				t.Errorf("%s.%s is named as an identifier", c.Table, c.Name)
			}
			if typ, ok := idCols[c.Name]; ok && typ == c.Type {
				t.Errorf("%s.%s has the name and type (%s) of an identifying column of the main store", c.Table, c.Name, typ)
			}
		}

		// Values: every identifying value the main store holds now.
		mainVals := map[string]string{}
		for _, c := range mcols {
			if !idLike(c.Name) || !c.Text {
				continue
			}
			vals, err := store.Strings(ctx, h.App.DB(), `SELECT CAST(`+store.QuoteIdent(c.Name)+` AS TEXT) FROM `+store.QuoteIdent(c.Table)+
				` WHERE `+store.QuoteIdent(c.Name)+` IS NOT NULL`)
			if err != nil {
				t.Fatalf("%s.%s: %v", c.Table, c.Name, err)
			}
			for _, v := range vals {
				if len(v) >= 8 {
					mainVals[v] = c.Table + "." + c.Name
				}
			}
		}
		convertedID, err := store.Strings(ctx, h.App.DB(), `SELECT id FROM accounts WHERE id <> $1 ORDER BY created_at DESC LIMIT 1`, id)
		if err != nil || len(convertedID) != 1 {
			t.Fatalf("the converted member's id: %v %v", convertedID, err)
		}
		if mainVals[convertedID[0]] == "" {
			t.Fatal("the converted member's id is not among the main store's identifying values")
		}
		if mainVals[id] == "" {
			t.Fatalf("the member's id %s is not among the main store's identifying values: the reading is broken", id)
		}
		key, err := os.ReadFile(h.App.Config().LedgerKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for table := range tables {
			if table == "goose_db_version" {
				continue
			}
			for _, line := range queryRows(t, h.App.Analytics().DB(), `SELECT * FROM `+table) {
				seen++
				for _, v := range strings.Split(line, " | ") {
					if from, ok := mainVals[v]; ok {
						t.Errorf("%s holds %q, a value of %s", table, v, from)
					}
					if _, err := netip.ParseAddr(v); err == nil {
						t.Errorf("%s holds a whole address %q", table, v)
					}
					if strings.Contains(v, "joined@example.com") || strings.Contains(v, id) || strings.Contains(v, token) ||
						strings.Contains(v, "converted@example.com") || strings.Contains(v, convertedID[0]) {
						t.Errorf("%s holds the member's address, id or token: %q", table, v)
					}
					if table == "salts" && strings.Contains(v, string(key)) {
						t.Error("the daily salt is the ledger key")
					}
				}
			}
		}
		if seen < 6 {
			t.Fatalf("read %d rows of the analytics store", seen)
		}
	})
}

// --analytics-database puts the store where the operator says: another SQLite file, or
// on PostgreSQL a schema owned by a role of its own, which cannot read Steward's tables.
func TestAnalyticsDatabaseOfItsOwn(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		var own string
		if dbURL == "" {
			own = "sqlite:" + filepath.Join(t.TempDir(), "elsewhere", "stats.db")
		} else {
			admin, err := sql.Open("pgx", dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			var b [4]byte
			_, _ = rand.Read(b[:])
			role := "stats_" + hex.EncodeToString(b[:])
			for _, q := range []string{`CREATE ROLE ` + role + ` LOGIN`, `CREATE SCHEMA ` + role + ` AUTHORIZATION ` + role} {
				if _, err := admin.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				_, _ = admin.Exec(`DROP SCHEMA ` + role + ` CASCADE`)
				_, _ = admin.Exec(`DROP ROLE ` + role)
			})
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.User(role)
			q := u.Query()
			q.Set("search_path", role)
			u.RawQuery = q.Encode()
			own = u.String()
		}
		h := apptest.Start(t, dbURL, append(statsFlags, "--analytics-database", own)...)
		if r := beacon(t, h, map[string]any{"site": "example.com", "path": "/"}, nil); r.Status != 204 {
			t.Fatalf("event: %d %s", r.Status, r.Body)
		}
		flush(t, h)
		db, err := analytics.OpenStore(context.Background(), own)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := queryRows(t, db, `SELECT path FROM events`); !slices.Equal(got, []string{"/"}) {
			t.Errorf("the store at --analytics-database holds %v", got)
		}
		if db.Dialect == store.Postgres {
			main := strings.Split(h.App.Config().DatabaseURL, "search_path=")[1]
			main, _, _ = strings.Cut(main, "&")
			_, err := db.QueryContext(context.Background(), `SELECT count(*) FROM `+main+`.accounts`)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("the analytics role reading Steward's accounts: %v, want permission denied (42501)", err)
			}
		} else if _, err := os.Stat(filepath.Join(h.Data, "analytics.db")); !os.IsNotExist(err) {
			t.Errorf("analytics.db made in the data folder too: %v", err)
		}
	})
}

// A node that cannot open its analytics store does not serve (the request log is not
// optional); the commands that do not serve still run without it.
func TestNoServingWithoutAnalyticsStore(t *testing.T) {
	data := t.TempDir()
	blocker := filepath.Join(data, "not-a-folder")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load([]string{"--data", data, "--argon2-memory", "1024", "--analytics-database", "sqlite:" + filepath.Join(blocker, "a.db")},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("a command that does not serve failed without the analytics store: %v", err)
	}
	defer a.Close()
	if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "analytics store") {
		t.Fatalf("Start without the analytics store: %v, want a refusal naming it", err)
	}
}
