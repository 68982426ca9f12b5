// Command bench measures Steward against baselines taken in the same run and prints a
// table: figure, ours, baseline, ratio. Run it with "go run ./bench"; see -h for flags.
//
// Figures:
//   - logins per second through POST /api/v1/sessions, against raw argon2id hashes per
//     second at the same parameters and concurrency (target ratio >= 0.9);
//   - authenticated session checks (GET /api/v1/me) per second, against a bare
//     net/http handler answering 204 (target ratio >= 0.3), both loaded by wrk when it
//     is installed, else by an in-process Go client;
//   - registration latency p50 and p99 at 32 concurrent clients, against the latency
//     of the argon2id hash alone at the same concurrency;
//   - file throughput and peak memory (files.go);
//   - subscriptions, CSV import, audience resolution and campaign sending (mail.go);
//   - a member's export, an epoch rotation of the data keys, and erasure in a large
//     population (keys.go);
//   - the rights desk: a member with many rows and files erased, the dpo's queue and the
//     daily deadline job over many requests (rights.go);
//   - page beacons per second against a bare handler, on the same requests (analytics.go);
//   - a steward process's resident memory after ten million beacons (analytics_memory.go);
//   - the 30-day statistics dashboard over 10,000,000 events, against 100 ms (dashboard.go).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"steward/internal/account"
	"steward/internal/app"
	"steward/internal/config"
)

