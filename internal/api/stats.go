package api

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/analytics"
	"steward/internal/apperr"
	"steward/internal/server"
)

// statsRoles read the staff statistics (as the dashboard, internal/web).
var statsRoles = []string{"marketing", "dpo"}

func (a *API) registerStats(mux server.Router) {
	mux.HandleFunc("GET /api/v1/stats", a.publicStats)
	mux.HandleFunc("GET /api/v1/staff/stats", a.staff(a.staffStats, statsRoles...))
}

// statsResponse is a site's published figures over a range and the period before
// (its totals). Suppressed figures are null. Campaigns (attribution, daily_campaigns)
// are added to the breakdowns under the same rule.
type statsResponse struct {
	analytics.Stats
	Previous previousStats `json:"previous"`
}

type previousStats struct {
	From      string           `json:"from"`
	To        string           `json:"to"`
	Visitors  analytics.Figure `json:"visitors"`
	Pageviews analytics.Figure `json:"pageviews"`
}

// publicStats is GET /api/v1/stats?site=&range=|from=&to=: the published figures of a
// site the operator made public; 404 when none is.
func (a *API) publicStats(w http.ResponseWriter, r *http.Request) {
	if a.BeaconLimit != nil && !a.BeaconLimit.Take(a.ClientIP(r)) {
		a.fail(w, r, server.ErrRateLimited)
		return
	}
	var sites []string
	if a.Analytics != nil {
		sites = a.Analytics.PublicSites()
	}
	if len(sites) == 0 {
		a.fail(w, r, apperr.New(apperr.NotFound, "not_found", "no site's statistics are published here"))
		return
	}
	a.stats(w, r, sites)
}

// staffStats is GET /api/v1/staff/stats: the dashboard's figures, of any counted site,
// under the same rule.
func (a *API) staffStats(w http.ResponseWriter, r *http.Request, _ account.Session) {
	var sites []string
	if a.Analytics != nil {
		sites = a.Analytics.Sites()
	}
	if len(sites) == 0 {
		a.fail(w, r, apperr.New(apperr.NotFound, "not_found", "no site is counted (--analytics-sites)"))
		return
	}
	a.stats(w, r, sites)
}

func (a *API) stats(w http.ResponseWriter, r *http.Request, sites []string) {
	q := r.URL.Query()
	for k := range q {
		if k != "site" && k != "range" && k != "from" && k != "to" {
			a.fail(w, r, apperr.Field(k, "unknown_field", "is not a parameter of this route (site, range, from, to)"))
			return
		}
	}
	query, err := a.Analytics.ParseQuery(sites, q.Get("site"), q.Get("range"), q.Get("from"), q.Get("to"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	st, err := a.Analytics.Stats(r.Context(), query.Site, query.From, query.To, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	prev, err := a.Analytics.Stats(r.Context(), query.Site, query.PrevFrom, query.PrevTo, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	server.WriteJSON(w, http.StatusOK, statsResponse{Stats: st, Previous: previousStats{From: prev.From, To: prev.To,
		Visitors: prev.Visitors, Pageviews: prev.Pageviews}})
}
