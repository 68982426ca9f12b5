// Analytics figures: page beacons per second through POST /api/v1/events and GET
// /b.gif, against a bare net/http handler answering 204 to the same requests (wrk with
// the same Lua script: a new path and a random client address behind the trusted proxy
// for every request), in the same run. Target ratio >= 0.6 on SQLite and PostgreSQL.
// After the load, every beacon answered 204 must be in the store.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"steward/internal/app"
	"steward/internal/config"
)

// beaconLua makes every wrk request a beacon of a new page from a random address.
const beaconLua = `
counter = 0
math.randomseed(os.time())
function request()
  counter = counter + 1
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  local headers = {["X-Forwarded-For"] = ip, ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"}
  if GIF then
    return wrk.format("GET", "/b.gif?s=example.com&p=/page/" .. (counter % 500) .. "&r=https://search.example.net/", headers)
  end
  headers["Content-Type"] = "text/plain;charset=UTF-8"
  local body = '{"site":"example.com","kind":"pageview","path":"/page/' .. (counter % 500) .. '","referrer":"https://search.example.net/"}'
  return wrk.format("POST", "/api/v1/events", headers, body)
end
`

type analyticsOpts struct {
	dbURL   string
	dur     time.Duration
	steward []string
}

func analyticsRows(o analyticsOpts) ([]row, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, fmt.Errorf("analytics figures need wrk (apt-get install wrk)")
	}
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
	args := []string{"--data", dir, "--addr", ln.Addr().String(), "--base-url", base, "--log-level", "error",
		"--analytics-sites", "example.com", "--analytics-cookieless=true", "--trust-proxy=true", "--rate-limits=true"}
	if o.dbURL != "" {
		args = append(args, "--database", o.dbURL)
	}
	cfg, _, err := config.Load(append(args, o.steward...), func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	go a.Serve(ctx, ln)
	// The jobs a node runs once at its start (the hourly statistics rollup among them)
	// would otherwise fall inside the first rounds and stand there for an hour's work:
	// the figure is the steady ingestion, so it starts once they have run.
	if err := startJobsRan(a, 30*time.Second, "analytics_maintain", "audit_verify", "retention"); err != nil {
		return nil, err
	}
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })}
	go bare.Serve(bareLn)
	defer bare.Close()
	bareBase := "http://" + bareLn.Addr().String()
	engine := "SQLite"
	if o.dbURL != "" {
		engine = "PostgreSQL"
	}
	var before int64
	if err := a.Analytics().DB().QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&before); err != nil {
		return nil, err
	}
	var rows []row
	accepted, runs := 0, 0
	for _, fig := range []struct {
		name string
		gif  bool
	}{{"POST /api/v1/events", false}, {"GET /b.gif", true}} {
		// The machine is shared: its load moves within seconds. So the two alternate in
		// rounds of a second or more (baseline, ours, baseline, ours...), and the figure
		// is the median of the rounds' ratios, with the rates summed over all rounds.
		rounds := max(3, int(o.dur/time.Second))
		per := max(time.Second, o.dur/time.Duration(rounds))
		var ratios []float64
		var oursN, bareN, oursS, bareS float64
		for range rounds {
			b, err := beaconLoad(bareBase, fig.gif, per)
			if err != nil {
				return nil, err
			}
			if cpuProfile != "" {
				pf, err := os.Create(fmt.Sprintf("%s.%s.%d", cpuProfile, map[bool]string{false: "events", true: "gif"}[fig.gif], len(ratios)))
				if err != nil {
					return nil, err
				}
				if err := pprof.StartCPUProfile(pf); err != nil {
					return nil, err
				}
			}
			ours, err := beaconLoad(base, fig.gif, per)
			if cpuProfile != "" {
				pprof.StopCPUProfile()
			}
			if err != nil {
				return nil, err
			}
			accepted += ours.requests
			runs++
			ratios = append(ratios, ours.rate/b.rate)
			oursN, bareN = oursN+ours.rate*per.Seconds(), bareN+b.rate*per.Seconds()
			oursS, bareS = oursS+per.Seconds(), bareS+per.Seconds()
			fmt.Fprintf(os.Stderr, "bench: %s round %d: bare %.0f/s, ours %.0f/s, ratio %.2f; CPU per request: server %s (bare %s), wrk %s (bare %s); %s; load average %s\n",
				fig.name, len(ratios), b.rate, ours.rate, ours.rate/b.rate, ours.perRequest(ours.serverCPU), b.perRequest(b.serverCPU),
				ours.perRequest(ours.loaderCPU), b.perRequest(b.loaderCPU), ours.heapPerRequest(), loadAverage())
		}
		sort.Float64s(ratios)
		rows = append(rows, row{fmt.Sprintf("%s beacons/s vs bare 204, %s (wrk -t2 -c64, median of %d)", fig.name, engine, rounds),
			f0(oursN / oursS), f0(bareN / bareS), fmt.Sprintf("%.2f", ratios[len(ratios)/2]), ">= 0.60"})
	}
	if cpuProfile != "" {
		// The heap's allocations over the whole load, by where they were made.
		if pf, err := os.Create(cpuProfile + ".allocs"); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(pf, 0)
			pf.Close()
		}
	}
	if err := a.Analytics().Flush(ctx); err != nil {
		return nil, err
	}
	var after int64
	if err := a.Analytics().DB().QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&after); err != nil {
		return nil, err
	}
	// wrk counts the answers it read before its time ran out; the server also took the
	// requests then in flight, at most one per connection and run.
	if stored := int(after - before); stored < accepted || stored > accepted+64*runs {
		return nil, fmt.Errorf("wrk had %d beacons answered, the store holds %d", accepted, stored)
	}
	rows = append(rows, row{"beacons stored / answered 204 (+ those in flight at the end)", strconv.FormatInt(after-before, 10), strconv.Itoa(accepted),
		ratio(float64(after-before), float64(accepted)), ">= 1.00"})
	fmt.Fprintf(os.Stderr, "bench: request log lines dropped for a full buffer: %d; load average %s\n", a.Analytics().Dropped(), loadAverage())
	return rows, nil
}

