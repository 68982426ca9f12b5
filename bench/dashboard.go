// Dashboard figure: a month of page statistics (10,000,000 events over 30 days by
// default, on several sites, with skewed pages, referrers, countries, browsers and
// visitors) loaded into the analytics store in batched inserts, rolled up day by day
// (timed), then the 30-day dashboard's queries (the range with every breakdown, and
// the period before for the comparison, published under the k rule) timed over
// -dashboard-runs runs: median and p95 against the target of 100 ms.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"time"

	"steward/internal/analytics"
	"steward/internal/app"
	"steward/internal/config"
	"steward/internal/store"
)

type dashboardOpts struct {
	dbURL   string
	events  int
	runs    int
	reuse   bool // a PostgreSQL store already loaded and rolled up today: time the queries only
	steward []string
}

// zipf draws 0..n-1 with weight 1/(i+1)^s.
type zipf struct{ cdf []float64 }

func newZipf(n int, s float64) zipf {
	z := zipf{cdf: make([]float64, n)}
	var sum float64
	for i := range n {
		sum += 1 / math.Pow(float64(i+1), s)
		z.cdf[i] = sum
	}
	for i := range z.cdf {
		z.cdf[i] /= sum
	}
	return z
}

func (z zipf) draw(r *rand.Rand) int {
	return min(sort.SearchFloat64s(z.cdf, r.Float64()), len(z.cdf)-1)
}

