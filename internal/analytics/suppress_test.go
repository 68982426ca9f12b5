package analytics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomDays makes n days of a site from simulated visitors, rolled up as Rollup does
// (each visitor has one country, browser and entry page; pages, referrers, events and
// transitions are not partitions), with a few rows put in the rollup's rest row.
func randomDays(r *rand.Rand, k int64, first int64, n int) []DayCells {
	pick := func(m int) int { // skewed: small indexes more often
		return min(int(r.ExpFloat64()*float64(m)/3), m-1)
	}
	out := make([]DayCells, 0, n)
	for d := range n {
		day := DayCells{Day: first + int64(d), Rows: map[string][]Cell{}, Rest: map[string]Cell{}}
		type key struct{ dim, key, next string }
		agg := map[key]*Cell{}
		add := func(dim, k, next string, hits int64) {
			c := agg[key{dim, k, next}]
			if c == nil {
				c = &Cell{Key: k, Next: next}
				agg[key{dim, k, next}] = c
			}
			c.Visitors++
			c.Hits += hits
		}
		visitors := r.IntN(int(4 * k))
		if r.IntN(4) == 0 {
			visitors = r.IntN(int(k)) // a quiet day
		}
		for range visitors {
			views := 1 + r.IntN(4)
			pages := make([]string, views)
			perPage := map[string]int64{}
			perRef := map[string]int64{}
			for i := range pages {
				pages[i] = fmt.Sprintf("/p%d", pick(8))
				perPage[pages[i]]++
				perRef[fmt.Sprintf("r%d.example", pick(4))]++
			}
			day.Total.Visitors++
			day.Total.Hits += int64(views)
			add(DimCountry, fmt.Sprintf("C%d", pick(6)), "", int64(views))
			add(DimBrowser, fmt.Sprintf("B%d", pick(3)), "", int64(views))
			add(DimEntry, pages[0], "", 1)
			add(DimExit, pages[views-1], "", 1)
			for p, n := range perPage {
				add(DimPage, p, "", n)
			}
			for h, n := range perRef {
				add(DimReferrer, h, "", n)
			}
			trans := map[[2]string]int64{}
			for i := 1; i < views; i++ {
				trans[[2]string{pages[i-1], pages[i]}]++
			}
			for t, n := range trans {
				add(DimTransition, t[0], t[1], n)
			}
			if r.IntN(2) == 0 {
				add(DimEvent, fmt.Sprintf("e%d", pick(3)), "", int64(1+r.IntN(3)))
			}
		}
		for kk, c := range agg {
			if kk.key == "/p7" && kk.dim == DimPage { // as if past KeepRows
				rest := day.Rest[kk.dim]
				rest.Visitors += c.Visitors
				rest.Hits += c.Hits
				day.Rest[kk.dim] = rest
				continue
			}
			day.Rows[kk.dim] = append(day.Rows[kk.dim], *c)
		}
		out = append(out, day)
	}
	return out
}

// figures lists every published figure of an answer, and the sums a reader could
// form from them (a breakdown's shown rows, with and without its other; the days).
func figures(st Stats) []int64 {
	var out []int64
	add := func(f Figure) {
		if !f.Suppressed {
			out = append(out, f.Value)
		}
	}
	add(st.Visitors)
	add(st.Pageviews)
	var dv, dp int64
	for _, d := range st.Days {
		add(d.Visitors)
		add(d.Pageviews)
		dv += d.Visitors.Value
		dp += d.Pageviews.Value
	}
	out = append(out, dv, dp)
	for _, b := range st.Breakdowns {
		var sv, sh int64
		for _, row := range b.Rows {
			out = append(out, row.Visitors, row.Hits)
			sv += row.Visitors
			sh += row.Hits
		}
		out = append(out, sv, sh)
		add(b.Other.Visitors)
		add(b.Other.Hits)
		if !b.Other.Visitors.Suppressed {
			out = append(out, sv+b.Other.Visitors.Value, sh+b.Other.Hits.Value)
		}
	}
	return out
}

// smallDifference returns a pair of figures that differ by 1..k-1, if any: every pair
// is tried.
func smallDifference(a, b []int64, k int64) (int64, int64, bool) {
	for _, x := range a {
		for _, y := range b {
			if d := x - y; d >= 1 && d < k {
				return x, y, true
			}
		}
	}
	return 0, 0, false
}

