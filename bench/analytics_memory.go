package main

// The analytics memory figure (-only analytics-memory): a separate steward process
// (so that /proc tells its memory alone) takes -memory-events page beacons (default
// 10,000,000) through GET /b.gif and POST /api/v1/events from wrk, each from a random
// address, on 5,000 pages, with five browsers, under the per-address rate limit; then
// its peak resident memory (VmHWM) and its resident memory at the end (VmRSS) are read
// against the target of 200 MiB. Every beacon answered must be in the store.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"steward/internal/analytics"
	"steward/internal/store"
)

// memoryLua is beaconLua with more pages and browsers: what a server's memory could
// grow with (the caches of user agents, the rate limiter's addresses) varies.
const memoryLua = `
counter = 0
math.randomseed(os.time() + os.clock() * 1000)
local agents = {
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
}
function request()
  counter = counter + 1
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  local headers = {["X-Forwarded-For"] = ip, ["User-Agent"] = agents[counter % 5 + 1]}
  local page = "/page/" .. math.random(1, 5000)
  if GIF then
    return wrk.format("GET", "/b.gif?s=example.com&p=" .. page .. "&r=https://search.example.net/q", headers)
  end
  headers["Content-Type"] = "text/plain;charset=UTF-8"
  local body = '{"site":"example.com","kind":"pageview","path":"' .. page .. '","referrer":"https://news.example.org/a"}'
  return wrk.format("POST", "/api/v1/events", headers, body)
end
`

func analyticsMemoryRows(dbURL string, events int, extra []string) ([]row, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, fmt.Errorf("the analytics memory figure needs wrk (apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "steward-bench-analytics-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	args := []string{"--analytics-sites", "example.com", "--analytics-cookieless=true", "--trust-proxy=true", "--rate-limits=true"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	cmd, base, err := startSteward(dir, append(args, extra...))
	if err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	startRSS, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	var scripts [2]string
	for i, gif := range []bool{false, true} {
		f, err := os.CreateTemp("", "steward-bench-*.lua")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		fmt.Fprintf(f, "GIF = %v\n%s", gif, memoryLua)
		f.Close()
		scripts[i] = f.Name()
	}
	answered, chunks := 0, 0
	t0 := time.Now()
	for answered < events {
		// Chunks of at most 30 s, GET and POST in turn; the last one is cut to what is
		// left at the rate seen so far.
		d := 30 * time.Second
		if answered > 0 {
			rate := float64(answered) / time.Since(t0).Seconds()
			d = min(d, max(time.Second, time.Duration(float64(events-answered)/rate*float64(time.Second))))
		}
		out, err := exec.Command("wrk", "-t2", "-c64", "-d"+strconv.Itoa(int(d.Seconds()))+"s", "-s", scripts[chunks%2], base+"/").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("wrk: %v: %s", err, out)
		}
		n := wrkRequests.FindSubmatch(out)
		if n == nil {
			return nil, fmt.Errorf("wrk output: %s", out)
		}
		if bytes.Contains(out, []byte("Non-2xx")) {
			return nil, fmt.Errorf("wrk saw answers other than 2xx:\n%s", out)
		}
		k, _ := strconv.Atoi(string(n[1]))
		answered += k
		chunks++
		rss, _ := vmRSS(cmd.Process.Pid)
		fmt.Fprintf(os.Stderr, "bench: analytics memory: %d beacons answered in %s, RSS %d MiB; load average %s\n",
			answered, time.Since(t0).Round(time.Second), rss>>10, loadAverage())
	}
	took := time.Since(t0)
	time.Sleep(2 * time.Second) // the buffer writes within 250 ms
	rss, err := vmRSS(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	hwm, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	u := "sqlite:" + filepath.Join(data, "steward.db")
	if dbURL != "" {
		u = dbURL
	}
	au, err := analytics.StoreURL(u, "")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	db, err := store.Open(ctx, au)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var stored int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
		return nil, err
	}
	if stored < answered {
		return nil, fmt.Errorf("wrk had %d beacons answered, the store holds %d", answered, stored)
	}
	engine := "SQLite"
	if dbURL != "" {
		engine = "PostgreSQL"
	}
	fmt.Printf("  analytics memory: %d beacons in %s (%.0f/s), %d stored; RSS %d MiB at the start, %d MiB at the end, peak %d MiB\n",
		answered, took.Round(time.Second), float64(answered)/took.Seconds(), stored, startRSS>>10, rss>>10, hwm>>10)
	return []row{
		{fmt.Sprintf("steward peak resident memory after %d beacons, %s (MiB)", answered, engine), strconv.FormatInt(hwm>>10, 10), "200",
			fmt.Sprintf("%.2f", float64(hwm>>10)/200), "<= 1.00"},
		{fmt.Sprintf("steward resident memory at the end, %s (MiB)", engine), strconv.FormatInt(rss>>10, 10), "200",
			fmt.Sprintf("%.2f", float64(rss>>10)/200), "<= 1.00"},
	}, nil
}
