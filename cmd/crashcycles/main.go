// Command crashcycles kills a real steward with SIGKILL at random moments during
// concurrent registrations, uploads, erasures, imports and campaigns, restarts it, and
// checks that nothing acknowledged was lost and nothing was left half done. Run it through
// scripts/crash-cycles.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"steward/internal/tools/stress"
)

func main() {
	engine := flag.String("engine", "sqlite", "sqlite, or postgres (STEWARD_TEST_POSTGRES_URL; S3 from STEWARD_TEST_S3_* when set)")
	seed := flag.Uint64("seed", 0, "random seed (0: a random one, printed)")
	settle := flag.Duration("settle", 330*time.Second, "how long the end waits for every campaign to be sent (a send job the kill cut short waits for River's rescue of stuck jobs, 5m)")
	verbose := flag.Bool("v", false, "show the server's output")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: crashcycles [N] [--engine sqlite|postgres] [--seed S] [--settle D] [-v]")
		flag.PrintDefaults()
	}
	// The count may come before or after the flags.
	args := os.Args[1:]
	n := 100
	if len(args) > 0 {
		if v, err := strconv.Atoi(args[0]); err == nil {
			n, args = v, args[1:]
		}
	}
	flag.CommandLine.Parse(args)
	if flag.NArg() == 1 {
		v, err := strconv.Atoi(flag.Arg(0))
		if err != nil {
			flag.Usage()
			os.Exit(2)
		}
		n = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "crashcycles-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	opts := stress.CrashOptions{Cycles: n, Engine: *engine, Dir: dir, Seed: *seed, Settle: *settle, Progress: os.Stderr}
	if *verbose {
		opts.Log = os.Stderr
	}
	rep, err := stress.Crash(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashcycles:", err)
		if rep == nil {
			os.Exit(1)
		}
	}
	kinds := make([]string, 0, len(rep.Acknowledged))
	total := 0
	for k, v := range rep.Acknowledged {
		kinds = append(kinds, k)
		total += v
	}
	sort.Strings(kinds)
	fmt.Printf("engine: %s, seed: %d, time: %s\n", *engine, rep.Seed, rep.Elapsed.Round(1e9))
	fmt.Printf("cycles survived: %d of %d (SIGKILLs: %d)\n", rep.Cycles, n, rep.Kills)
	fmt.Printf("operations acknowledged: %d\n", total)
	for _, k := range kinds {
		fmt.Printf("  %s: %d\n", k, rep.Acknowledged[k])
	}
	fmt.Printf("campaigns still sending at the end (their job waits for River's rescue): %d\n", rep.Pending)
	fmt.Printf("campaign mails delivered more than once (each a violation): %d\n", rep.Duplicates)
	fmt.Printf("campaign deliveries unconfirmed (a kill while handing them over; 0 with the .eml outbox, which is asked): %d\n", rep.Unconfirmed)
	fmt.Printf("violations: %d\n", len(rep.Violations))
	for _, v := range rep.Violations {
		fmt.Println("  " + v)
	}
	if err != nil || len(rep.Violations) > 0 || rep.Cycles < n {
		os.Exit(1)
	}
}