// The suppression rule, on random tables: no published figure is in 1..k-1; no two
// figures of one answer, nor of two answers over overlapping or nested ranges, differ
// by 1..k-1; a day below k is suppressed whole; ranges are sums of the same days'
// figures; and a group's other is 0 or k or more wherever a row of it is shown.
func TestPublishProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 7))
	for iter := range 150 {
		k := int64(MinK + r.IntN(11))
		days := randomDays(r, k, 20000, 10)
		type answer struct {
			from, to int
			st       Stats
		}
		var answers []answer
		for range 8 {
			a := r.IntN(len(days))
			b := a + r.IntN(len(days)-a)
			answers = append(answers, answer{a, b, Publish(days[a:b+1], k, 1+r.IntN(12), true)})
			if b+1 < len(days) { // [a..b] and [a..b+1]
				answers = append(answers, answer{a, b + 1, Publish(days[a:b+2], k, 1+r.IntN(12), true)})
			}
		}
		for i, x := range answers {
			fx := figures(x.st)
			for _, v := range fx {
				if v != 0 && v < k {
					t.Fatalf("iter %d (k=%d): figure %d published", iter, k, v)
				}
			}
			for j := i; j < len(answers); j++ {
				y := answers[j]
				if y.from > x.to || x.from > y.to {
					continue // not overlapping
				}
				if a, b, bad := smallDifference(fx, figures(y.st), k); bad {
					t.Fatalf("iter %d (k=%d): answers [%d..%d] and [%d..%d] publish %d and %d", iter, k, x.from, x.to, y.from, y.to, a, b)
				}
			}
		}
		// Units: a range's figures are the sums of its days' figures.
		all := Publish(days, k, 1000, true)
		var want int64
		rows := map[string]int64{}
		for i, d := range days {
			one := Publish(days[i:i+1], k, 1000, true)
			if d.Total.Visitors < k != one.Visitors.Suppressed || all.Days[i] != one.Days[0] {
				t.Fatalf("iter %d: day %d with %d visitors published as %+v and %+v", iter, i, d.Total.Visitors, one.Days[0], all.Days[i])
			}
			if one.Days[0].Visitors.Suppressed {
				for _, b := range one.Breakdowns {
					if len(b.Rows) > 0 || !b.Other.Visitors.Suppressed && b.Other.Visitors.Value > 0 {
						t.Fatalf("iter %d: day %d below k publishes its %s: %+v", iter, i, b.Dim, b)
					}
				}
				continue
			}
			if v := one.Days[0].Visitors.Value; v < k || v-d.Total.Visitors > k/2 || d.Total.Visitors-v > (k-1)/2 {
				t.Fatalf("iter %d: day of %d visitors published as %d (k=%d)", iter, d.Total.Visitors, v, k)
			}
			want += one.Visitors.Value
			for _, b := range one.Breakdowns {
				for _, row := range b.Rows {
					rows[b.Dim+" "+row.Key+" "+row.Next] += row.Visitors
				}
			}
		}
		if all.Visitors.Value != want {
			t.Fatalf("iter %d: range publishes %d visitors, its days %d", iter, all.Visitors.Value, want)
		}
		for _, b := range all.Breakdowns {
			for _, row := range b.Rows {
				if rows[b.Dim+" "+row.Key+" "+row.Next] != row.Visitors {
					t.Fatalf("iter %d: %s %s: range %d, days %d", iter, b.Dim, row.Key, row.Visitors, rows[b.Dim+" "+row.Key+" "+row.Next])
				}
			}
		}
		// Secondary suppression, on the true figures.
		for _, d := range days {
			for dim, cells := range d.Rows {
				shown, folded, rest, ok := publishGroup(cells, d.Rest[dim], k)
				var sum Cell
				for _, c := range folded {
					sum.Visitors += c.Visitors
				}
				if sum.Visitors+d.Rest[dim].Visitors != rest.Visitors || len(shown)+len(folded) != len(cells) {
					t.Fatalf("iter %d: %s: cells lost", iter, dim)
				}
				if len(shown) > 0 && (!ok || rest.Visitors > 0 && rest.Visitors < k) {
					t.Fatalf("iter %d: %s: other of %d visitors beside shown rows (k=%d)", iter, dim, rest.Visitors, k)
				}
				for _, c := range shown {
					if c.Visitors < k {
						t.Fatalf("iter %d: %s %s shown with %d visitors", iter, dim, c.Key, c.Visitors)
					}
				}
			}
		}
	}
}

// The case of the issue: [d1..d7] and [d1..d8], where d8 had 3 visitors. Without
// units, the second total would be the first plus 3; here d8 is suppressed whole,
// and a day's country below k goes to other with enough to make it k.
func TestPublishRanges(t *testing.T) {
	const k = 10
	var days []DayCells
	for d := range 8 {
		day := DayCells{Day: int64(d), Total: Cell{Visitors: 40, Hits: 80},
			Rows: map[string][]Cell{DimCountry: {{Key: "DE", Visitors: 25, Hits: 50}, {Key: "FR", Visitors: 12, Hits: 24}, {Key: "LU", Visitors: 3, Hits: 6}}}}
		if d == 7 {
			day.Total = Cell{Visitors: 3, Hits: 3}
			day.Rows = map[string][]Cell{DimCountry: {{Key: "DE", Visitors: 3, Hits: 3}}}
		}
		days = append(days, day)
	}
	a, b := Publish(days[:7], k, 20, true), Publish(days, k, 20, true)
	if a.Visitors != b.Visitors || !b.Days[7].Visitors.Suppressed || a.Visitors.Value != 7*40 {
		t.Fatalf("d1..d7 %+v, d1..d8 %+v (day 8: %+v)", a.Visitors, b.Visitors, b.Days[7])
	}
	// FR (12) is shown alone only if the other (LU, 3) reaches k: it does not, so FR
	// goes to other too: DE 25 -> 30 (rounded), other 15 -> 20 a day.
	countries := b.Breakdowns[slices.IndexFunc(b.Breakdowns, func(x Breakdown) bool { return x.Dim == DimCountry })]
	if len(countries.Rows) != 1 || countries.Rows[0] != (Row{Key: "DE", Visitors: 7 * 30, Hits: 7 * 50}) ||
		countries.Other.Visitors.Value != 7*20 || countries.Other.Hits.Value != 7*30 {
		t.Fatalf("countries %+v", countries)
	}
	if got := Publish(nil, k, 20, true); !got.Visitors.Suppressed {
		t.Fatalf("no day: %+v", got.Visitors)
	}
}
