package analytics

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/store"
)

// Attribution without cookies (docs/analytics.md, "Campaigns and conversions").
//
// A campaign visit is a pageview whose page address carried utm_source, utm_medium or
// utm_campaign (events.campaign), or, without them, whose referrer is a known source (a
// search engine, a social site, a webmail: sources). Its campaign key is
// source/medium/campaign. A conversion (a registration, a newsletter subscription) is
// stored as (day, minute, site, goal, the day's visitor hash) and attributed, in the
// day's rollup, to the key of the same visitor hash's last campaign visit of the same
// day on the same site, up to the end of the conversion's minute.

// The goals a conversion may be.
const (
	GoalRegistration = "registration" // an account was created
	GoalSubscription = "subscription" // a newsletter subscription was started (the form taken)
)

// Key is a campaign key: where a visit came from. A part the visit did not say is "".
type Key struct {
	Source, Medium, Campaign string
}

// String is the key as shown: source/medium/campaign, a part not said as "(none)".
func (k Key) String() string {
	part := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	return part(k.Source) + "/" + part(k.Medium) + "/" + part(k.Campaign)
}

// The newsletter's own links carry these (newsletter.TagLinks): source newsletter,
// medium email, and the campaign's public slug.
const (
	NewsletterSource = "newsletter"
	NewsletterMedium = "email"
)

// NewsletterKey is the campaign key of a newsletter campaign's links.
func NewsletterKey(slug string) Key {
	return Key{Source: NewsletterSource, Medium: NewsletterMedium, Campaign: slug}
}

// source is a known referrer: its source's name and its medium.
type source struct{ name, medium string }

// sources are the referrers whose visits count as campaign visits without UTM
// parameters: search engines (organic), social sites (social), webmails (email). A host
// matches its entry or any of its subdomains ("www." and "m." alike).
var sources = map[string]source{
	// Webmails first (mail.google.com is not Google's search).
	"mail.google.com": {"gmail", "email"}, "outlook.live.com": {"outlook", "email"},
	"outlook.office.com": {"outlook", "email"}, "outlook.office365.com": {"outlook", "email"},
	"mail.yahoo.com": {"yahoo mail", "email"}, "mail.proton.me": {"proton mail", "email"},
	"app.fastmail.com": {"fastmail", "email"}, "mail.aol.com": {"aol mail", "email"},
	"mail.yandex.ru": {"yandex mail", "email"}, "mail.gmx.net": {"gmx", "email"},
	// Search engines.
	"google": {"google", "organic"}, "bing.com": {"bing", "organic"}, "duckduckgo.com": {"duckduckgo", "organic"},
	"search.yahoo.com": {"yahoo", "organic"}, "yandex": {"yandex", "organic"}, "baidu.com": {"baidu", "organic"},
	"ecosia.org": {"ecosia", "organic"}, "qwant.com": {"qwant", "organic"}, "startpage.com": {"startpage", "organic"},
	"search.brave.com": {"brave", "organic"}, "kagi.com": {"kagi", "organic"},
	// Social sites.
	"facebook.com": {"facebook", "social"}, "instagram.com": {"instagram", "social"}, "t.co": {"twitter", "social"},
	"twitter.com": {"twitter", "social"}, "x.com": {"twitter", "social"}, "linkedin.com": {"linkedin", "social"},
	"lnkd.in": {"linkedin", "social"}, "reddit.com": {"reddit", "social"}, "news.ycombinator.com": {"hacker news", "social"},
	"youtube.com": {"youtube", "social"}, "pinterest.com": {"pinterest", "social"}, "tiktok.com": {"tiktok", "social"},
	"bsky.app": {"bluesky", "social"}, "threads.net": {"threads", "social"}, "mastodon.social": {"mastodon", "social"},
}

// SourceOf classifies a referrer's host: ok is false for a host that is no known
// source. google.* and yandex.* match in any country's domain.
func SourceOf(host string) (source, medium string, ok bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for h := host; h != ""; {
		if s, found := sources[h]; found {
			return s.name, s.medium, true
		}
		// google.de, google.co.uk, yandex.ru: the engine's name before a country's domain.
		if name, _, _ := strings.Cut(h, "."); (name == "google" || name == "yandex") && strings.Count(h, ".") <= 2 {
			s := sources[name]
			return s.name, s.medium, true
		}
		_, rest, found := strings.Cut(h, ".")
		if !found {
			break
		}
		h = rest
	}
	return "", "", false
}

// campaignKey is the key of a pageview: from its UTM parameters (a stored
// events.campaign), else from its referrer (a stored events.referrer, host and path)
// when that is a known source. ok is false for a pageview that is no campaign visit.
func campaignKey(campaign, referrer string) (Key, bool) {
	if campaign != "" {
		v, err := url.ParseQuery(campaign)
		if err == nil {
			k := Key{Source: v.Get("utm_source"), Medium: v.Get("utm_medium"), Campaign: v.Get("utm_campaign")}
			if k != (Key{}) {
				return k, true
			}
		}
	}
	if referrer == "" {
		return Key{}, false
	}
	host, _, _ := strings.Cut(referrer, "/")
	src, medium, ok := SourceOf(host)
	if !ok {
		return Key{}, false
	}
	return Key{Source: src, Medium: medium}, true
}

