package main

// The consent-and-email figures (-only mail), each against a baseline measured in the
// same run:
//   - newsletter subscriptions per second through POST /api/v1/newsletter at 16
//     concurrent clients, each a new address, against a bare net/http handler decoding
//     the same bodies, both loaded by wrk (a Lua script makes every body unique) or by an
//     in-process Go client without it; the confirmation mails go to an in-process SMTP
//     sink, as to a mail server in production;
//   - a CSV import of subscribers with their consent evidence, rows per second, against
//     the same rows read from the same CSV and inserted into a plain table of as many
//     columns in multi-row INSERTs, 2,000 rows a transaction, on the same database;
//   - audience resolution (the subjects a campaign goes to) over generated subscribers,
//     sealed as Steward seals them, with mixed consents, restrictions, objections and
//     suppressions, against a plain SELECT count(*) of the table;
//   - campaign sending, mails per second to an in-process SMTP sink that discards what
//     it receives, against a bare go-mail client sending as many similar messages over
//     one connection to the same sink.
//
// Every figure gets a fresh database: SQLite in a temporary folder, or with -database a
// fresh schema on that PostgreSQL, dropped afterwards.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	gomail "github.com/wneessen/go-mail"

	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/newsletter"
	"steward/internal/store"
)

// mailOpts are the sizes of the mail figures (flags).
type mailOpts struct {
	dbURL       string        // "" for SQLite
	dur         time.Duration // subscription load
	clients     int           // concurrent subscription clients
	importRows  int           // rows of the CSV import
	audience    int           // generated subscribers for audience resolution
	recipients  int           // campaign recipients
	drain       time.Duration // how long to wait for the confirmation mails after the load
	figures     map[string]bool
	profilePath string   // CPU profiles go to PATH.FIGURE
	steward     []string // more settings for every Steward built (after "--")
}

// mailFigures are the figures -only can name one by one.
var mailFigures = []string{"subscriptions", "import", "audience", "sending"}

func (o mailOpts) engine() string {
	if o.dbURL != "" {
		return "PostgreSQL"
	}
	return "SQLite"
}

func mailRows(o mailOpts) ([]row, error) {
	ctx := context.Background()
	fmt.Printf("Steward mail benchmark: %s, GOMAXPROCS=%d\n", o.engine(), runtime.GOMAXPROCS(0))
	return runFigures(ctx, o, o.figures, []figure[mailOpts]{
		{"subscriptions", subscribeRows},
		{"import", importRows},
		{"audience", audienceRows},
		{"sending", sendingRows},
	})
}

// figure is one figure of a group: its name (as -only gives it) and what measures it.
type figure[O any] struct {
	name string
	run  func(context.Context, O) ([]row, error)
}

// runFigures measures the selected figures of a group in order, timing each.
func runFigures[O any](ctx context.Context, o O, selected map[string]bool, figures []figure[O]) ([]row, error) {
	var rows []row
	for _, f := range figures {
		if !selected[f.name] {
			continue
		}
		// Each figure starts with what the one before wrote (mail files, a database
		// being deleted) on disk, so that its writing back does not weigh on this one.
		syscall.Sync()
		t := time.Now()
		r, err := f.run(ctx, o)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", f.name, err)
		}
		fmt.Printf("  %s: %.1f s\n", f.name, time.Since(t).Seconds())
		rows = append(rows, r...)
	}
	fmt.Println()
	return rows, nil
}

// benchApp is a Steward built in-process on a fresh database.
type benchApp struct {
	*app.App
	dir     string
	base    string
	ln      net.Listener // where base answers once served
	cancel  context.CancelFunc
	cleanup []func()
}

func (b *benchApp) Close() {
	b.cancel()
	b.App.Close()
	for i := len(b.cleanup) - 1; i >= 0; i-- {
		b.cleanup[i]()
	}
}

// newApp builds a Steward on a fresh database with rate limits off and the given extra
// settings. With serve it also starts the jobs and answers HTTP.
func newApp(ctx context.Context, o mailOpts, serve bool, extra ...string) (*benchApp, error) {
	return newAppWith(ctx, o, serve, nil, extra...)
}