func dashboardRows(o dashboardOpts) ([]row, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "steward-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sites := []string{"www.example.com", "shop.example.com", "docs.example.com", "blog.example.com"}
	siteW := newZipf(len(sites), 1.2)
	args := []string{"--data", dir, "--log-level", "error", "--analytics-sites", "www.example.com,shop.example.com,docs.example.com,blog.example.com",
		"--stats-public-sites", "www.example.com"}
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
	an := a.Analytics()
	db := an.DB()
	engine := "SQLite"
	if db.Dialect == store.Postgres {
		engine = "PostgreSQL"
	}

	// The month: 30 days ending today, each with its share of the events.
	const days = 30
	today := analytics.DayOf(time.Now())
	first := today - days + 1
	r := rand.New(rand.NewPCG(15, 7))
	pages, refs, countries, browsers, evs, outs := newZipf(400, 1.1), newZipf(60, 1.3), newZipf(60, 1.4), newZipf(6, 1.5), newZipf(12, 1.2), newZipf(40, 1.2)
	countryCodes := []string{"US", "DE", "GB", "FR", "IN", "BR", "CA", "NL", "ES", "IT", "JP", "AU", "PL", "SE", "CH", "AT", "BE", "MX", "KR", "ZZ"}
	browserNames := []string{"Chrome", "Safari", "Firefox", "Edge", "Samsung Browser", "Opera"}
	perDay := o.events / days
	const batchRows = 16384
	buf := make([]any, 0, batchRows*13)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			return tx.InsertRows(ctx, `INSERT INTO events (at, day, site, kind, path, referrer, name, props, campaign, visitor, browser, bot, country) VALUES `, 13, buf, "")
		})
		buf = buf[:0]
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&have); err != nil {
		return nil, err
	}
	if o.reuse && have >= perDay*days {
		return dashboardQueries(ctx, an, sites[0], first, today, o.runs, engine, have)
	}
	fmt.Fprintf(os.Stderr, "dashboard: loading %d events over %d days into the analytics store (%s)...\n", perDay*days, days, engine)
	loadStart := time.Now()
	total := 0
	for d := first; d <= today; d++ {
		n := 0
		for n < perDay {
			site := sites[siteW.draw(r)]
			visitor := int64(r.Uint64())
			country := countryCodes[min(countries.draw(r), len(countryCodes)-1)]
			browser := browserNames[browsers.draw(r)]
			at := d*86400_000 + r.Int64N(86400_000-3600_000)
			views := 1 + int(r.ExpFloat64()*2) // about 3 pages a visit
			ref := ""
			if x := refs.draw(r); x > 0 {
				ref = "ref" + strconv.Itoa(x) + ".example.net/"
			}
			page := pages.draw(r)
			for v := 0; v < views && n < perDay; v++ {
				buf = append(buf, at, d, site, analytics.Pageview, "/p/"+strconv.Itoa(page), ref, "", "", "", visitor, browser, 0, country)
				n++
				at += 1000 + r.Int64N(60_000)
				ref = ""
				page = pages.draw(r)
				if x := r.IntN(100); x < 5 && n < perDay {
					buf = append(buf, at, d, site, analytics.Custom, "/p/"+strconv.Itoa(page), "", "event-"+strconv.Itoa(evs.draw(r)), "", "", visitor, browser, 0, country)
					n++
				} else if x < 8 && n < perDay {
					buf = append(buf, at, d, site, analytics.Outbound, "/p/"+strconv.Itoa(page), "", "partner"+strconv.Itoa(outs.draw(r))+".example.org/", "", "", visitor, browser, 0, country)
					n++
				}
				if len(buf) >= batchRows*13 {
					if err := flush(); err != nil {
						return nil, err
					}
				}
			}
		}
		total += n
	}
	if err := flush(); err != nil {
		return nil, err
	}
	load := time.Since(loadStart)
	fmt.Fprintf(os.Stderr, "dashboard: loaded %d events in %s (%.0f/s); rolling up...\n", total, load.Round(time.Millisecond), float64(total)/load.Seconds())

	var rollups []time.Duration
	rollStart := time.Now()
	for d := first; d <= today; d++ {
		t0 := time.Now()
		if err := an.Rollup(ctx, d); err != nil {
			return nil, err
		}
		rollups = append(rollups, time.Since(t0))
	}
	roll := time.Since(rollStart)
	sort.Slice(rollups, func(i, j int) bool { return rollups[i] < rollups[j] })
	var dims int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM daily_dims`).Scan(&dims); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "dashboard: rolled up in %s (%d rows of daily_dims); timing the dashboard...\n", roll.Round(time.Millisecond), dims)

	q, err := dashboardQueries(ctx, an, sites[0], first, today, o.runs, engine, total)
	if err != nil {
		return nil, err
	}
	return append([]row{
		{fmt.Sprintf("dashboard: load %d events, %s (events/s)", total, engine), f0(float64(total) / load.Seconds()), "-", "-", "(information)"},
		{fmt.Sprintf("dashboard: rollup of 30 days, %s (s; slowest day %.2f s, %d events a day)", engine, rollups[len(rollups)-1].Seconds(), perDay),
			fmt.Sprintf("%.1f", roll.Seconds()), "-", "-", "(a day: seconds)"},
	}, q...), nil
}

// dashboardQueries times the dashboard's queries over first..today.
func dashboardQueries(ctx context.Context, an *analytics.Service, site string, first, today int64, runs int, engine string, total int) ([]row, error) {
	const days = 30
	var err error
	// The dashboard's queries, as the page and GET /api/v1/staff/stats run them: the
	// 30 days with every breakdown, and the 30 days before (totals) for the deltas.
	dash := func() (analytics.Stats, error) {
		st, err := an.Stats(ctx, site, first, today, true)
		if err != nil {
			return st, err
		}
		_, err = an.Stats(ctx, site, first-days, first-1, false)
		return st, err
	}
	if _, err := dash(); err != nil { // warm
		return nil, err
	}
	var took []time.Duration
	var st analytics.Stats
	for range runs {
		t0 := time.Now()
		if st, err = dash(); err != nil {
			return nil, err
		}
		took = append(took, time.Since(t0))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	const target = 100 * time.Millisecond
	med, p95 := pct(took, 0.5), pct(took, 0.95)
	fmt.Fprintf(os.Stderr, "dashboard: %s over 30 days: %v visitors, %v pageviews (published, k=%d)\n", site, st.Visitors.Value, st.Pageviews.Value, st.K)
	return []row{
		{fmt.Sprintf("dashboard: 30-day query set median ms vs target, %s (%d runs, %d events)", engine, runs, total), fmt.Sprintf("%.1f", ms(med)),
			fmt.Sprintf("%.0f", ms(target)), ratio(ms(target), ms(med)), ">= 1 (target/ours)"},
		{fmt.Sprintf("dashboard: 30-day query set p95 ms vs target, %s", engine), fmt.Sprintf("%.1f", ms(p95)),
			fmt.Sprintf("%.0f", ms(target)), ratio(ms(target), ms(p95)), ">= 1 (target/ours)"},
	}, nil
}
