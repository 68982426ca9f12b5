package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"steward/internal/account"
	"steward/internal/analytics"
	"steward/internal/apperr"
	"steward/internal/server"
)

// analyticsRoles read the staff dashboard of the page statistics (admin holds every
// role): marketing, whose work it measures, and the dpo, who answers for it. The
// auditor reads the audit log, not the figures: the dashboard shows no member data,
// and its figures are the public rule's anyway.
var analyticsRoles = []string{marketing, "dpo"}

// statsView is the staff dashboard and the public statistics page: the form (site,
// range), the published figures, the period before, the chart and the breakdowns.
type statsView struct {
	Public  bool
	Action  string // the form's address
	NoSites bool   // no site is published (public) or counted (staff)
	Error   string
	Field   string // the parameter in error
	Sites   []option
	Ranges  []option
	Custom  bool
	From    string
	To      string
	K       int64

	Site           string
	Shown          string // the range shown
	Visitors       string
	Pageviews      string
	PrevLabel      string
	VisitorsDelta  string
	PageviewsDelta string
	Chart          chart
	Days           []statsDay
	Breakdowns     []statsBreakdown
}

type statsDay struct{ Date, Visitors, Pageviews string }

// statsBreakdown is one table: its rows and the sum of the others.
type statsBreakdown struct {
	ID, Title, Key, Hits string
	Transition           bool   // rows have a second key
	NextTitle            string // its column's name
	Rows                 []statsRow
	Other                *statsRow
}

type statsRow struct{ Key, Next, Visitors, Hits string }

// The breakdowns' titles and column names, by dimension.
var statsTables = map[string][3]string{
	analytics.DimPage:       {"Top pages", "Page", "Pageviews"},
	analytics.DimEntry:      {"Entry pages", "Page", "Entries"},
	analytics.DimExit:       {"Exit pages", "Page", "Exits"},
	analytics.DimReferrer:   {"Referrers", "Host", "Pageviews"},
	analytics.DimCountry:    {"Countries", "Country", "Pageviews"},
	analytics.DimBrowser:    {"Browsers", "Browser", "Pageviews"},
	analytics.DimEvent:      {"Services: events", "Event", "Events"},
	analytics.DimOutbound:   {"Services: outbound links", "Host", "Clicks"},
	analytics.DimTransition: {"Transitions", "From page", "Transitions"},
	analytics.DimCampaign:   {"Campaigns", "Source/medium/campaign", "Pageviews"},
	analytics.DimConversion: {"Conversions by campaign", "Source/medium/campaign", "Conversions"},
}

func (p *Pages) staffAnalytics(w http.ResponseWriter, r *http.Request, _ account.Session) {
	p.statistics(w, r, false)
}

func (p *Pages) publicStatistics(w http.ResponseWriter, r *http.Request) {
	if p.o.BeaconLimit != nil && !p.o.BeaconLimit.Take(p.o.ClientIP(r)) {
		p.fail(w, r, server.ErrRateLimited)
		return
	}
	p.statistics(w, r, true)
}