// newAppWith is newApp with options for app.New.
func newAppWith(ctx context.Context, o mailOpts, serve bool, opts []app.Option, extra ...string) (*benchApp, error) {
	dir, err := os.MkdirTemp("", "steward-bench-mail-")
	if err != nil {
		return nil, err
	}
	b := &benchApp{dir: dir, cleanup: []func(){func() { os.RemoveAll(dir) }}}
	ctx, b.cancel = context.WithCancel(ctx)
	fail := func(err error) (*benchApp, error) {
		b.cancel()
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	b.cleanup = append(b.cleanup, func() { ln.Close() })
	b.ln, b.base = ln, "http://"+ln.Addr().String()
	args := []string{"--data", dir, "--addr", ln.Addr().String(), "--base-url", b.base, "--rate-limits=false", "--log-level", "error"}
	if o.dbURL != "" {
		u, drop, err := freshSchema(o.dbURL)
		if err != nil {
			return fail(err)
		}
		b.cleanup = append(b.cleanup, drop)
		args = append(args, "--database", u)
	}
	args = append(append(args, o.steward...), extra...)
	cfg, _, err := config.Load(args, func(string) string { return "" })
	if err != nil {
		return fail(err)
	}
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if err != nil {
		return fail(err)
	}
	b.App = a
	if serve {
		if err := a.Start(ctx); err != nil {
			a.Close()
			return fail(err)
		}
		go a.Serve(ctx, ln)
	}
	return b, nil
}

// freshSchema makes a schema of its own on the PostgreSQL at base and returns the URL
// that uses it, and how to drop it.
func freshSchema(base string) (string, func(), error) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "bench_" + hex.EncodeToString(r[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		if admin, err := sql.Open("pgx", base); err == nil {
			_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			admin.Close()
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// profiled runs fn under the CPU profiler when -cpuprofile is set, into PATH.name.
func profiled(o mailOpts, name string, fn func() error) error {
	if o.profilePath == "" {
		return fn()
	}
	f, err := os.Create(o.profilePath + "." + name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	err = fn()
	pprof.StopCPUProfile()
	return err
}

// ---- 1. Subscriptions through the API.

func subscribeRows(ctx context.Context, o mailOpts) ([]row, error) {
	// The confirmation mails go to an SMTP server, as in production (the default
	// folder of .eml files stands in for one in development).
	b, _, err := newSMTPApp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer b.Close()

	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The bare handler does what any JSON endpoint does, and nothing else: decode the
	// body, answer 202 with a small JSON.
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			FirstName string `json:"first_name"`
			LastName  string `json:"last_name"`
			Email     string `json:"email"`
			Company   string `json:"company"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Email == "" {
			http.Error(w, "bad body", 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"pending"}`)
	})}
	go bare.Serve(bareLn)
	defer bare.Close()

	bareRes, err := postLoad("http://"+bareLn.Addr().String(), "bare", o.clients, o.dur)
	if err != nil {
		return nil, err
	}
	var ours loadResult
	err = profiled(o, "subscriptions", func() error {
		ours, err = postLoad(b.base, "sub", o.clients, o.dur)
		return err
	})
	if err != nil {
		return nil, err
	}
	end := time.Now()

	// Every accepted request must have left a pending subscriber (wrk counts the
	// requests it completed; one cut off at the end may still have been stored).
	var stored, backlog int
	if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers WHERE status = 'pending'`).Scan(&stored); err != nil {
		return nil, err
	}
	if stored < ours.requests {
		return nil, fmt.Errorf("%d subscriptions answered, %d stored", ours.requests, stored)
	}
	// The confirmation mails are written by the background job after the answer: how
	// far behind it is, and how fast it catches up.
	if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox`).Scan(&backlog); err != nil {
		return nil, err
	}
	left := backlog
	for deadline := time.Now().Add(o.drain); left > 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox`).Scan(&left); err != nil {
			return nil, err
		}
	}
	mailed := stored - left
	mailRate := float64(mailed) / (ours.seconds + time.Since(end).Seconds())
	drained := "all written"
	if left > 0 {
		drained = fmt.Sprintf("%d still queued", left)
	}
	fmt.Printf("  subscriptions: %d answered in %.1f s (%s); confirmation mails: %d queued at the end, %s %.1f s later\n",
		ours.requests, ours.seconds, ours.loader, backlog, drained, time.Since(end).Seconds())

	return []row{
		{fmt.Sprintf("subscriptions/s, POST /api/v1/newsletter vs bare (%d clients)", o.clients),
			f0(ours.rate), f0(bareRes.rate), ratio(ours.rate, bareRes.rate), ">= 5000/s"},
		{fmt.Sprintf("  confirmation mails written/s by the job (%d queued at end)", backlog),
			f0(mailRate), f0(ours.rate), ratio(mailRate, ours.rate), "(reference)"},
	}, nil
}

type loadResult struct {
	rate     float64
	requests int
	seconds  float64
	loader   string
	// CPU time the server's process and the loader used over the run (when measured).
	serverCPU, loaderCPU time.Duration
	// Heap allocations in the server's process over the run, and collections.
	allocs, allocBytes uint64
	gcs                uint32
}

// heapPerRequest says the heap allocations per request, and the collections.
func (l loadResult) heapPerRequest() string {
	if l.requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f allocations (%.0f bytes) per request, %d collections", float64(l.allocs)/float64(l.requests),
		float64(l.allocBytes)/float64(l.requests), l.gcs)
}

// perRequest is cpu divided by the requests served, in microseconds.
func (l loadResult) perRequest(cpu time.Duration) string {
	if l.requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", float64(cpu.Microseconds())/float64(l.requests))
}

var wrkRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(ms|s|m)`)

