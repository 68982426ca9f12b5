package analytics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"steward/internal/store"
)

// The dimensions of a site's day in daily_dims.
const (
	DimTotal      = "total"      // key "": visitors with a pageview, pageviews
	DimPage       = "page"       // the page's path: visitors, pageviews
	DimEntry      = "entry"      // a visitor's first page of the day: visitors, entries
	DimExit       = "exit"       // a visitor's last page of the day: visitors, exits
	DimReferrer   = "referrer"   // the referrer's host ("" for none): visitors, pageviews
	DimCountry    = "country"    // ISO code ("ZZ" unknown): visitors, pageviews
	DimBrowser    = "browser"    // the browser's family ("" unknown): visitors, pageviews
	DimEvent      = "event"      // a custom event's name: visitors, events
	DimOutbound   = "outbound"   // an outbound link's host: visitors, clicks
	DimTransition = "transition" // key: a page, next: the page the same visitor viewed next: visitors, transitions
	// DimCampaign is read from daily_campaigns (attribution): key: source/medium/campaign,
	// visitors, pageviews; DimConversion: key: the campaign's, next: the goal,
	// visitors: the conversions.
	DimCampaign   = "campaign"
	DimConversion = "conversion"
)

// Dims are the breakdowns, in the order the dashboards show them. Campaigns and their
// conversions are rolled up apart (attribution, daily_campaigns) and published under
// the same rule.
var Dims = []string{DimPage, DimEntry, DimExit, DimReferrer, DimCountry, DimBrowser, DimEvent, DimOutbound, DimTransition,
	DimCampaign, DimConversion}

// KeepRows is how many rows of each site's day and dimension the rollup keeps by name;
// the others are summed in one rest row. It bounds a day's rollup and the dashboard's
// reading of a month, whatever the number of distinct pages or transitions.
const KeepRows = 50

type dimKey struct{ site, dim, key, next string }

type counts struct{ visitors, hits int64 }

// dayRollup is a day's rollup as inserted: the arguments of daily_sites, daily_pages
// and daily_dims rows.
type dayRollup struct{ sites, pages, dims []any }