// statistics shows the published figures of a site over a range: the same rule on the
// staff dashboard and the public page (no member, no visitor singled out).
func (p *Pages) statistics(w http.ResponseWriter, r *http.Request, public bool) {
	name, title := "staff-analytics", "Statistics"
	v := statsView{Public: public, Action: "/staff/analytics"}
	if public {
		name, v.Action = "statistics", "/statistics"
	}
	a := p.o.Analytics
	var sites []string
	if a != nil {
		sites = a.Sites()
		if public {
			sites = a.PublicSites()
		}
		v.K = a.K()
	}
	if len(sites) == 0 {
		v.NoSites = true
		p.render(w, r, http.StatusOK, name, title, !public || p.loggedIn(r), v)
		return
	}
	q := r.URL.Query()
	query, err := a.ParseQuery(sites, q.Get("site"), q.Get("range"), q.Get("from"), q.Get("to"))
	v.Site, v.From, v.To = query.Site, q.Get("from"), q.Get("to")
	if v.Site == "" {
		v.Site = sites[0]
	}
	rng := q.Get("range")
	v.Custom = rng == "custom" || rng == "" && (v.From != "" || v.To != "")
	for _, s := range sites {
		v.Sites = append(v.Sites, option{Value: s, Name: s, Selected: s == v.Site})
	}
	for _, o := range []option{{Value: "7", Name: "Last 7 days"}, {Value: "30", Name: "Last 30 days"}, {Value: "90", Name: "Last 90 days"}, {Value: "custom", Name: "From and to below"}} {
		o.Selected = o.Value == rng || (rng == "" && !v.Custom && o.Value == "30") || (v.Custom && o.Value == "custom")
		v.Ranges = append(v.Ranges, o)
	}
	if err != nil {
		e, ok := apperr.As(err)
		if !ok {
			p.fail(w, r, err)
			return
		}
		v.Error, v.Field = statsFieldLabel(e.Field)+" "+e.Message+".", e.Field
		p.render(w, r, http.StatusBadRequest, name, title, !public || p.loggedIn(r), v)
		return
	}
	v.Shown = analytics.Date(query.From) + " to " + analytics.Date(query.To)
	st, err := a.Stats(r.Context(), query.Site, query.From, query.To, true)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	prev, err := a.Stats(r.Context(), query.Site, query.PrevFrom, query.PrevTo, false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	less := "fewer than " + strconv.FormatInt(st.K, 10)
	fig := func(f analytics.Figure) string {
		if f.Suppressed {
			return less
		}
		return strconv.FormatInt(f.Value, 10)
	}
	v.Visitors, v.Pageviews = fig(st.Visitors), fig(st.Pageviews)
	v.PrevLabel = analytics.Date(query.PrevFrom) + " to " + analytics.Date(query.PrevTo)
	v.VisitorsDelta, v.PageviewsDelta = delta(st.Visitors, prev.Visitors), delta(st.Pageviews, prev.Pageviews)
	for _, d := range st.Days {
		v.Days = append(v.Days, statsDay{Date: d.Date, Visitors: fig(d.Visitors), Pageviews: fig(d.Pageviews)})
	}
	v.Chart = drawChart(st)
	for _, b := range st.Breakdowns {
		t := statsTables[b.Dim]
		sb := statsBreakdown{ID: "dim-" + b.Dim, Title: t[0], Key: t[1], Hits: t[2], Transition: b.Dim == analytics.DimTransition || b.Dim == analytics.DimConversion}
		if sb.NextTitle = "To page"; b.Dim == analytics.DimConversion {
			sb.NextTitle = "Goal"
		}
		for _, row := range b.Rows {
			sb.Rows = append(sb.Rows, statsRow{Key: keyLabel(b.Dim, row.Key), Next: row.Next,
				Visitors: strconv.FormatInt(row.Visitors, 10), Hits: strconv.FormatInt(row.Hits, 10)})
		}
		if o := b.Other; o.Visitors.Suppressed || o.Visitors.Value > 0 {
			sb.Other = &statsRow{Key: "Other", Visitors: fig(o.Visitors), Hits: fig(o.Hits)}
		}
		v.Breakdowns = append(v.Breakdowns, sb)
	}
	p.render(w, r, http.StatusOK, name, title, !public || p.loggedIn(r), v)
}

// keyLabel names a row's key where it is empty or a code.
func keyLabel(dim, key string) string {
	switch {
	case dim == analytics.DimReferrer && key == "":
		return "None (direct)"
	case dim == analytics.DimCountry && (key == "" || key == "ZZ"):
		return "Unknown"
	case dim == analytics.DimBrowser && key == "":
		return "Unknown"
	}
	return key
}

func statsFieldLabel(f string) string {
	switch f {
	case "from":
		return "From"
	case "to":
		return "To"
	case "site":
		return "Site"
	case "range":
		return "Range"
	}
	return strings.ToUpper(f[:min(1, len(f))]) + f[min(1, len(f)):]
}

// delta says the change from the period before, where both are published.
func delta(now, before analytics.Figure) string {
	if now.Suppressed || before.Suppressed {
		return "no comparison (fewer than k in one period)"
	}
	d := now.Value - before.Value
	s := fmt.Sprintf("%+d", d)
	if before.Value > 0 {
		s += fmt.Sprintf(" (%+.0f%%)", float64(d)*100/float64(before.Value))
	}
	return s + " from the period before"
}

// chart is the SVG of visitors and pageviews per day, drawn on the server: two lines,
// broken where a day is suppressed. Its title and description say what it shows; the
// table beside it has the same figures.
type chart struct {
	Width, Height int
	Max           int64
	Visitors      []string // polylines' points, one per run of published days
	Pageviews     []string
	Desc          string
	First, Last   string
	Grid          []chartTick
}

type chartTick struct {
	Y     int
	Label string
}

func drawChart(st analytics.Stats) chart {
	c := chart{Width: 640, Height: 220}
	const left, right, top, bottom = 48, 8, 10, 24
	var mx int64
	for _, d := range st.Days {
		mx = max(mx, d.Visitors.Value, d.Pageviews.Value)
	}
	if mx == 0 {
		mx = 1
	}
	c.Max = mx
	n := len(st.Days)
	x := func(i int) int {
		if n <= 1 {
			return left
		}
		return left + i*(c.Width-left-right)/(n-1)
	}
	y := func(v int64) int { return c.Height - bottom - int(v*int64(c.Height-top-bottom)/mx) }
	line := func(get func(analytics.DayFigures) analytics.Figure) []string {
		var out []string
		var cur []string
		for i, d := range st.Days {
			f := get(d)
			if f.Suppressed {
				if len(cur) > 0 {
					out = append(out, strings.Join(cur, " "))
				}
				cur = nil
				continue
			}
			cur = append(cur, fmt.Sprintf("%d,%d", x(i), y(f.Value)))
		}
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, " "))
		}
		for i, s := range out {
			if !strings.Contains(s, " ") { // a lone day: a short stroke
				var px, py int
				fmt.Sscanf(s, "%d,%d", &px, &py)
				out[i] = fmt.Sprintf("%d,%d %d,%d", px-2, py, px+2, py)
			}
		}
		return out
	}
	c.Visitors = line(func(d analytics.DayFigures) analytics.Figure { return d.Visitors })
	c.Pageviews = line(func(d analytics.DayFigures) analytics.Figure { return d.Pageviews })
	for _, v := range []int64{0, mx / 2, mx} {
		c.Grid = append(c.Grid, chartTick{Y: y(v), Label: strconv.FormatInt(v, 10)})
	}
	if n > 0 {
		c.First, c.Last = st.Days[0].Date, st.Days[n-1].Date
	}
	c.Desc = fmt.Sprintf("Visitors (%s) and pageviews (%s) per day from %s to %s; days with fewer than %d visitors are left out. The table below gives each day's figures.",
		figureText(st.Visitors, st.K), figureText(st.Pageviews, st.K), c.First, c.Last, st.K)
	return c
}

func figureText(f analytics.Figure, k int64) string {
	if f.Suppressed {
		return "fewer than " + strconv.FormatInt(k, 10) + " in all"
	}
	return strconv.FormatInt(f.Value, 10) + " in all"
}