// subscribeLua makes every wrk request a subscription of a new address.
const subscribeLua = `
threads = 0
counter = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local body = '{"first_name":"Ada","last_name":"Lovelace","email":"' .. PREFIX .. "-" .. tid .. "-" .. counter ..
    '@example.org","company":"Analytical Engines Ltd"}'
  return wrk.format("POST", "/api/v1/newsletter", {["Content-Type"] = "application/json"}, body)
end
`

// postLoad posts subscriptions of new addresses to base for d from clients connections,
// with wrk when it is installed, else an in-process Go client.
func postLoad(base, prefix string, clients int, d time.Duration) (loadResult, error) {
	if _, err := exec.LookPath("wrk"); err == nil {
		f, err := os.CreateTemp("", "steward-bench-*.lua")
		if err != nil {
			return loadResult{}, err
		}
		defer os.Remove(f.Name())
		fmt.Fprintf(f, "PREFIX = %q\n%s", prefix, subscribeLua)
		f.Close()
		threads := min(2, clients)
		out, err := exec.Command("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(clients),
			"-d"+strconv.Itoa(int(d.Seconds()))+"s", "-s", f.Name(), base+"/api/v1/newsletter").CombinedOutput()
		if err != nil {
			return loadResult{}, fmt.Errorf("wrk: %v: %s", err, out)
		}
		if bytes.Contains(out, []byte("Non-2xx")) {
			return loadResult{}, fmt.Errorf("wrk saw errors on %s:\n%s", base, out)
		}
		if i := bytes.Index(out, []byte("Socket errors")); i >= 0 {
			line, _, _ := bytes.Cut(out[i:], []byte("\n"))
			fmt.Fprintf(os.Stderr, "bench: wrk on %s: %s\n", base, line)
		}
		m, n := wrkRate.FindSubmatch(out), wrkRequests.FindSubmatch(out)
		if m == nil || n == nil {
			return loadResult{}, fmt.Errorf("wrk output: %s", out)
		}
		r, _ := strconv.ParseFloat(string(m[1]), 64)
		reqs, _ := strconv.Atoi(string(n[1]))
		secs, _ := strconv.ParseFloat(string(n[2]), 64)
		switch string(n[3]) {
		case "ms":
			secs /= 1000
		case "m":
			secs *= 60
		}
		return loadResult{rate: r, requests: reqs, seconds: secs, loader: fmt.Sprintf("wrk -t%d -c%d", threads, clients)}, nil
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var ctr atomic.Int64
	t := time.Now()
	r := rate(clients, d, func() error {
		b := fmt.Sprintf(`{"first_name":"Ada","last_name":"Lovelace","email":"%s-%d@example.org","company":"Analytical Engines Ltd"}`, prefix, ctr.Add(1))
		resp, err := client.Post(base+"/api/v1/newsletter", "application/json", strings.NewReader(b))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("subscribe: %d", resp.StatusCode)
		}
		return nil
	})
	return loadResult{rate: r, requests: int(ctr.Load()), seconds: time.Since(t).Seconds(),
		loader: fmt.Sprintf("Go client, %d connections (wrk not installed)", clients)}, nil
}

// ---- 2. CSV import.

// splitmix is a bijection of uint64: distinct inputs give distinct, well-spread outputs.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis", "Radia", "Niklaus"}
var lastNames = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie", "Perlman", "Wirth"}

// genCSV returns n subscribers with their consent evidence, in no particular order of
// address (as a real export is).
func genCSV(n int, salt uint64) []byte {
	var buf bytes.Buffer
	buf.Grow(n * 180)
	w := csv.NewWriter(&buf)
	w.Write([]string{"email", "first_name", "last_name", "company", "consented_at", "source", "evidence"})
	t0 := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		h := splitmix(uint64(i) ^ salt)
		company := ""
		if h%3 == 0 {
			company = "Example Works " + strconv.Itoa(int(h%997))
		}
		w.Write([]string{
			fmt.Sprintf("%016x@example.org", h),
			firstNames[h%uint64(len(firstNames))],
			lastNames[(h>>8)%uint64(len(lastNames))],
			company,
			t0.Add(time.Duration(h%(600*24*3600)) * time.Second).Format(time.RFC3339),
			"signup form, spring webinar",
			fmt.Sprintf("double opt-in confirmed from 203.0.113.%d, form version 3", h%250+1),
		})
	}
	w.Flush()
	return buf.Bytes()
}