func main() {
	dbURL := flag.String("database", "", "database URL (default: SQLite in a temporary folder)")
	dur := flag.Duration("duration", 5*time.Second, "how long each throughput figure is measured")
	regN := flag.Int("registrations", 256, "registrations for the latency figure")
	fileSize := flag.Int64("file-mib", 512, "MiB moved for the file throughput figures (0 skips the file figures)")
	bigMiB := flag.Int64("big-file-mib", 2048, "MiB of the upload during which peak memory is measured")
	only := flag.String("only", "", "run only these figures, comma-separated: accounts, files, mail, keys, rights, analytics, analytics-memory, dashboard, or one figure of mail (subscriptions, import, audience, sending), of keys (export, rotation, erasure) or of rights (member-erasure, queue, deadlines, staff-read)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the GET /api/v1/me load to this file, and of each mail, keys and staff-read figure to FILE.FIGURE")
	subClients := flag.Int("subscribe-clients", 16, "concurrent clients of the subscription figure")
	importN := flag.Int("import-rows", 100_000, "rows of the CSV import figure")
	audienceN := flag.Int("audience", 1_000_000, "generated subscribers of the audience figure")
	recipientsN := flag.Int("recipients", 5000, "recipients of the campaign sending figure")
	drain := flag.Duration("drain", 20*time.Second, "how long to wait for the confirmation mails after the subscription load")
	flag.BoolVar(&explain, "explain", false, "print the audience query's plan, and the plans of the erasure's statements")
	exportsN := flag.Int("exports", 300, "requests of the export latency figure")
	rotationN := flag.Int("rotation-keys", 1_000_000, "data keys of the rotation figure")
	meRate := flag.Int("me-rate", 1000, "requests per second of GET /api/v1/me during the rotation figure (and without it)")
	membersN := flag.Int("erasure-members", 1_000_000, "members in the large population of the erasure figure")
	baseMembersN := flag.Int("erasure-baseline", 10_000, "members in the small population the erasure figure compares with")
	erasuresN := flag.Int("erasures", 40, "members erased at each scale (and a quarter as many who changed address)")
	erasureRowsN := flag.Int("erasure-rows", 100_000, "rows across the holders of the member of the member-erasure figure")
	erasureFilesN := flag.Int("erasure-files", 1000, "files of the member of the member-erasure figure")
	openRequestsN := flag.Int("open-requests", 100_000, "open privacy requests of the queue and deadlines figures")
	memoryEvents := flag.Int("memory-events", 10_000_000, "page beacons of the analytics memory figure")
	queueN := flag.Int("queue-pages", 300, "first pages of the queue measured (API and page each)")
	dashEvents := flag.Int("events", 10_000_000, "events of the dashboard figure (over 30 days)")
	dashRuns := flag.Int("dashboard-runs", 20, "runs of the dashboard's queries timed")
	dashReuse := flag.Bool("dashboard-reuse", false, "with -database: time the dashboard's queries on the events and rollups a run of today left there")
	flag.Parse()
	sel, err := parseOnly(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	var fileArgs []string
	if *dbURL != "" {
		fileArgs = append(fileArgs, "--database", *dbURL)
	}
	fileArgs = append(fileArgs, flag.Args()...) // e.g. -- --files s3 --s3-endpoint ...
	var rows []row
	if sel["accounts"] {
		rows, err = run(*dbURL, *dur, *regN)
	}
	if err == nil && sel["files"] && *fileSize > 0 {
		var fr []row
		fr, err = fileRows(*fileSize<<20, *bigMiB<<20, fileArgs)
		rows = append(rows, fr...)
	}
	if err == nil && anyOf(sel, mailFigures) {
		var mr []row
		mr, err = mailRows(mailOpts{dbURL: *dbURL, dur: *dur, clients: *subClients, importRows: *importN, audience: *audienceN,
			recipients: *recipientsN, drain: *drain, figures: sel, profilePath: cpuProfile, steward: flag.Args()})
		rows = append(rows, mr...)
	}
	if err == nil && anyOf(sel, keysFigures) {
		var kr []row
		kr, err = keysRows(keysOpts{dbURL: *dbURL, figures: sel, steward: flag.Args(), exports: *exportsN, rotationKeys: *rotationN,
			meRate: *meRate, meDur: *dur, members: *membersN, baseMembers: *baseMembersN, erasures: *erasuresN, profilePath: cpuProfile})
		rows = append(rows, kr...)
	}
	if err == nil && anyOf(sel, rightsFigures) {
		var rr []row
		rr, err = rightsRows(rightsOpts{dbURL: *dbURL, figures: sel, steward: flag.Args(), erasureRows: *erasureRowsN,
			erasureFiles: *erasureFilesN, openRequests: *openRequestsN, queueN: *queueN, profilePath: cpuProfile})
		rows = append(rows, rr...)
	}
	if err == nil && sel["analytics"] {
		var ar []row
		ar, err = analyticsRows(analyticsOpts{dbURL: *dbURL, dur: *dur, steward: flag.Args()})
		rows = append(rows, ar...)
	}
	if err == nil && sel["analytics-memory"] && *memoryEvents > 0 {
		var ar []row
		ar, err = analyticsMemoryRows(*dbURL, *memoryEvents, flag.Args())
		rows = append(rows, ar...)
	}
	if err == nil && sel["dashboard"] {
		var dr []row
		dr, err = dashboardRows(dashboardOpts{dbURL: *dbURL, events: *dashEvents, runs: *dashRuns, reuse: *dashReuse, steward: flag.Args()})
		rows = append(rows, dr...)
	}
	if err == nil {
		printTable(rows)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var cpuProfile string

type row struct {
	figure, ours, base, ratio, target string
}

func run(dbURL string, dur time.Duration, regN int) ([]row, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "steward-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	args := []string{"--data", dir, "--addr", ln.Addr().String(), "--base-url", base, "--rate-limits=false", "--log-level", "error"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	cfg, _, err := config.Load(args, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	go a.Serve(ctx, ln)
	engine := "SQLite"
	if dbURL != "" {
		engine = "PostgreSQL"
	}
	fmt.Printf("Steward benchmark: %s, GOMAXPROCS=%d, argon2id m=%d KiB t=%d p=%d, %s per figure\n\n",
		engine, runtime.GOMAXPROCS(0), cfg.Argon2.MemoryKiB, cfg.Argon2.Time, cfg.Argon2.Threads, dur)

	var rows []row
	p := account.Argon2(cfg.Argon2)

	// 1. Logins against raw hashes.
	email, pw := "bench@example.org", "violet-harbour-73"
	if err := member(ctx, a, base, email, pw, dir); err != nil {
		return nil, err
	}
	conc := runtime.GOMAXPROCS(0)
	hashes := rate(conc, dur, func() error {
		argon2.IDKey([]byte(pw), []byte("0123456789abcdef"), p.Time, p.MemoryKiB, p.Threads, 32)
		return nil
	})
	body, _ := json.Marshal(map[string]string{"email": email, "password": pw})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	logins := rate(conc, dur, func() error {
		resp, err := client.Post(base+"/api/v1/sessions", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("login: %d", resp.StatusCode)
		}
		return nil
	})
	rows = append(rows, row{fmt.Sprintf("logins/s vs raw argon2id/s (%d clients)", conc), f0(logins), f0(hashes), ratio(logins, hashes), ">= 0.90"})

	// 2. Session checks against a bare handler.
	var lr struct{ Token string }
	resp, err := client.Post(base+"/api/v1/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	bareLn, _ := net.Listen("tcp", "127.0.0.1:0")
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })}
	go bare.Serve(bareLn)
	defer bare.Close()
	loader := "wrk -t2 -c64"
	bareRate, err := load("http://"+bareLn.Addr().String()+"/", "", dur)
	if err != nil {
		return nil, err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	meRate, err := load(base+"/api/v1/me", lr.Token, dur)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		loader = "Go client, 64 connections (wrk not installed)"
	}
	rows = append(rows, row{"GET /api/v1/me per s vs bare handler (" + loader + ")", f0(meRate), f0(bareRate), ratio(meRate, bareRate), ">= 0.30"})

	// 3. Registration latency at 32 concurrent clients, against the hash alone.
	const clients = 32
	hashLat := latencies(clients, regN, func(int) error {
		argon2.IDKey([]byte(pw), []byte("0123456789abcdef"), p.Time, p.MemoryKiB, p.Threads, 32)
		return nil
	})
	regLat := latencies(clients, regN, func(i int) error {
		b, _ := json.Marshal(map[string]string{"email": fmt.Sprintf("reg%d@example.org", i), "password": pw, "name": "Bench Member",
			"birthdate": "1980-01-01", "country": "DE"})
		resp, err := client.Post(base+"/api/v1/accounts", "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("register: %d", resp.StatusCode)
		}
		return nil
	})
	for _, q := range []float64{0.50, 0.99} {
		o, b := pct(regLat, q), pct(hashLat, q)
		rows = append(rows, row{fmt.Sprintf("registration p%.0f ms vs hash alone (%d clients)", q*100, clients),
			fmt.Sprintf("%.1f", ms(o)), fmt.Sprintf("%.1f", ms(b)), ratio(ms(o), ms(b)), "(lower is better)"})
	}

	return rows, nil
}

func printTable(rows []row) {
	fmt.Printf("| %-66s | %12s | %12s | %6s | %-17s |\n", "figure", "ours", "baseline", "ratio", "target")
	fmt.Printf("|%s|%s|%s|%s|%s|\n", dash(68), dash(14), dash(14), dash(8), dash(19))
	for _, r := range rows {
		fmt.Printf("| %-66s | %12s | %12s | %6s | %-17s |\n", r.figure, r.ours, r.base, r.ratio, r.target)
	}
}

// member registers, verifies and returns once the account can log in.
func member(ctx context.Context, a *app.App, base, email, pw, dir string) error {
	return memberWith(ctx, a, base, map[string]string{"email": email, "password": pw, "name": "Bench", "birthdate": "1980-01-01", "country": "DE"}, dir)
}

// memberWith is member with the registration's fields given (email and password among
// them). The confirmation mail is read from dir's outbox folder.
func memberWith(ctx context.Context, a *app.App, base string, fields map[string]string, dir string) error {
	b, _ := json.Marshal(fields)
	resp, err := http.Post(base+"/api/v1/accounts", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("register: %d %s", resp.StatusCode, msg)
	}
	re := regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.eml"))
		for _, f := range files {
			enc, _ := os.ReadFile(f)
			raw, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
			if m := re.FindSubmatch(raw); m != nil {
				_, err := a.Accounts().VerifyEmail(ctx, string(m[1]), account.Meta{})
				return err
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no confirmation mail")
}

// rate runs fn from conc goroutines for d and returns completions per second.
func rate(conc int, d time.Duration, fn func() error) float64 {
	var n atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: error during measurement:", err)
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// load measures requests per second on url with wrk, or a Go client without it.
func load(url, token string, d time.Duration) (float64, error) {
	if _, err := exec.LookPath("wrk"); err == nil {
		args := []string{"-t2", "-c64", "-d" + strconv.Itoa(int(d.Seconds())) + "s"}
		if token != "" {
			args = append(args, "-H", "Authorization: Bearer "+token)
		}
		out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("wrk: %v: %s", err, out)
		}
		if bytes.Contains(out, []byte("Non-2xx")) {
			return 0, fmt.Errorf("wrk saw errors on %s:\n%s", url, out)
		}
		m := wrkRate.FindSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("wrk output: %s", out)
		}
		return strconv.ParseFloat(string(m[1]), 64)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return rate(64, d, func() error {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s: %d", url, resp.StatusCode)
		}
		return nil
	}), nil
}

// latencies runs n calls of fn from conc goroutines and returns each call's duration.
func latencies(conc, n int, fn func(i int) error) []time.Duration {
	var next atomic.Int64
	out := make([]time.Duration, n)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := fn(i); err != nil {
					fmt.Fprintln(os.Stderr, "bench:", err)
				}
				out[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
func ms(d time.Duration) float64                     { return float64(d) / float64(time.Millisecond) }
func f0(v float64) string                            { return strconv.FormatFloat(v, 'f', 0, 64) }
func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
func dash(n int) string { return string(bytes.Repeat([]byte("-"), n)) }