// Convert stores a conversion: goal (GoalRegistration, GoalSubscription) happened on
// site for the client, as the day's visitor hash and the minute, nothing else. Nothing
// is stored (stored false) for a site that is not configured, for a robot, or where the
// signals do not let the visitor be counted (Counts): a visitor who refused statistics
// is not attributed. Conversions are rare: they are written at once, not buffered.
func (s *Service) Convert(ctx context.Context, site, goal string, c Client, sig Signals) (stored bool, err error) {
	if goal != GoalRegistration && goal != GoalSubscription {
		return false, apperr.Field("goal", "invalid", "must be registration or subscription")
	}
	site = strings.ToLower(strings.TrimSpace(site))
	if !s.sites[site] || !s.Counts(sig) {
		return false, nil
	}
	if _, bot := s.agent(c.UserAgent); bot {
		return false, nil
	}
	now := s.now()
	day := DayOf(now)
	key, err := s.saltFor(ctx, day)
	if err != nil {
		return false, err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO conversions (day, minute, site, goal, visitor) VALUES ($1, $2, $3, $4, $5)`,
		day, now.Unix()/60, site, goal, key.visitor(site, c.IP, c.UserAgent)); err != nil {
		return false, fmt.Errorf("analytics: conversion: %w", err)
	}
	return true, nil
}

// attribution rolls up the campaigns of yesterday and today (Maintain), and purges
// the conversions older than the events.
func (s *Service) attribution(ctx context.Context, today int64) error {
	for _, d := range []int64{today - 1, today} {
		if err := s.RollupCampaigns(ctx, d); err != nil {
			return err
		}
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM conversions WHERE minute < $1`,
		s.now().Add(-time.Duration(s.cfg.EventDays)*24*time.Hour).Unix()/60); err != nil {
		return fmt.Errorf("analytics: purge conversions: %w", err)
	}
	return nil
}

// KeepCampaigns is how many campaign keys of a site's day are kept by name; the rest
// are summed under OtherCampaigns.
const KeepCampaigns = 100

// OtherCampaigns is the key the keys past KeepCampaigns are summed under.
var OtherCampaigns = Key{Source: "(other)"}

// campaignRow is one key's figures of a site's day as it is being rolled up.
type campaignRow struct {
	visitors                                map[int64]bool
	pageviews, registrations, subscriptions int64
}