func importRows(ctx context.Context, o mailOpts) ([]row, error) {
	b, err := newApp(ctx, o, false)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data := genCSV(o.importRows, 0x5eed)

	// Baseline: the same CSV read and its rows inserted as they are into a plain table
	// of as many columns, in multi-row INSERTs of 2,000 rows a transaction.
	if _, err := b.DB().ExecContext(ctx, `CREATE TABLE bench_plain (email TEXT, first_name TEXT, last_name TEXT, company TEXT,
		consented_at TEXT, source TEXT, evidence TEXT)`); err != nil {
		return nil, err
	}
	t := time.Now()
	if err := plainImport(ctx, b.DB(), data); err != nil {
		return nil, err
	}
	plain := time.Since(t)

	var rep newsletter.ImportReport
	err = profiled(o, "import", func() error {
		t = time.Now()
		rep, err = b.Newsletter().Import(ctx, bytes.NewReader(data), newsletter.Purpose, "bench")
		return err
	})
	if err != nil {
		return nil, err
	}
	ours := time.Since(t)
	if rep.Imported != o.importRows {
		return nil, fmt.Errorf("imported %d of %d rows: %+v", rep.Imported, o.importRows, rep)
	}
	var granted int
	if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM consent_state WHERE purpose = $1 AND decision = 'granted'`,
		newsletter.Purpose).Scan(&granted); err != nil {
		return nil, err
	}
	if granted != o.importRows {
		return nil, fmt.Errorf("imported %d rows but %d consents", o.importRows, granted)
	}
	ourRate, plainRate := float64(o.importRows)/ours.Seconds(), float64(o.importRows)/plain.Seconds()
	return []row{{fmt.Sprintf("CSV import rows/s (%d rows) vs plain multi-row INSERTs", o.importRows),
		f0(ourRate), f0(plainRate), ratio(ourRate, plainRate), ">= 50000/s"}}, nil
}

func plainImport(ctx context.Context, db *store.DB, data []byte) error {
	cr := csv.NewReader(bytes.NewReader(data))
	if _, err := cr.Read(); err != nil {
		return err
	}
	var batch [][]string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			ins := tx.Bulk("bench_plain", []string{"email", "first_name", "last_name", "company", "consented_at", "source", "evidence"}, len(batch), "")
			defer ins.Close(ctx)
			for _, r := range batch {
				if err := ins.Add(ctx, r[0], r[1], r[2], r[3], r[4], r[5], r[6]); err != nil {
					return err
				}
			}
			return ins.Close(ctx)
		})
		batch = batch[:0]
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		batch = append(batch, rec)
		if len(batch) == 2000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// ---- 3. Audience resolution.

// audienceMix is who the generated subscribers are, by hash bucket out of 100.
const (
	grantedPct   = 60 // granted the newsletter
	withdrawnPct = 10 // granted, then withdrew; the other 30 % never decided
	flaggedPct   = 2  // restricted processing or objected (half each)
	suppressPct  = 1  // address suppressed (for the newsletter or for everything)
)

// genAudience writes n confirmed subscribers straight into the tables, sealed under
// data keys of their own, with their ledger, state, flags and suppressions, and returns
// how many the ledger allows for the newsletter.
func genAudience(ctx context.Context, b *benchApp, n int) (allowed int, err error) {
	// The secondary indexes are dropped during the load and made again afterwards from
	// their own definitions, as read from the database: building an index from sorted
	// rows is much faster than a million random inserts into it.
	restore, err := dropIndexes(ctx, b.DB(), "subscribers", "consent_events", "consent_state", "processing_flags", "suppressions")
	if err != nil {
		return 0, err
	}
	defer func() {
		if rerr := restore(); err == nil {
			err = rerr
		}
	}()
	perTx := 50_000
	if b.DB().Dialect == store.SQLite {
		perTx = n // one transaction: each commit would write every page its random inserts touched to the WAL
	}
	now := store.Millis(time.Now()) - 3600_000
	if b.DB().Dialect == store.SQLite {
		// While the database is made, the writer's page cache holds all of it
		// (randomly ordered inserts into a 2 MB cache would spill and re-read pages
		// all along) and statement journals stay in memory (each multi-row INSERT
		// would otherwise copy every page it touches to a temporary file first). Then
		// the writer gets its usual settings back and the WAL is checkpointed into the
		// file, as in a database that has been running for a while.
		for _, p := range []string{`PRAGMA cache_size = -1048576`, `PRAGMA temp_store = MEMORY`} {
			if _, err := b.DB().ExecContext(ctx, p); err != nil {
				return 0, err
			}
		}
		defer func() {
			for _, p := range []string{`PRAGMA cache_size = -2000`, `PRAGMA temp_store = DEFAULT`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
				b.DB().ExecContext(ctx, p)
			}
		}()
	}
	var eventID int64
	for lo := 0; lo < n; lo += perTx {
		err := b.DB().InTx(ctx, func(tx *store.Tx) error {
			subs := tx.Bulk("subscribers", []string{"id", "subject_id", "email", "email_hash", "first_name", "last_name", "company",
				"status", "source", "created_at", "confirmed_at"}, 1000, "").OrIgnore()
			events := tx.Bulk("consent_events", []string{"id", "subject_id", "purpose", "decision", "source", "policy_version", "evidence", "at"}, 1000, "").OrIgnore()
			state := tx.Bulk("consent_state", []string{"subject_id", "purpose", "decision", "event_id", "at"}, 1000, "").OrIgnore()
			flags := tx.Bulk("processing_flags", []string{"subject_id", "restricted", "objected", "updated_at"}, 1000, "").OrIgnore()
			supp := tx.Bulk("suppressions", []string{"hash", "purpose", "reason", "at"}, 1000, "").OrIgnore()
			keys := tx.Bulk("vault_keys", []string{"subject_id", "wrapped", "epoch", "created_at"}, 1000, "").OrIgnore()
			all := []*store.Bulk{subs, events, state, flags, supp, keys}
			defer func() {
				for _, bk := range all {
					bk.Close(ctx)
				}
			}()
			for i := lo; i < min(lo+perTx, n); i++ {
				h := splitmix(uint64(i))
				h2 := splitmix(h)
				id := fmt.Sprintf("%016x%016x", h, h2)
				email := fmt.Sprintf("%016x@example.net", h2)
				company := ""
				if h%3 == 0 {
					company = "Example Works"
				}
				// Sealed as Steward seals them: under a data key of the subscriber's own,
				// bound to the newsletter's labels.
				key, keyRow, err := b.Vault().NewKey(id)
				if err != nil {
					return err
				}
				if err := keys.Add(ctx, keyRow...); err != nil {
					return err
				}
				sealedCompany := ""
				if company != "" {
					sealedCompany = key.SealText("subscribers.company", company)
				}
				if err := subs.Add(ctx, id, id, key.SealText("subscribers.email", email), b.Newsletter().AddressHash(email),
					key.SealText("subscribers.first_name", firstNames[h%12]), key.SealText("subscribers.last_name", lastNames[(h>>8)%12]),
					sealedCompany, newsletter.StatusConfirmed, "import", now, now); err != nil {
					return err
				}
				c, f, s := h2%100, (h2>>16)%100, (h2>>32)%100
				if c < grantedPct+withdrawnPct {
					eventID++
					if err := events.Add(ctx, eventID, id, newsletter.Purpose, "granted", "import", "2018.1",
						`{"method":"double opt-in"}`, now); err != nil {
						return err
					}
					decision := "granted"
					if c >= grantedPct {
						decision = "withdrawn"
						eventID++
						if err := events.Add(ctx, eventID, id, newsletter.Purpose, decision, "email_link", "2018.1",
							`{"ip":"203.0.113.9"}`, now+60_000); err != nil {
							return err
						}
					}
					if err := state.Add(ctx, id, newsletter.Purpose, decision, eventID, now); err != nil {
						return err
					}
				}
				if f < flaggedPct {
					if err := flags.Add(ctx, id, f%2, 1-f%2, now); err != nil {
						return err
					}
				}
				if s < suppressPct {
					purpose := newsletter.Purpose
					if h%2 == 0 {
						purpose = "*"
					}
					if err := supp.Add(ctx, b.Newsletter().AddressHash(email), purpose, "unsubscribed", now); err != nil {
						return err
					}
				}
				if c < grantedPct && f >= flaggedPct && s >= suppressPct {
					allowed++
				}
			}
			for _, bk := range all {
				if err := bk.Close(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	if b.DB().Dialect == store.Postgres {
		if _, err := b.DB().ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('consent_events', 'id'), $1)`, eventID); err != nil {
			return 0, err
		}
	}
	return allowed, nil
}

