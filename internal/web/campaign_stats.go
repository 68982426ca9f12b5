package web

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/server"
)

// campaignStatsView is every campaign key's figures over a range of days.
type campaignStatsView struct {
	Fields []field
	Error  string
	From   string
	To     string
	Site   string
	K      int64
	Rows   []server.CampaignFigures
}

// campaignStats lists every campaign key (UTM parameters, known referrers, the
// newsletter's own links) with its visitors, pageviews and conversions over a range
// of days: aggregates of the analytics store, no member data.
func (p *Pages) campaignStats(w http.ResponseWriter, r *http.Request, _ account.Session) {
	q := r.URL.Query()
	v := campaignStatsView{K: p.o.StatsK(), Fields: []field{
		{Name: "from", Label: "From", Type: "date", Value: q.Get("from")},
		{Name: "to", Label: "To", Type: "date", Value: q.Get("to")},
		{Name: "site", Label: "Site", Type: "text", Value: q.Get("site"), Hint: "One of the sites counted; empty for all."},
	}}
	from, to, site, err := p.o.CampaignRange(q)
	if err != nil {
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "staff-analytics-campaigns", "Campaigns: visits and conversions", true, v)
		return
	}
	v.From, v.To, v.Site = server.DayString(from), server.DayString(to), site
	v.Fields[0].Value, v.Fields[1].Value = v.From, v.To
	if v.Rows, err = p.o.CampaignTable(r.Context(), site, from, to); err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "staff-analytics-campaigns", "Campaigns: visits and conversions", true, v)
}
