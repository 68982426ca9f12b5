package analytics

import (
	"cmp"
	"slices"
	"strconv"
	"time"
)

// Date is day (days since 1970-01-01) as YYYY-MM-DD.
func Date(day int64) string { return time.Unix(day*86400, 0).UTC().Format(time.DateOnly) }

// Published figures identify no one (P-TECH-2): every figure below k is suppressed,
// and so is every figure that subtracting two published ones would give. The rule
// (docs/analytics.md, "Published figures"):
//
//  1. The unit is a site's day. A day whose visitors are fewer than k is suppressed
//     whole: its visitors, its pageviews and every row of its breakdowns.
//  2. In a published day, each breakdown (pages, countries...) is a group of cells. A
//     cell is shown when its visitors are k or more (its hits are then k or more too:
//     each of its visitors made one at least); the others, and the rollup's rest row,
//     are summed in the group's "other". When "other" is above 0 and below k, the
//     smallest shown cells are moved into it until it reaches k (secondary
//     suppression); if no shown cell is left and it is still below k, "other" is
//     suppressed too. So a group's shown cells and its other add up to the group's
//     total, and the total minus any part of them is 0 or k or more.
//  3. Each published figure of a unit (a day's visitors and pageviews, a shown cell's,
//     the other's) is rounded to the nearest multiple of k (halves up): it stays k or
//     more, and any two published figures differ by a multiple of k. Rows that no
//     breakdown can relate (the visitors of /cart and of /checkout, whose difference
//     is the visitors who left between them) then differ by 0 or k or more as well.
//  4. A range of days publishes sums of the published units only: its visitors and
//     pageviews are the sums of its published days, a row the sum of the days on
//     which that cell was shown, "other" the sum of the days' others (and of the rows
//     past the list's length). A unit is in a sum whole or not at all, and the same
//     unit has the same value in every range, so the figures of two ranges, one in the
//     other ([d1..d7] and [d1..d8]), differ by a sum of published units; and, by 3,
//     any two figures of any two answers differ by a multiple of k. A figure that sums
//     no published unit is shown as suppressed.
//
// The functions here are pure: Publish takes the rolled-up cells and k.

// MinK is the smallest k the operator may set.
const MinK = 2

// Round is v rounded to the nearest multiple of k, halves up.
func Round(v, k int64) int64 { return (v + k/2) / k * k }

// Figure is a published number, or a suppressed one (fewer than k, or unknown).
type Figure struct {
	Value      int64
	Suppressed bool
}

// MarshalJSON writes a figure as its number, or null when suppressed.
func (f Figure) MarshalJSON() ([]byte, error) {
	if f.Suppressed {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, f.Value, 10), nil
}

// Cell is one rolled-up row of a site's day in a dimension.
type Cell struct {
	Key, Next      string
	Visitors, Hits int64
}

// DayCells are a site's day as rolled up: its total (visitors with a pageview,
// pageviews), and per dimension the rows kept by name and the rest row.
type DayCells struct {
	Day   int64
	Total Cell
	Rows  map[string][]Cell
	Rest  map[string]Cell
}

// Stats are the published figures of a site over days From..To.
type Stats struct {
	Site string `json:"site"`
	From string `json:"from"` // YYYY-MM-DD
	To   string `json:"to"`
	K    int64  `json:"k"`
	// Visitors and Pageviews are the sums of the published days.
	Visitors  Figure       `json:"visitors"`
	Pageviews Figure       `json:"pageviews"`
	Days      []DayFigures `json:"days"`
	// Breakdowns are in the order of Dims (empty when only the totals were asked).
	// Campaigns (attribution, daily_campaigns) are added to them under the same rule.
	Breakdowns []Breakdown `json:"breakdowns,omitempty"`
}

// DayFigures are one day's published figures.
type DayFigures struct {
	Day       int64  `json:"-"`
	Date      string `json:"date"`
	Visitors  Figure `json:"visitors"`
	Pageviews Figure `json:"pageviews"`
}

// Breakdown is one dimension's published rows, most visitors first, and the sum of
// the others.
type Breakdown struct {
	Dim   string `json:"dimension"`
	Rows  []Row  `json:"rows"`
	Other Other  `json:"other"`
}

// Row is a published row: its figures are k or more.
type Row struct {
	Key      string `json:"key"`
	Next     string `json:"next,omitempty"` // transitions: the page viewed next
	Visitors int64  `json:"visitors"`
	Hits     int64  `json:"hits"`
}

// Other sums the rows not shown.
type Other struct {
	Visitors Figure `json:"visitors"`
	Hits     Figure `json:"hits"`
}