// dropIndexes drops the secondary indexes of the tables (not those of primary keys and
// unique constraints) and returns what makes them again, with their definitions.
func dropIndexes(ctx context.Context, db *store.DB, tables ...string) (func() error, error) {
	var q string
	if db.Dialect == store.SQLite {
		q = `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('` + strings.Join(tables, "', '") + `')`
	} else {
		q = `SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = current_schema() AND tablename IN ('` +
			strings.Join(tables, "', '") + `') AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	var names, defs []string
	for rows.Next() {
		var n, d string
		if err := rows.Scan(&n, &d); err != nil {
			rows.Close()
			return nil, err
		}
		names, defs = append(names, n), append(defs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, err := db.ExecContext(ctx, `DROP INDEX `+n); err != nil {
			return nil, err
		}
	}
	return func() error {
		for _, d := range defs {
			if _, err := db.ExecContext(ctx, d); err != nil {
				return fmt.Errorf("recreate index: %w", err)
			}
		}
		return nil
	}, nil
}

func audienceRows(ctx context.Context, o mailOpts) ([]row, error) {
	b, err := newApp(ctx, o, false)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t := time.Now()
	var want int
	err = profiled(o, "audience-generation", func() error {
		want, err = genAudience(ctx, b, o.audience)
		return err
	})
	if err != nil {
		return nil, err
	}
	analyzed := ""
	if b.DB().Dialect == store.Postgres {
		// Autovacuum would analyze the tables within a minute of such a load; the
		// figure is the steady state. SQLite has no statistics unless asked (Steward
		// never runs ANALYZE), so none are made there.
		if _, err := b.DB().ExecContext(ctx, `ANALYZE`); err != nil {
			return nil, err
		}
		analyzed = ", analyzed"
	}
	fmt.Printf("  audience: %d subscribers generated in %.1f s\n", o.audience, time.Since(t).Seconds())
	// The generation wrote the tables directly; Steward keeps the table of whom it may
	// mail with each change, so here it is built once from the rule, timed apart.
	t = time.Now()
	if err := b.Newsletter().RefreshAll(ctx); err != nil {
		return nil, err
	}
	rebuild := ms(time.Since(t))
	// The rule evaluated over every subscriber, without the maintained table, timed once.
	t = time.Now()
	byRule := 0
	if err := b.Newsletter().AudienceByRule(ctx, newsletter.Purpose, func(newsletter.Recipient) error { byRule++; return nil }); err != nil {
		return nil, err
	}
	ruleT := ms(time.Since(t))
	// The kept audience with every recipient's address and first name opened (a
	// campaign reads only the subjects, and opens each batch's addresses as it sends
	// it), timed once.
	t = time.Now()
	opened := 0
	if err := b.Newsletter().Recipients(ctx, newsletter.Purpose, func(newsletter.Recipient) error { opened++; return nil }); err != nil {
		return nil, err
	}
	openT := ms(time.Since(t))

	var ourT, baseT []float64
	got, total := 0, 0
	err = profiled(o, "audience", func() error {
		for range 3 {
			t := time.Now()
			n := 0
			if err := b.Newsletter().Audience(ctx, newsletter.Purpose, func(string) error { n++; return nil }); err != nil {
				return err
			}
			ourT = append(ourT, ms(time.Since(t)))
			got = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var plainT []float64
	for range 3 {
		t := time.Now()
		if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers`).Scan(&total); err != nil {
			return nil, err
		}
		baseT = append(baseT, ms(time.Since(t)))
		// And, for reference, what reading the same columns of every subscriber costs
		// without asking the ledger: the floor of streaming rows out of this database.
		t = time.Now()
		rows, err := b.DB().QueryContext(ctx, `SELECT subject_id, email, first_name FROM subscribers`)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r newsletter.Recipient
			if err := rows.Scan(&r.SubjectID, &r.Email, &r.FirstName); err != nil {
				rows.Close()
				return nil, err
			}
		}
		rows.Close()
		plainT = append(plainT, ms(time.Since(t)))
	}
	if got != want || byRule != want || opened != want || total != o.audience {
		return nil, fmt.Errorf("audience of %d, want %d (of %d subscribers)", got, want, total)
	}
	if err := explainAudience(ctx, b); err != nil {
		fmt.Fprintln(os.Stderr, "bench: explain:", err)
	}
	our, base, plain := median(ourT), median(baseT), median(plainT)
	return []row{
		{fmt.Sprintf("audience ms (%d of %d subscribers%s) vs count(*)", got, total, analyzed),
			fmt.Sprintf("%.0f", our), fmt.Sprintf("%.1f", base), ratio(our, base), "<= 1000 ms"},
		{fmt.Sprintf("  the same vs a plain SELECT of 3 columns of all %d", total),
			fmt.Sprintf("%.0f", our), fmt.Sprintf("%.0f", plain), ratio(our, plain), "(reference)"},
		{"  the same with every address and first name opened (Recipients)", fmt.Sprintf("%.0f", openT), fmt.Sprintf("%.0f", our), ratio(openT, our), "(reference)"},
		{"  the rule evaluated for every subscriber, opened (no maintained table)", fmt.Sprintf("%.0f", ruleT), fmt.Sprintf("%.0f", our), ratio(ruleT, our), "(reference)"},
		{"  rebuilding the maintained table from scratch (once)", fmt.Sprintf("%.0f", rebuild), "", "-", "(reference)"},
	}, nil
}