// RollupCampaigns counts a day's campaign visits per site and key again, and attributes
// the day's conversions: each to the key of its visitor hash's last campaign visit on
// its site that day, up to the end of its minute (a tie in time goes to the first key in
// order). A conversion without such a visit is attributed to nothing. Rolling a day up
// twice gives the same rows.
func (s *Service) RollupCampaigns(ctx context.Context, day int64) error {
	type siteKey struct {
		site string
		key  Key
	}
	type visit struct {
		at  int64
		key Key
	}
	type who struct {
		site    string
		visitor int64
	}
	rows := map[siteKey]*campaignRow{}
	last := map[who][]visit{}
	rs, err := s.db.QueryContext(ctx, `SELECT site, visitor, at, campaign, referrer FROM events
		WHERE day = $1 AND bot = 0 AND kind = 'pageview' AND (campaign <> '' OR referrer <> '')`, day)
	if err != nil {
		return fmt.Errorf("analytics: campaigns: %w", err)
	}
	for rs.Next() {
		var site, campaign, referrer string
		var visitor, at int64
		if err := rs.Scan(&site, &visitor, &at, &campaign, &referrer); err != nil {
			rs.Close()
			return fmt.Errorf("analytics: campaigns: %w", err)
		}
		k, ok := campaignKey(campaign, referrer)
		if !ok {
			continue
		}
		r := rows[siteKey{site, k}]
		if r == nil {
			r = &campaignRow{visitors: map[int64]bool{}}
			rows[siteKey{site, k}] = r
		}
		r.visitors[visitor] = true
		r.pageviews++
		last[who{site, visitor}] = append(last[who{site, visitor}], visit{at, k})
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("analytics: campaigns: %w", err)
	}
	cs, err := s.db.QueryContext(ctx, `SELECT site, visitor, minute, goal FROM conversions WHERE day = $1`, day)
	if err != nil {
		return fmt.Errorf("analytics: campaigns: %w", err)
	}
	for cs.Next() {
		var site, goal string
		var visitor, minute int64
		if err := cs.Scan(&site, &visitor, &minute, &goal); err != nil {
			cs.Close()
			return fmt.Errorf("analytics: campaigns: %w", err)
		}
		end := (minute+1)*60_000 - 1
		var best *visit
		for i, v := range last[who{site, visitor}] {
			if v.at > end {
				continue
			}
			if best == nil || v.at > best.at || v.at == best.at && keyLess(v.key, best.key) {
				best = &last[who{site, visitor}][i]
			}
		}
		if best == nil {
			continue
		}
		r := rows[siteKey{site, best.key}]
		switch goal {
		case GoalRegistration:
			r.registrations++
		case GoalSubscription:
			r.subscriptions++
		}
	}
	cs.Close()
	if err := cs.Err(); err != nil {
		return fmt.Errorf("analytics: campaigns: %w", err)
	}
	// A site's day keeps its KeepCampaigns keys with the most visitors by name; the
	// others are summed under OtherCampaigns, so that random campaign names sent by one
	// address cannot grow the table (or what the dashboards read) without bound.
	perSite := map[string][]siteKey{}
	for sk := range rows {
		perSite[sk.site] = append(perSite[sk.site], sk)
	}
	for site, keys := range perSite {
		if len(keys) <= KeepCampaigns {
			continue
		}
		slices.SortFunc(keys, func(a, b siteKey) int {
			return cmp.Or(cmp.Compare(len(rows[b].visitors), len(rows[a].visitors)), strings.Compare(a.key.String(), b.key.String()))
		})
		rest := &campaignRow{visitors: map[int64]bool{}}
		for _, sk := range keys[KeepCampaigns:] {
			r := rows[sk]
			for v := range r.visitors {
				rest.visitors[v] = true
			}
			rest.pageviews += r.pageviews
			rest.registrations += r.registrations
			rest.subscriptions += r.subscriptions
			delete(rows, sk)
		}
		rows[siteKey{site, OtherCampaigns}] = rest
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM daily_campaigns WHERE day = $1`, day); err != nil {
			return fmt.Errorf("analytics: campaigns: %w", err)
		}
		for sk, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO daily_campaigns
				(site, day, source, medium, campaign, visitors, pageviews, registrations, subscriptions)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				sk.site, day, sk.key.Source, sk.key.Medium, sk.key.Campaign, len(r.visitors), r.pageviews, r.registrations, r.subscriptions); err != nil {
				return fmt.Errorf("analytics: campaigns: %w", err)
			}
		}
		return nil
	})
}

// keyLess orders keys by source, medium, campaign.
func keyLess(a, b Key) bool {
	return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Medium, b.Medium), strings.Compare(a.Campaign, b.Campaign)) < 0
}

// CampaignStat is a campaign key's figures over days, as rolled up. Visitors are
// summed over the days: a visitor is a hash of one day, so one person on two days is
// two visitors. Day is set by CampaignDays only.
type CampaignStat struct {
	Key
	Day                                               int64
	Visitors, Pageviews, Registrations, Subscriptions int64
}

// Campaigns reads every campaign key of site (every site when site is "") over the
// days from..to (inclusive), summed, most visitors first.
func (s *Service) Campaigns(ctx context.Context, site string, from, to int64) ([]CampaignStat, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT source, medium, campaign, CAST(SUM(visitors) AS BIGINT), CAST(SUM(pageviews) AS BIGINT),
		CAST(SUM(registrations) AS BIGINT), CAST(SUM(subscriptions) AS BIGINT) FROM daily_campaigns
		WHERE ($1 = '' OR site = $1) AND day >= $2 AND day <= $3 GROUP BY source, medium, campaign`, site, from, to)
	if err != nil {
		return nil, fmt.Errorf("analytics: campaigns: %w", err)
	}
	defer rows.Close()
	var out []CampaignStat
	for rows.Next() {
		var c CampaignStat
		if err := rows.Scan(&c.Source, &c.Medium, &c.Campaign, &c.Visitors, &c.Pageviews, &c.Registrations, &c.Subscriptions); err != nil {
			return nil, fmt.Errorf("analytics: campaigns: %w", err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CampaignStat) int {
		if a.Visitors != b.Visitors {
			return cmp.Compare(b.Visitors, a.Visitors)
		}
		if keyLess(a.Key, b.Key) {
			return -1
		}
		if keyLess(b.Key, a.Key) {
			return 1
		}
		return 0
	})
	return out, rows.Err()
}

// CampaignDays reads one campaign key's days from..to (inclusive), summed over the
// sites, in order of day; a day without a visit has no row.
func (s *Service) CampaignDays(ctx context.Context, k Key, from, to int64) ([]CampaignStat, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT day, CAST(SUM(visitors) AS BIGINT), CAST(SUM(pageviews) AS BIGINT),
		CAST(SUM(registrations) AS BIGINT), CAST(SUM(subscriptions) AS BIGINT) FROM daily_campaigns WHERE source = $1 AND medium = $2 AND campaign = $3 AND day >= $4 AND day <= $5
		GROUP BY day ORDER BY day`, k.Source, k.Medium, k.Campaign, from, to)
	if err != nil {
		return nil, fmt.Errorf("analytics: campaign days: %w", err)
	}
	defer rows.Close()
	var out []CampaignStat
	for rows.Next() {
		c := CampaignStat{Key: k}
		if err := rows.Scan(&c.Day, &c.Visitors, &c.Pageviews, &c.Registrations, &c.Subscriptions); err != nil {
			return nil, fmt.Errorf("analytics: campaign days: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