// Publish applies the rule to the days (in order) and lists at most top rows per
// breakdown; breakdowns says whether the breakdowns are wanted or only the totals.
func Publish(days []DayCells, k int64, top int, breakdowns bool) Stats {
	k = max(k, MinK)
	st := Stats{K: k}
	if len(days) > 0 {
		st.From, st.To = Date(days[0].Day), Date(days[len(days)-1].Day)
	}
	published := 0
	type acc struct{ row Row }
	rows := map[string]map[[2]string]*acc{}
	others := map[string]*Other{}
	otherLost := map[string]bool{}
	for _, d := range days {
		df := DayFigures{Day: d.Day, Date: Date(d.Day)}
		if d.Total.Visitors < k {
			df.Visitors, df.Pageviews = Figure{Suppressed: true}, Figure{Suppressed: true}
			st.Days = append(st.Days, df)
			continue
		}
		df.Visitors, df.Pageviews = Figure{Value: Round(d.Total.Visitors, k)}, Figure{Value: Round(d.Total.Hits, k)}
		st.Days = append(st.Days, df)
		published++
		st.Visitors.Value += df.Visitors.Value
		st.Pageviews.Value += df.Pageviews.Value
		if !breakdowns {
			continue
		}
		for _, dim := range Dims {
			shown, _, rest, ok := publishGroup(d.Rows[dim], d.Rest[dim], k)
			m := rows[dim]
			if m == nil {
				m = map[[2]string]*acc{}
				rows[dim] = m
			}
			for _, c := range shown {
				a := m[[2]string{c.Key, c.Next}]
				if a == nil {
					a = &acc{row: Row{Key: c.Key, Next: c.Next}}
					m[[2]string{c.Key, c.Next}] = a
				}
				a.row.Visitors += Round(c.Visitors, k)
				a.row.Hits += Round(c.Hits, k)
			}
			o := others[dim]
			if o == nil {
				o = &Other{}
				others[dim] = o
			}
			if !ok {
				otherLost[dim] = true
				continue
			}
			o.Visitors.Value += Round(rest.Visitors, k)
			o.Hits.Value += Round(rest.Hits, k)
		}
	}
	if published == 0 {
		st.Visitors.Suppressed, st.Pageviews.Suppressed = true, true
	}
	if !breakdowns {
		return st
	}
	for _, dim := range Dims {
		b := Breakdown{Dim: dim, Rows: []Row{}}
		var all []*acc
		for _, a := range rows[dim] {
			all = append(all, a)
		}
		slices.SortFunc(all, func(a, b *acc) int {
			return cmp.Or(cmp.Compare(b.row.Visitors, a.row.Visitors), cmp.Compare(b.row.Hits, a.row.Hits),
				cmp.Compare(a.row.Key, b.row.Key), cmp.Compare(a.row.Next, b.row.Next))
		})
		o := others[dim]
		if o == nil {
			o = &Other{}
		}
		for i, a := range all {
			if i < top {
				b.Rows = append(b.Rows, a.row)
				continue
			}
			// Past the list: a sum of published units, still in the other.
			o.Visitors.Value += a.row.Visitors
			o.Hits.Value += a.row.Hits
		}
		if o.Visitors.Value == 0 && otherLost[dim] {
			o.Visitors.Suppressed, o.Hits.Suppressed = true, true
		}
		b.Other = *o
		st.Breakdowns = append(st.Breakdowns, b)
	}
	return st
}

// publishGroup applies rule 2 to one group of a published day: the cells shown, the
// cells folded into other, other's figures, and whether other may be published.
func publishGroup(cells []Cell, tail Cell, k int64) (shown, folded []Cell, rest Cell, ok bool) {
	rest = Cell{Visitors: tail.Visitors, Hits: tail.Hits}
	for _, c := range cells {
		if c.Visitors >= k {
			shown = append(shown, c)
			continue
		}
		folded = append(folded, c)
		rest.Visitors += c.Visitors
		rest.Hits += c.Hits
	}
	// Most visitors first, so that the smallest shown cell is the last.
	slices.SortFunc(shown, func(a, b Cell) int {
		return cmp.Or(cmp.Compare(b.Visitors, a.Visitors), cmp.Compare(b.Hits, a.Hits), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Next, b.Next))
	})
	for rest.Visitors > 0 && rest.Visitors < k && len(shown) > 0 {
		c := shown[len(shown)-1]
		shown = shown[:len(shown)-1]
		folded = append(folded, c)
		rest.Visitors += c.Visitors
		rest.Hits += c.Hits
	}
	return shown, folded, rest, rest.Visitors == 0 || rest.Visitors >= k
}