// explainAudience prints the plan of the audience query when -explain is set.
func explainAudience(ctx context.Context, b *benchApp) error {
	if !explain {
		return nil
	}
	allowed, err := b.Consent().AllowedSQL(newsletter.Purpose, "s.subject_id")
	if err != nil {
		return err
	}
	// The same text as newsletter's audienceQuery.
	q := `SELECT s.subject_id, s.email, s.first_name FROM subscribers s
		WHERE s.status = 'confirmed' AND ` + allowed + `
		AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.hash = s.email_hash AND x.purpose IN ($1, '*'))`
	prefix := "EXPLAIN QUERY PLAN "
	if b.DB().Dialect == store.Postgres {
		prefix = "EXPLAIN (ANALYZE, BUFFERS) "
	}
	rows, err := b.DB().QueryContext(ctx, prefix+q, newsletter.Purpose)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	fmt.Println("  audience query plan:")
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		fmt.Printf("    %v\n", vals[len(vals)-1])
	}
	return rows.Err()
}

var explain bool

// ---- 4. Sending.

// smtpSink is an SMTP server that counts and discards every message.
type smtpSink struct {
	srv         *smtp.Server
	addr        string
	msgs        atomic.Int64
	first, last atomic.Int64 // when the first and the last message arrived, Unix ns
}

