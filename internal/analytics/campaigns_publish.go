package analytics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// PublishedCampaign is a campaign key's published figures over days, or on one day.
type PublishedCampaign struct {
	Key
	Day                                               int64 // PublishedCampaignDays' rows only
	Visitors, Pageviews, Registrations, Subscriptions Figure
}

// Campaign figures are published under the rule of every published figure (suppress.go):
// the unit is a campaign key's day on one site; each of its figures is published when
// it is k or more, rounded to the nearest multiple of k, and a unit of fewer than k
// visitors is suppressed whole (none of its figures counts anywhere); a figure over several units
// (a range, every site) is the sum of its published units, suppressed when none was.
// So a total less the days shown is 0, and any two figures, of one answer or of two
// ranges, differ by a multiple of k: no figure below k can be derived.

// PublishedCampaigns reads every campaign key of site (every site when site is "") over
// the days from..to (inclusive) and publishes them; most visitors first.
func (s *Service) PublishedCampaigns(ctx context.Context, site string, from, to int64) ([]PublishedCampaign, error) {
	units, err := s.campaignUnits(ctx, site, Key{}, false, from, to)
	if err != nil {
		return nil, err
	}
	out := PublishCampaigns(units, s.K(), false)
	slices.SortFunc(out, func(a, b PublishedCampaign) int {
		return cmp.Or(cmp.Compare(b.Visitors.Value, a.Visitors.Value), cmp.Compare(a.Source, b.Source),
			cmp.Compare(a.Medium, b.Medium), cmp.Compare(a.Campaign, b.Campaign))
	})
	return out, nil
}

// PublishedCampaignDays reads one campaign key's days from..to over every site and
// publishes them: a row per day with a visit, in order, and the total.
func (s *Service) PublishedCampaignDays(ctx context.Context, k Key, from, to int64) (days []PublishedCampaign, total PublishedCampaign, err error) {
	units, err := s.campaignUnits(ctx, "", k, true, from, to)
	if err != nil {
		return nil, PublishedCampaign{}, err
	}
	days = PublishCampaigns(units, s.K(), true)
	slices.SortFunc(days, func(a, b PublishedCampaign) int { return cmp.Compare(a.Day, b.Day) })
	total = PublishedCampaign{Key: k}
	if t := PublishCampaigns(units, s.K(), false); len(t) == 1 {
		total = t[0]
	} else {
		total.Visitors, total.Pageviews = Figure{Suppressed: true}, Figure{Suppressed: true}
		total.Registrations, total.Subscriptions = Figure{Suppressed: true}, Figure{Suppressed: true}
	}
	return days, total, nil
}

// campaignUnits reads the rolled-up units (a key's day on a site) of site ("" every
// site), of key k alone when one is true, over from..to.
func (s *Service) campaignUnits(ctx context.Context, site string, k Key, one bool, from, to int64) ([]CampaignStat, error) {
	q := `SELECT day, source, medium, campaign, visitors, pageviews, registrations, subscriptions FROM daily_campaigns
		WHERE ($1 = '' OR site = $1) AND day >= $2 AND day <= $3`
	args := []any{site, from, to}
	if one {
		q = `SELECT day, source, medium, campaign, visitors, pageviews, registrations, subscriptions FROM daily_campaigns
		WHERE day >= $1 AND day <= $2 AND source = $3 AND medium = $4 AND campaign = $5`
		args = []any{from, to, k.Source, k.Medium, k.Campaign}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("analytics: campaigns: %w", err)
	}
	defer rows.Close()
	var out []CampaignStat
	for rows.Next() {
		var c CampaignStat
		if err := rows.Scan(&c.Day, &c.Source, &c.Medium, &c.Campaign, &c.Visitors, &c.Pageviews, &c.Registrations, &c.Subscriptions); err != nil {
			return nil, fmt.Errorf("analytics: campaigns: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// PublishCampaigns publishes units (each a key's day on one site) under the rule:
// grouped by key, and by day as well when byDay is true. A group none of whose units
// had k visitors is left out: even its key would say that someone came by it (a
// campaign name made for one person).
func PublishCampaigns(units []CampaignStat, k int64, byDay bool) []PublishedCampaign {
	k = max(k, MinK)
	type group struct {
		Key
		day int64
	}
	acc := map[group]*PublishedCampaign{}
	var order []group
	add := func(f *Figure, v int64) {
		if v >= k {
			f.Value += Round(v, k)
			f.Suppressed = false
		}
	}
	for _, u := range units {
		if u.Visitors < k {
			continue // a unit below k is suppressed whole: none of its figures counts
		}
		g := group{Key: u.Key}
		if byDay {
			g.day = u.Day
		}
		p := acc[g]
		if p == nil {
			p = &PublishedCampaign{Key: u.Key, Day: g.day, Visitors: Figure{Suppressed: true}, Pageviews: Figure{Suppressed: true},
				Registrations: Figure{Suppressed: true}, Subscriptions: Figure{Suppressed: true}}
			acc[g] = p
			order = append(order, g)
		}
		add(&p.Visitors, u.Visitors)
		add(&p.Pageviews, u.Pageviews)
		add(&p.Registrations, u.Registrations)
		add(&p.Subscriptions, u.Subscriptions)
	}
	slices.SortFunc(order, func(a, b group) int {
		return cmp.Or(cmp.Compare(a.day, b.day), strings.Compare(a.Key.String(), b.Key.String()))
	})
	out := make([]PublishedCampaign, 0, len(order))
	for _, g := range order {
		if p := acc[g]; !p.Visitors.Suppressed {
			out = append(out, *p)
		}
	}
	return out
}
