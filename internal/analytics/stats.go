package analytics

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/apperr"
)

// TopRows is how many rows of each breakdown the dashboards list; the others are
// summed in "other".
const TopRows = 20

// MaxRangeDays is the longest range of days one request may ask for.
const MaxRangeDays = 366

// Query is a site and a range of days (inclusive), and the period before it, of the
// same length, for the comparison.
type Query struct {
	Site             string
	From, To         int64
	PrevFrom, PrevTo int64
	Range            string // "7", "30", "90" or "custom"
}

// Days is the range's length in days.
func (q Query) Days() int64 { return q.To - q.From + 1 }

// Sites are the counted sites, sorted.
func (s *Service) Sites() []string {
	out := make([]string, 0, len(s.sites))
	for h := range s.sites {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// PublicSites are the sites whose statistics are published (--stats-public-sites),
// sorted.
func (s *Service) PublicSites() []string {
	var out []string
	for _, h := range s.Sites() {
		if s.public[h] {
			out = append(out, h)
		}
	}
	return out
}

// K is the threshold under which published figures are suppressed.
func (s *Service) K() int64 { return int64(s.cfg.K) }

// ParseQuery reads a dashboard's parameters: site (default: the first of sites), range
// (7, 30 or 90 days ending today; default 30), or from and to (YYYY-MM-DD, both, at
// most MaxRangeDays apart) with range "custom" or none. sites are the sites the caller may read. A bad one is an error
// naming its field.
func (s *Service) ParseQuery(sites []string, site, rng, from, to string) (Query, error) {
	var q Query
	site = strings.ToLower(strings.TrimSpace(site))
	switch {
	case site == "" && len(sites) > 0:
		site = sites[0]
	case !slices.Contains(sites, site):
		return q, apperr.Field("site", "unknown_site", "is not a site whose statistics are shown here")
	}
	q.Site = site
	today := DayOf(s.now())
	if rng == "custom" || rng == "" && (from != "" || to != "") {
		f, err := parseDate(from, "from")
		if err != nil {
			return q, err
		}
		t, err := parseDate(to, "to")
		if err != nil {
			return q, err
		}
		if t < f {
			return q, apperr.Field("to", "before_from", "must be on or after from")
		}
		if t-f+1 > MaxRangeDays {
			return q, apperr.Field("range", "too_long", fmt.Sprintf("at most %d days", MaxRangeDays))
		}
		if t > today {
			return q, apperr.Field("to", "future", "must not be after today")
		}
		q.From, q.To, q.Range = f, t, "custom"
	} else {
		n := int64(30)
		switch rng {
		case "", "30":
		case "7":
			n = 7
		case "90":
			n = 90
		default:
			return q, apperr.Field("range", "invalid", "must be 7, 30 or 90 (days), or give from and to")
		}
		q.From, q.To, q.Range = today-n+1, today, strconv.FormatInt(n, 10)
	}
	q.PrevTo = q.From - 1
	q.PrevFrom = q.PrevTo - q.Days() + 1
	return q, nil
}

func parseDate(v, field string) (int64, error) {
	if v == "" {
		return 0, apperr.Field(field, "required", "is required with a custom range (YYYY-MM-DD)")
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil || t.Year() < 2000 || t.Year() > 9999 {
		return 0, apperr.Field(field, "invalid", "must be a date as YYYY-MM-DD")
	}
	return DayOf(t), nil
}

// Stats reads the rollups of q's site over from..to and publishes them under the
// suppression rule (Publish): with the breakdowns, or the totals alone.
func (s *Service) Stats(ctx context.Context, site string, from, to int64, breakdowns bool) (Stats, error) {
	days, err := s.readDays(ctx, site, from, to, breakdowns)
	if err != nil {
		return Stats{}, err
	}
	st := Publish(days, s.K(), TopRows, breakdowns)
	st.Site = site
	return st, nil
}

// readDays reads daily_dims of site over from..to: one DayCells per day, in order.
func (s *Service) readDays(ctx context.Context, site string, from, to int64, breakdowns bool) ([]DayCells, error) {
	days := make([]DayCells, 0, to-from+1)
	for d := from; d <= to; d++ {
		days = append(days, DayCells{Day: d})
	}
	q := `SELECT day, dim, rest, item, next, visitors, hits FROM daily_dims WHERE site = $1 AND day >= $2 AND day <= $3`
	if !breakdowns {
		q = `SELECT day, dim, rest, item, next, visitors, hits FROM daily_dims WHERE site = $1 AND day >= $2 AND day <= $3 AND dim = 'total'`
	}
	rows, err := s.db.QueryContext(ctx, q, site, from, to)
	if err != nil {
		return nil, fmt.Errorf("analytics: stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day, rest int64
		var dim string
		var c Cell
		if err := rows.Scan(&day, &dim, &rest, &c.Key, &c.Next, &c.Visitors, &c.Hits); err != nil {
			return nil, fmt.Errorf("analytics: stats: %w", err)
		}
		d := &days[day-from]
		switch {
		case dim == DimTotal:
			d.Total = c
		case rest == 1:
			if d.Rest == nil {
				d.Rest = map[string]Cell{}
			}
			d.Rest[dim] = c
		default:
			if d.Rows == nil {
				d.Rows = map[string][]Cell{}
			}
			d.Rows[dim] = append(d.Rows[dim], c)
		}
	}
	if err := rows.Err(); err != nil || !breakdowns {
		return days, err
	}
	return days, s.readCampaignCells(ctx, site, from, days)
}

// readCampaignCells adds the campaigns of daily_campaigns to days (from the first
// day, from): per day a campaign cell (visitors, pageviews) and a conversion cell per
// goal reached (the count as visitors and hits).
func (s *Service) readCampaignCells(ctx context.Context, site string, from int64, days []DayCells) error {
	rows, err := s.db.QueryContext(ctx, `SELECT day, source, medium, campaign, visitors, pageviews, registrations, subscriptions
		FROM daily_campaigns WHERE site = $1 AND day >= $2 AND day <= $3`, site, from, from+int64(len(days))-1)
	if err != nil {
		return fmt.Errorf("analytics: stats: campaigns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CampaignStat
		if err := rows.Scan(&c.Day, &c.Source, &c.Medium, &c.Campaign, &c.Visitors, &c.Pageviews, &c.Registrations, &c.Subscriptions); err != nil {
			return fmt.Errorf("analytics: stats: campaigns: %w", err)
		}
		d := &days[c.Day-from]
		if d.Rows == nil {
			d.Rows = map[string][]Cell{}
		}
		key := c.Key.String()
		d.Rows[DimCampaign] = append(d.Rows[DimCampaign], Cell{Key: key, Visitors: c.Visitors, Hits: c.Pageviews})
		for goal, n := range map[string]int64{GoalRegistration: c.Registrations, GoalSubscription: c.Subscriptions} {
			// A campaign's conversions name it: only of a campaign whose own row
			// could show (k visitors or more).
			if n > 0 && c.Visitors >= s.K() {
				d.Rows[DimConversion] = append(d.Rows[DimConversion], Cell{Key: key, Next: goal, Visitors: n, Hits: n})
			}
		}
	}
	return rows.Err()
}