func (s *smtpSink) reset() {
	s.msgs.Store(0)
	s.first.Store(0)
	s.last.Store(0)
}

type sinkSession struct{ s *smtpSink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	now := time.Now().UnixNano()
	x.s.first.CompareAndSwap(0, now)
	x.s.last.Store(now)
	x.s.msgs.Add(1)
	return nil
}

func startSink() (*smtpSink, error) {
	s := &smtpSink{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }))
	s.srv.Domain = "sink.localhost"
	s.srv.MaxRecipients = 100
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = ln.Addr().String()
	go s.srv.Serve(ln)
	return s, nil
}

const campaignBody = `## What is new this month

We rebuilt the **preferences page**: every choice you made is listed with the date and
the way you made it, and you can download a signed receipt of each one.

- Faster uploads of large files
- A calmer dashboard
- Receipts for every consent decision

Read the [full notes](https://example.org/notes) on our site. Thank you for reading.
`

// newSMTPApp is a serving Steward that sends its mail to an SMTP sink of its own,
// stopped with it.
func newSMTPApp(ctx context.Context, o mailOpts) (*benchApp, *smtpSink, error) {
	sink, err := startSink()
	if err != nil {
		return nil, nil, err
	}
	b, err := newApp(ctx, o, true, "--mail", "smtp", "--smtp-addr", sink.addr, "--smtp-tls", "none")
	if err != nil {
		sink.srv.Close()
		return nil, nil, err
	}
	b.cleanup = append(b.cleanup, func() { sink.srv.Close() })
	return b, sink, nil
}

