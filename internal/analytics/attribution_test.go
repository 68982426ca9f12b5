package analytics

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"steward/internal/store"
)

func TestSourceOf(t *testing.T) {
	for host, want := range map[string]string{
		"www.google.com":          "google/organic",
		"google.co.uk":            "google/organic",
		"www.google.de":           "google/organic",
		"mail.google.com":         "gmail/email",
		"duckduckgo.com":          "duckduckgo/organic",
		"cn.bing.com":             "bing/organic",
		"m.facebook.com":          "facebook/social",
		"t.co":                    "twitter/social",
		"news.ycombinator.com":    "hacker news/social",
		"outlook.live.com":        "outlook/email",
		"yandex.ru":               "yandex/organic",
		"mail.yandex.ru":          "yandex mail/email",
		"partner.example.org":     "",
		"notgoogle.com":           "",
		"google.evil.example.com": "",
	} {
		src, medium, ok := SourceOf(host)
		got := ""
		if ok {
			got = src + "/" + medium
		}
		if got != want {
			t.Errorf("SourceOf(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestCampaignKey(t *testing.T) {
	for _, c := range []struct {
		campaign, referrer string
		want               string // "" : no campaign visit
	}{
		{"utm_campaign=spring&utm_medium=cpc&utm_source=ads", "", "ads/cpc/spring"},
		{"utm_source=newsletter", "www.google.com/", "newsletter/(none)/(none)"}, // UTM wins
		{"", "www.google.com/search", "google/organic/(none)"},
		{"", "example.com/pricing", ""}, // the site itself, or an unknown referrer
		{"", "", ""},
	} {
		k, ok := campaignKey(c.campaign, c.referrer)
		got := ""
		if ok {
			got = k.String()
		}
		if got != c.want {
			t.Errorf("campaignKey(%q, %q) = %q, want %q", c.campaign, c.referrer, got, c.want)
		}
	}
}

// rowsOf reads daily_campaigns as "site day source/medium/campaign visitors pageviews registrations subscriptions".
func rowsOf(t *testing.T, db *store.DB) []string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), `SELECT site, day, source, medium, campaign, visitors, pageviews, registrations, subscriptions
		FROM daily_campaigns ORDER BY site, day, source, medium, campaign`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var site, src, med, camp string
		var day, v, p, r, s int64
		if err := rs.Scan(&site, &day, &src, &med, &camp, &v, &p, &r, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{site, itoa(day), Key{src, med, camp}.String(), itoa(v), itoa(p), itoa(r), itoa(s)}, " "))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Conversions are attributed by the same day's visitor hash, on the same site, to the
// last campaign visit up to the conversion's minute; another browser, another address,
// another day or a refusal is not attributed; the rollup can run twice.
func TestAttribution(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
		s := newService(t, db, Config{Cookieless: true, Sites: []string{"example.com", "shop.example.com"}}, func() time.Time { return now })
		day := DayOf(now)
		ua := "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
		alice := Client{IP: "203.0.113.7", UserAgent: ua}
		view := func(c Client, site, path, ref string) {
			t.Helper()
			if err := s.Record(ctx, Event{Site: site, Path: path, Referrer: ref}, c, Signals{}); err != nil {
				t.Fatal(err)
			}
		}
		convert := func(c Client, site, goal string, sig Signals) bool {
			t.Helper()
			ok, err := s.Convert(ctx, site, goal, c, sig)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		// Alice comes from Google, then from the newsletter, and registers: the
		// newsletter (the last campaign visit) gets the registration.
		view(alice, "example.com", "/", "https://www.google.com/search?q=steward")
		now = now.Add(time.Minute)
		view(alice, "example.com", "/spring?utm_source=newsletter&utm_medium=email&utm_campaign=nl-spring", "")
		view(alice, "example.com", "/pricing", "https://example.com/spring") // her own navigation: no campaign visit
		now = now.Add(time.Minute)
		if !convert(alice, "example.com", GoalRegistration, Signals{}) {
			t.Fatal("alice's registration was not stored")
		}
		// Her visit after the conversion's minute does not take it.
		now = now.Add(2 * time.Minute)
		view(alice, "example.com", "/?utm_source=ads&utm_medium=cpc&utm_campaign=late", "")
		// Bob arrives from an ad on another browser; Carol registers from another
		// address with Bob's browser; neither conversion is Bob's visit.
		bob := Client{IP: "198.51.100.4", UserAgent: ua + " Bob"}
		view(bob, "example.com", "/?utm_source=ads&utm_medium=cpc&utm_campaign=spring", "")
		if !convert(Client{IP: bob.IP, UserAgent: ua}, "example.com", GoalRegistration, Signals{}) ||
			!convert(Client{IP: "198.51.100.5", UserAgent: bob.UserAgent}, "example.com", GoalSubscription, Signals{}) {
			t.Fatal("a conversion was not stored")
		}
		// Bob subscribes on the other site: his hash there is another.
		if !convert(bob, "shop.example.com", GoalSubscription, Signals{}) {
			t.Fatal("bob's subscription was not stored")
		}
		// A refusal, a robot and an unknown site store nothing.
		if convert(bob, "example.com", GoalSubscription, Signals{DNT: true}) || convert(bob, "example.com", GoalSubscription, Signals{Choice: Refused}) ||
			convert(Client{IP: bob.IP, UserAgent: "Googlebot/2.1 (+http://www.google.com/bot.html)"}, "example.com", GoalRegistration, Signals{}) ||
			convert(bob, "elsewhere.example", GoalRegistration, Signals{}) {
			t.Error("a conversion was stored against a refusal, for a robot or for an unknown site")
		}
		if _, err := s.Convert(ctx, "example.com", "purchase", bob, Signals{}); err == nil {
			t.Error("an unknown goal was taken")
		}
		// Bob's registration the next day, though he came the day before, is not his.
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(24 * time.Hour)
		if !convert(bob, "example.com", GoalRegistration, Signals{}) {
			t.Fatal("bob's registration of the next day was not stored")
		}
		// Alice comes back from Google the next day: another visitor (another day's hash).
		view(alice, "example.com", "/", "https://www.google.com/")
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for range 2 { // idempotent
			for _, d := range []int64{day, day + 1} {
				if err := s.RollupCampaigns(ctx, d); err != nil {
					t.Fatal(err)
				}
			}
			got := rowsOf(t, db)
			want := []string{
				"example.com " + itoa(day) + " ads/cpc/late 1 1 0 0",
				"example.com " + itoa(day) + " ads/cpc/spring 1 1 0 0",
				"example.com " + itoa(day) + " google/organic/(none) 1 1 0 0",
				"example.com " + itoa(day) + " newsletter/email/nl-spring 1 1 1 0",
				"example.com " + itoa(day+1) + " google/organic/(none) 1 1 0 0",
			}
			if !slices.Equal(got, want) {
				t.Fatalf("daily_campaigns:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM conversions`).Scan(&n); err != nil || n != 5 {
			t.Errorf("%d conversions stored (%v), want 5", n, err)
		}
		// The readers: every key over the range, and one key's days.
		all, err := s.Campaigns(ctx, "", day, day+1)
		if err != nil || len(all) != 4 {
			t.Fatalf("campaigns: %v %v", all, err)
		}
		// Summed over the days, most visitors first: one person on two days is two.
		if g := all[0]; g.Key.String() != "google/organic/(none)" || g.Visitors != 2 || g.Pageviews != 2 {
			t.Errorf("google over two days: %+v, want 2 visitors and 2 pageviews first", g)
		}
		if shop, err := s.Campaigns(ctx, "shop.example.com", day, day+1); err != nil || len(shop) != 0 {
			t.Errorf("campaigns of shop.example.com: %v %v", shop, err)
		}
		days, err := s.CampaignDays(ctx, NewsletterKey("nl-spring"), day, day+1)
		if err != nil || len(days) != 1 || days[0].Day != day || days[0].Visitors != 1 || days[0].Registrations != 1 {
			t.Errorf("newsletter days: %+v %v", days, err)
		}
		// Maintain rolls up too, and purges conversions with the events.
		now = now.Add(40 * 24 * time.Hour)
		if err := s.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM conversions`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d conversions left after 40 days of 31 (%v)", n, err)
		}
		if got := rowsOf(t, db); len(got) != 5 {
			t.Errorf("the rollups of past days changed with the purge: %v", got)
		}
	})
}

// Campaign figures under the rule of published figures: every figure shown is k or
// more and a multiple of k, a key with no unit of k visitors is not listed, a total is
// the sum of its days shown, and the figures of two overlapping ranges differ by a
// multiple of k (random units, many rounds).
func TestPublishCampaigns(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	keys := []Key{{"ads", "cpc", "spring"}, {"newsletter", "email", "nl-a"}, {"google", "organic", ""}, {"bob", "direct", "bob-only"}}
	for round := range 300 {
		k := int64(2 + rng.IntN(12))
		var units []CampaignStat
		for day := int64(100); day < 110; day++ {
			for range 2 { // two sites
				for ki, key := range keys {
					if ki == 3 && rng.IntN(2) == 0 {
						continue
					}
					v := int64(rng.IntN(3 * int(k)))
					// Pageviews and conversions may pass k on a day of fewer visitors.
					if ki == 3 {
						v = int64(rng.IntN(int(k))) // never k visitors on a day: never listed
					}
					units = append(units, CampaignStat{Key: key, Day: day, Visitors: v, Pageviews: v + int64(rng.IntN(3*int(k))),
						Registrations: int64(rng.IntN(int(k) + 2)), Subscriptions: int64(rng.IntN(2))})
				}
			}
		}
		check := func(p PublishedCampaign) {
			for _, f := range []Figure{p.Visitors, p.Pageviews, p.Registrations, p.Subscriptions} {
				if !f.Suppressed && (f.Value < k || f.Value%k != 0) {
					t.Fatalf("round %d, k %d: %v shows %d", round, k, p.Key, f.Value)
				}
			}
			if p.Key == keys[3] {
				t.Fatalf("round %d: a key with no day of %d visitors is listed", round, k)
			}
		}
		inRange := func(from, to int64) []CampaignStat {
			var out []CampaignStat
			for _, u := range units {
				if u.Day >= from && u.Day <= to {
					out = append(out, u)
				}
			}
			return out
		}
		days := PublishCampaigns(inRange(100, 109), k, true)
		totals := map[Key]PublishedCampaign{}
		for _, p := range PublishCampaigns(inRange(100, 109), k, false) {
			check(p)
			totals[p.Key] = p
		}
		sums := map[Key][4]int64{}
		for _, d := range days {
			check(d)
			s := sums[d.Key]
			s[0], s[1], s[2], s[3] = s[0]+d.Visitors.Value, s[1]+d.Pageviews.Value, s[2]+d.Registrations.Value, s[3]+d.Subscriptions.Value
			sums[d.Key] = s
		}
		for key, tot := range totals {
			// A total less its days shown is 0, for every figure: a day below k
			// counts nowhere.
			if got := [4]int64{tot.Visitors.Value, tot.Pageviews.Value, tot.Registrations.Value, tot.Subscriptions.Value}; got != sums[key] {
				t.Fatalf("round %d: %v totals %v, its days shown %v", round, key, got, sums[key])
			}
		}
		shorter := map[Key]PublishedCampaign{}
		for _, p := range PublishCampaigns(inRange(100, 108), k, false) {
			shorter[p.Key] = p
		}
		for key, tot := range totals {
			if d := tot.Visitors.Value - shorter[key].Visitors.Value; d%k != 0 || d < 0 {
				t.Fatalf("round %d: %v: ranges of 10 and 9 days differ by %d visitors, k %d", round, key, d, k)
			}
			if d := tot.Registrations.Value - shorter[key].Registrations.Value; d%k != 0 || d < 0 {
				t.Fatalf("round %d: %v: ranges of 10 and 9 days differ by %d registrations, k %d", round, key, d, k)
			}
		}
	}
}

// Random campaign names cannot grow a site's day without bound: past KeepCampaigns keys
// the ones with fewest visitors are summed under OtherCampaigns, visitors and all.
func TestCampaignKeysBounded(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
		s := newService(t, db, Config{Cookieless: true, Sites: []string{"example.com"}}, func() time.Time { return now })
		n := KeepCampaigns + 5
		for i := range n {
			// Campaign c000 gets the most visitors, c104 the fewest (one).
			for v := range max(1, n-i)/20 + 1 {
				c := Client{IP: fmt.Sprintf("198.51.%d.%d", i, v), UserAgent: "Mozilla/5.0 Firefox/130.0"}
				path := fmt.Sprintf("/?utm_source=flood&utm_medium=cpc&utm_campaign=c%03dx", i)
				if err := s.Record(ctx, Event{Site: "example.com", Path: path}, c, Signals{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.RollupCampaigns(ctx, DayOf(now)); err != nil {
			t.Fatal(err)
		}
		var rows, other, visitors int64
		if err := db.QueryRowContext(ctx, `SELECT count(*), CAST(SUM(visitors) AS BIGINT) FROM daily_campaigns`).Scan(&rows, &visitors); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT visitors FROM daily_campaigns WHERE source = '(other)'`).Scan(&other); err != nil {
			t.Fatalf("no (other) row: %v", err)
		}
		var sent int64
		for i := range n {
			sent += int64(max(1, n-i)/20 + 1)
		}
		if rows != int64(KeepCampaigns)+1 || visitors != sent || other < 5 {
			t.Errorf("%d rows holding %d visitors (other %d), want %d rows holding all %d", rows, visitors, other, KeepCampaigns+1, sent)
		}
	})
}
