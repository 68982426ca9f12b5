// Command soak loads a real steward with a mix of members' requests (logins, profile
// reads, uploads, downloads, subscriptions, exports, erasures) from many clients, and
// reports requests served, errors, latencies per route and the server's resident memory.
// Run it through scripts/soak.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"steward/internal/tools/stress"
)

func main() {
	engine := flag.String("engine", "sqlite", "sqlite, or postgres (STEWARD_TEST_POSTGRES_URL; S3 from STEWARD_TEST_S3_* when set)")
	limits := flag.Bool("rate-limits", false, "keep the server's rate limits on (every client is 127.0.0.1, so expect 429s)")
	verbose := flag.Bool("v", false, "show the server's output")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: soak [DURATION] [CLIENTS] [--engine sqlite|postgres] [--rate-limits] [-v] [-- SERVE FLAGS]")
		flag.PrintDefaults()
	}
	dur, clients := 10*time.Minute, 200
	args := os.Args[1:]
	if len(args) > 0 {
		if d, err := time.ParseDuration(args[0]); err == nil {
			dur, args = d, args[1:]
		}
	}
	if len(args) > 0 {
		if _, err := fmt.Sscan(args[0], &clients); err == nil {
			args = args[1:]
		}
	}
	flag.CommandLine.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	opts := stress.SoakOptions{Duration: dur, Clients: clients, Engine: *engine, Dir: dir, RateLimits: *limits, Args: flag.Args(), Progress: os.Stderr}
	if *verbose {
		opts.Log = os.Stderr
	}
	rep, err := stress.Soak(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Print(stress.FormatSoak(rep, *engine, clients))
	if rep.Errors > 0 {
		os.Exit(1)
	}
}