func sendingRows(ctx context.Context, o mailOpts) ([]row, error) {
	b, sink, err := newSMTPApp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	rep, err := b.Newsletter().Import(ctx, bytes.NewReader(genCSV(o.recipients, 0xca4a)), newsletter.Purpose, "bench")
	if err != nil {
		return nil, err
	}
	if rep.Imported != o.recipients {
		return nil, fmt.Errorf("imported %d of %d recipients", rep.Imported, o.recipients)
	}
	const staff = "bench-staff"
	if err := b.Staff().Grant(ctx, staff, "marketing"); err != nil {
		return nil, err
	}
	// Three campaigns to the same audience, each followed by the baseline: the figure
	// is the median of each.
	host, port, _ := net.SplitHostPort(sink.addr)
	p, _ := strconv.Atoi(port)
	var ourT, bareT []float64
	for round := range 3 {
		c, err := b.Newsletter().CreateCampaign(ctx, staff, newsletter.Purpose, "What is new at Steward this month", campaignBody)
		if err != nil {
			return nil, err
		}
		sample, n, err := b.Newsletter().Preview(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if n != o.recipients {
			return nil, fmt.Errorf("campaign audience %d, want %d", n, o.recipients)
		}

		sink.reset()
		var ours, start time.Duration
		t0 := time.Now()
		prof := o
		if round > 0 {
			prof.profilePath = "" // the first round's profile is enough
		}
		err = profiled(prof, "sending", func() error {
			if _, err := b.Newsletter().StartSend(ctx, b.Jobs(), c.ID); err != nil {
				return err
			}
			start = time.Since(t0)
			for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
				cur, err := b.Newsletter().Campaign(ctx, c.ID)
				if err != nil {
					return err
				}
				if cur.Status == newsletter.CampaignSent {
					ours = time.Since(t0)
					if cur.Sent != o.recipients {
						return fmt.Errorf("campaign sent %d of %d", cur.Sent, o.recipients)
					}
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("campaign not sent after 5 minutes: %d of %d", cur.Sent, o.recipients)
				}
			}
		})
		if err != nil {
			return nil, err
		}
		if got := sink.msgs.Load(); got != int64(o.recipients) {
			return nil, fmt.Errorf("the sink received %d of %d campaign mails", got, o.recipients)
		}
		since := func(ns int64) float64 { return ms(time.Unix(0, ns).Sub(t0)) }
		fmt.Printf("  sending %d: StartSend %.0f ms, first mail at %.0f ms, last at %.0f ms, campaign marked sent at %.0f ms\n",
			round+1, ms(start), since(sink.first.Load()), since(sink.last.Load()), ms(ours))
		ourT = append(ourT, ours.Seconds())

		// Baseline: as many messages like the campaign's (its rendered preview, each to
		// its own address), built and sent by a bare go-mail client over one connection
		// to the same sink.
		sink.reset()
		client, err := gomail.NewClient(host, gomail.WithPort(p), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithTimeout(30*time.Second))
		if err != nil {
			return nil, err
		}
		t := time.Now()
		msgs := make([]*gomail.Msg, 0, o.recipients)
		for i := range o.recipients {
			m := gomail.NewMsg()
			if err := m.From(b.Config().MailFrom); err != nil {
				return nil, err
			}
			if err := m.To(fmt.Sprintf("%016x@example.org", splitmix(uint64(i)))); err != nil {
				return nil, err
			}
			m.Subject(sample.Subject)
			m.SetDate()
			m.SetMessageID()
			for k, v := range sample.Headers {
				m.SetGenHeaderPreformatted(gomail.Header(k), v)
			}
			m.SetBodyString(gomail.TypeTextPlain, sample.Text)
			m.AddAlternativeString(gomail.TypeTextHTML, sample.HTML)
			msgs = append(msgs, m)
		}
		if err := client.DialAndSendWithContext(ctx, msgs...); err != nil {
			return nil, err
		}
		bareT = append(bareT, time.Since(t).Seconds())
		if got := sink.msgs.Load(); got != int64(o.recipients) {
			return nil, fmt.Errorf("the sink received %d of %d bare mails", got, o.recipients)
		}
	}
	ours, bare := median(ourT), median(bareT)
	ourRate, bareRate := float64(o.recipients)/ours, float64(o.recipients)/bare
	return []row{{fmt.Sprintf("campaign mails/s (%d, SMTP sink) vs bare go-mail, one connection", o.recipients),
		f0(ourRate), f0(bareRate), ratio(ourRate, bareRate), ">= 0.80"}}, nil
}

// parseOnly turns -only into the set of parts to run: accounts, files, mail, keys,
// rights, or single figures of mail (subscriptions, import, audience, sending), of keys
// (export, rotation, erasure) or of rights (member-erasure, queue, deadlines),
// comma-separated.
func parseOnly(only string) (map[string]bool, error) {
	out := map[string]bool{}
	if only == "" {
		only = "accounts,files,mail,keys,rights,analytics,analytics-memory,dashboard"
	}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "accounts" || p == "files" || p == "analytics" || p == "analytics-memory" || p == "dashboard":
			out[p] = true
		case p == "mail":
			for _, f := range mailFigures {
				out[f] = true
			}
		case p == "keys":
			for _, f := range keysFigures {
				out[f] = true
			}
		case p == "rights":
			for _, f := range rightsFigures {
				out[f] = true
			}
		case slices.Contains(mailFigures, p), slices.Contains(keysFigures, p), slices.Contains(rightsFigures, p):
			out[p] = true
		default:
			return nil, fmt.Errorf("-only %q: want accounts, files, mail, keys, rights, analytics, analytics-memory, dashboard or one of %s, %s, %s", p,
				strings.Join(mailFigures, ", "), strings.Join(keysFigures, ", "), strings.Join(rightsFigures, ", "))
		}
	}
	return out, nil
}

// anyOf reports whether any of the figures is selected.
func anyOf(sel map[string]bool, figures []string) bool {
	for _, f := range figures {
		if sel[f] {
			return true
		}
	}
	return false
}
