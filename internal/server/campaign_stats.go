package server

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"steward/internal/analytics"
	"steward/internal/apperr"
	"steward/internal/newsletter"
)

// AnalyticsRoles read the campaign figures: aggregates of the analytics store, which
// hold no member data.
var AnalyticsRoles = []string{"admin", "marketing", "dpo"}

// Figure is a published count (analytics.PublishCampaigns): its value, or, below k,
// only that it is fewer (JSON: null).
type Figure struct {
	Value int64
	Shown bool
	K     int64
}

func figure(f analytics.Figure, k int64) Figure {
	return Figure{Value: f.Value, Shown: !f.Suppressed, K: k}
}

// String is the figure as a page shows it: the number, or "fewer than k".
func (f Figure) String() string {
	if !f.Shown {
		return fmt.Sprintf("fewer than %d", f.K)
	}
	return strconv.FormatInt(f.Value, 10)
}

// MarshalJSON is the number, or null when it is below the minimum.
func (f Figure) MarshalJSON() ([]byte, error) {
	if !f.Shown {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, f.Value, 10), nil
}

// Conversions are a campaign's conversions by goal.
type Conversions struct {
	Registration Figure `json:"registration"`
	Subscription Figure `json:"subscription"`
}

// CampaignFigures are one campaign key's published figures, over a range or on a day.
type CampaignFigures struct {
	Key         string      `json:"key"` // source/medium/campaign
	Source      string      `json:"source"`
	Medium      string      `json:"medium"`
	Campaign    string      `json:"campaign"`
	Day         string      `json:"day,omitempty"` // YYYY-MM-DD, for one day's row
	Visitors    Figure      `json:"visitors"`
	Pageviews   Figure      `json:"pageviews"`
	Conversions Conversions `json:"conversions"`
}

// StatsK is the k of the published figures (--stats-k), or analytics.MinK when
// statistics are off.
func (s *Services) StatsK() int64 {
	if s.Analytics == nil {
		return analytics.MinK
	}
	return s.Analytics.K()
}

// Figures are a published campaign's figures as the pages and the API show them.
func Figures(c analytics.PublishedCampaign, k int64) CampaignFigures {
	f := CampaignFigures{Key: c.Key.String(), Source: c.Source, Medium: c.Medium, Campaign: c.Campaign,
		Visitors: figure(c.Visitors, k), Pageviews: figure(c.Pageviews, k),
		Conversions: Conversions{Registration: figure(c.Registrations, k), Subscription: figure(c.Subscriptions, k)}}
	if c.Day != 0 {
		f.Day = DayString(c.Day)
	}
	return f
}

// DayString is a day (days since 1970-01-01) as YYYY-MM-DD.
func DayString(day int64) string { return time.Unix(day*86400, 0).UTC().Format(time.DateOnly) }

// maxRangeDays is the longest range the campaign figures are read over.
const maxRangeDays = 366

// CampaignRange reads a range of days from a query (from, to: YYYY-MM-DD, inclusive;
// by default the 30 days to today) and a site (site: one of the configured hosts, or
// empty for all). Bad input is an error naming its field.
func (s *Services) CampaignRange(q url.Values) (from, to int64, site string, err error) {
	today := analytics.DayOf(s.Now())
	to = today
	day := func(field string, def int64) (int64, error) {
		v := strings.TrimSpace(q.Get(field))
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return 0, apperr.Field(field, "invalid", "must be a date, YYYY-MM-DD")
		}
		return analytics.DayOf(t), nil
	}
	if to, err = day("to", to); err != nil {
		return 0, 0, "", err
	}
	if from, err = day("from", to-29); err != nil {
		return 0, 0, "", err
	}
	if from > to {
		return 0, 0, "", apperr.Field("from", "after_to", "must not be after to")
	}
	if to-from >= maxRangeDays {
		return 0, 0, "", apperr.Field("from", "too_long", fmt.Sprintf("the range is at most %d days", maxRangeDays))
	}
	site = strings.ToLower(strings.TrimSpace(q.Get("site")))
	if site != "" && (s.Analytics == nil || !s.Analytics.KnownSite(site)) {
		return 0, 0, "", apperr.Field("site", "unknown_site", "is not a site this server counts")
	}
	return from, to, site, nil
}

// CampaignTable is every campaign key's published figures over a range.
func (s *Services) CampaignTable(ctx context.Context, site string, from, to int64) ([]CampaignFigures, error) {
	out := []CampaignFigures{}
	if s.Analytics == nil {
		return out, nil
	}
	stats, err := s.Analytics.PublishedCampaigns(ctx, site, from, to)
	if err != nil {
		return nil, err
	}
	for _, c := range stats {
		out = append(out, Figures(c, s.Analytics.K()))
	}
	return out, nil
}

// CampaignVisits are a newsletter campaign's visits and conversions, from its own
// links, on each day since it was sent (none for a draft), and in total.
type CampaignVisits struct {
	CampaignID  string            `json:"campaign_id"`
	UTMCampaign string            `json:"utm_campaign"` // the slug its links carry
	Key         string            `json:"key"`
	From        string            `json:"from,omitempty"`
	To          string            `json:"to,omitempty"`
	K           int64             `json:"k"` // figures below it are null ("fewer than k")
	Days        []CampaignFigures `json:"days"`
	Total       CampaignFigures   `json:"total"`
}

// NewsletterVisits reads the visits of a newsletter campaign's links, published
// (analytics.PublishedCampaignDays): a day shows when k visitors or more came, and the
// total is the sum of the days shown.
func (s *Services) NewsletterVisits(ctx context.Context, c newsletter.Campaign) (CampaignVisits, error) {
	k := analytics.NewsletterKey(c.Slug())
	v := CampaignVisits{CampaignID: c.ID, UTMCampaign: c.Slug(), Key: k.String(), Days: []CampaignFigures{}}
	total := analytics.PublishedCampaign{Key: k, Visitors: analytics.Figure{Suppressed: true}, Pageviews: analytics.Figure{Suppressed: true},
		Registrations: analytics.Figure{Suppressed: true}, Subscriptions: analytics.Figure{Suppressed: true}}
	v.K = s.StatsK()
	if c.Status != newsletter.CampaignDraft && s.Analytics != nil {
		// Its links exist only once it is being sent, and its key is its own: its rows
		// start with the first mail, however long the sending took.
		from, to := analytics.DayOf(c.CreatedAt), analytics.DayOf(s.Now())
		v.From, v.To = DayString(from), DayString(to)
		days, t, err := s.Analytics.PublishedCampaignDays(ctx, k, from, to)
		if err != nil {
			return CampaignVisits{}, err
		}
		for _, d := range days {
			f := Figures(d, v.K)
			f.Day = DayString(d.Day)
			v.Days = append(v.Days, f)
		}
		total = t
	}
	v.Total = Figures(total, v.K)
	return v, nil
}