// beaconLoad runs wrk with beaconLua on base for d; any answer but 2xx is an error.
func beaconLoad(base string, gif bool, d time.Duration) (loadResult, error) {
	f, err := os.CreateTemp("", "steward-bench-*.lua")
	if err != nil {
		return loadResult{}, err
	}
	defer os.Remove(f.Name())
	fmt.Fprintf(f, "GIF = %v\n%s", gif, beaconLua)
	f.Close()
	cmd := exec.Command("wrk", "-t2", "-c64", "-d"+strconv.Itoa(int(d.Seconds()))+"s", "-s", f.Name(), base+"/")
	before := processCPU()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	out, err := cmd.CombinedOutput()
	runtime.ReadMemStats(&m1)
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	server := processCPU() - before
	var loader time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		loader = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if bytes.Contains(out, []byte("Non-2xx")) {
		return loadResult{}, fmt.Errorf("wrk saw errors on %s:\n%s", base, out)
	}
	m, n := wrkRate.FindSubmatch(out), wrkRequests.FindSubmatch(out)
	if m == nil || n == nil {
		return loadResult{}, fmt.Errorf("wrk output: %s", out)
	}
	r, _ := strconv.ParseFloat(string(m[1]), 64)
	reqs, _ := strconv.Atoi(string(n[1]))
	return loadResult{rate: r, requests: reqs, loader: "wrk -t2 -c64", serverCPU: server, loaderCPU: loader,
		allocs: m1.Mallocs - m0.Mallocs, allocBytes: m1.TotalAlloc - m0.TotalAlloc, gcs: m1.NumGC - m0.NumGC}, nil
}

// processCPU is the CPU time this process (the bench, with the server under load in
// it) has used so far. Per request, it tells the server's cost apart from the
// machine's load, which moves the rates.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// startJobsRan waits until each of kinds has run once on a's node (its start-up run).
func startJobsRan(a *app.App, limit time.Duration, kinds ...string) error {
	deadline := time.Now().Add(limit)
	for {
		ran := map[string]bool{}
		for _, r := range a.Jobs().Runs() {
			ran[r.Kind] = true
		}
		missing := ""
		for _, k := range kinds {
			if !ran[k] {
				missing = k
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the start-up job %s did not run within %s", missing, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
