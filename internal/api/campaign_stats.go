package api

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/server"
)

// registerCampaignStats adds the campaign figures (attribution: docs/analytics.md):
// aggregates of the analytics store, no member data.
func (a *API) registerCampaignStats(mux server.Router) {
	mux.HandleFunc("GET /api/v1/staff/analytics/campaigns", a.staff(a.campaignStats, server.AnalyticsRoles...))
	mux.HandleFunc("GET /api/v1/staff/campaigns/{id}/visits", a.staff(a.campaignVisits, server.AnalyticsRoles...))
}

// campaignTable is every campaign key's figures over a range of days.
type campaignTable struct {
	From      string                   `json:"from"`
	To        string                   `json:"to"`
	Site      string                   `json:"site,omitempty"`
	K         int64                    `json:"k"` // figures below it are null ("fewer than k")
	Campaigns []server.CampaignFigures `json:"campaigns"`
}

// campaignStats lists every campaign key (UTM, referrers, the newsletter's own links)
// with its visitors, pageviews and conversions over ?from=&to= (YYYY-MM-DD; the last
// 30 days by default), on ?site= or every site.
func (a *API) campaignStats(w http.ResponseWriter, r *http.Request, _ account.Session) {
	from, to, site, err := a.CampaignRange(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rows, err := a.CampaignTable(r.Context(), site, from, to)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, campaignTable{From: server.DayString(from), To: server.DayString(to), Site: site,
		K: a.StatsK(), Campaigns: rows})
}

// campaignVisits are a newsletter campaign's visits and conversions from its own
// links, per day since it was sent.
func (a *API) campaignVisits(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, err := a.Newsletter.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.NewsletterVisits(r.Context(), c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, v)
}