// rollupDay counts day from its events: it reads them once, in the order of (site,
// visitor hash, time), so that each visitor's day is seen whole (entry, exit,
// transitions, distinct visitors per row) while only the rows' counts are held in
// memory; robots are counted apart. The same events give the same rows: a day rolled
// up twice is the same.
func (s *Service) rollupDay(ctx context.Context, day int64) (dayRollup, error) {
	var out dayRollup
	rows, err := s.db.QueryContext(ctx, `SELECT site, visitor, kind, path, referrer, name, browser, country, bot FROM events
		WHERE day = $1 ORDER BY site, visitor, at, kind, path, name`, day)
	if err != nil {
		return out, fmt.Errorf("analytics: rollup: %w", err)
	}
	defer rows.Close()
	agg := map[dimKey]*counts{}
	type siteDay struct{ visitors, pageviews, events, bots int64 }
	perSite := map[string]*siteDay{}
	var sd *siteDay
	active := false            // the current visitor sent an event that is not a robot's
	mine := map[dimKey]int64{} // the current visitor's rows and hits
	var site string
	var visitor int64
	var first, last, prev string
	seen := false
	end := func() {
		if active {
			sd.visitors++
		}
		active = false
		if first != "" {
			mine[dimKey{site, DimEntry, first, ""}]++
			mine[dimKey{site, DimExit, last, ""}]++
		}
		for k, n := range mine {
			c := agg[k]
			if c == nil {
				c = &counts{}
				agg[k] = c
			}
			c.visitors++
			c.hits += n
		}
		clear(mine)
		first, last, prev = "", "", ""
	}
	for rows.Next() {
		var e struct{ site, kind, path, referrer, name, browser, country string }
		var v, bot int64
		if err := rows.Scan(&e.site, &v, &e.kind, &e.path, &e.referrer, &e.name, &e.browser, &e.country, &bot); err != nil {
			return out, fmt.Errorf("analytics: rollup: %w", err)
		}
		if seen && (e.site != site || v != visitor) {
			end()
		}
		if !seen || e.site != site {
			if sd = perSite[e.site]; sd == nil {
				sd = &siteDay{}
				perSite[e.site] = sd
			}
		}
		seen, site, visitor = true, e.site, v
		if bot != 0 {
			sd.bots++
			continue
		}
		active = true
		if e.kind == Pageview {
			sd.pageviews++
		} else {
			sd.events++
		}
		switch e.kind {
		case Pageview:
			mine[dimKey{site, DimTotal, "", ""}]++
			mine[dimKey{site, DimPage, e.path, ""}]++
			mine[dimKey{site, DimReferrer, host(e.referrer), ""}]++
			mine[dimKey{site, DimCountry, e.country, ""}]++
			mine[dimKey{site, DimBrowser, e.browser, ""}]++
			if prev != "" {
				mine[dimKey{site, DimTransition, prev, e.path}]++
			}
			if first == "" {
				first = e.path
			}
			last, prev = e.path, e.path
		case Custom:
			mine[dimKey{site, DimEvent, e.name, ""}]++
		case Outbound:
			mine[dimKey{site, DimOutbound, host(e.name), ""}]++
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("analytics: rollup: %w", err)
	}
	if seen {
		end()
	}
	for site, d := range perSite {
		out.sites = append(out.sites, site, day, d.visitors, d.pageviews, d.events, d.bots)
	}
	for k, c := range agg {
		if k.dim == DimPage {
			out.pages = append(out.pages, k.site, day, k.key, c.visitors, c.hits)
		}
	}
	out.dims = dimRows(agg, day)
	return out, nil
}

// dimRows orders each site's dimension by visitors, hits, key and next, keeps the
// first KeepRows and sums the others into the rest row, and returns the insert's
// arguments.
func dimRows(agg map[dimKey]*counts, day int64) []any {
	type group struct{ site, dim string }
	type cell struct {
		key, next string
		c         counts
	}
	groups := map[group][]cell{}
	for k, c := range agg {
		g := group{k.site, k.dim}
		groups[g] = append(groups[g], cell{k.key, k.next, *c})
	}
	keys := make([]group, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.SortFunc(keys, func(a, b group) int { return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.dim, b.dim)) })
	var args []any
	for _, g := range keys {
		cells := groups[g]
		slices.SortFunc(cells, func(a, b cell) int {
			return cmp.Or(cmp.Compare(b.c.visitors, a.c.visitors), cmp.Compare(b.c.hits, a.c.hits), cmp.Compare(a.key, b.key), cmp.Compare(a.next, b.next))
		})
		var rest counts
		for i, c := range cells {
			if i >= KeepRows {
				rest.visitors += c.c.visitors
				rest.hits += c.c.hits
				continue
			}
			args = append(args, g.site, day, g.dim, 0, c.key, c.next, c.c.visitors, c.c.hits)
		}
		if rest.visitors > 0 {
			args = append(args, g.site, day, g.dim, 1, "", "", rest.visitors, rest.hits)
		}
	}
	return args
}

// host is the host of a cleaned URL (host and path, no scheme), "" for none.
func host(u string) string {
	h, _, _ := strings.Cut(u, "/")
	return h
}

// write replaces day's rows of daily_sites, daily_pages and daily_dims in tx.
func (r dayRollup) write(ctx context.Context, tx *store.Tx, day int64) error {
	for _, q := range []string{`DELETE FROM daily_sites WHERE day = $1`, `DELETE FROM daily_pages WHERE day = $1`, `DELETE FROM daily_dims WHERE day = $1`} {
		if _, err := tx.ExecContext(ctx, q, day); err != nil {
			return fmt.Errorf("analytics: rollup: %w", err)
		}
	}
	for _, ins := range []struct {
		head string
		cols int
		args []any
	}{
		{`INSERT INTO daily_sites (site, day, visitors, pageviews, events, bots) VALUES `, 6, r.sites},
		{`INSERT INTO daily_pages (site, day, path, visitors, pageviews) VALUES `, 5, r.pages},
		{`INSERT INTO daily_dims (site, day, dim, rest, item, next, visitors, hits) VALUES `, 8, r.dims},
	} {
		if len(ins.args) == 0 {
			continue
		}
		if err := tx.InsertRows(ctx, ins.head, ins.cols, ins.args, ""); err != nil {
			return fmt.Errorf("analytics: rollup: %w", err)
		}
	}
	return nil
}
