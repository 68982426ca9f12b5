package api

import (
	"embed"
	"net/http"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/server"
)

//go:embed static/steward-consent.js
var consentScript embed.FS

func (a *API) registerCookies(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/cookies", a.auth(a.cookieChoice))
	mux.HandleFunc("PUT /api/v1/me/cookies", a.auth(a.putCookieChoice))
	mux.HandleFunc("GET /static/steward-consent.js", a.bannerScript)
}

// cookieChoiceResponse is a member's cookie choice: the ledger's, as the browser's
// signal leaves it.
type cookieChoiceResponse struct {
	Decided     bool `json:"decided"`
	Preferences bool `json:"preferences"`
	Statistics  bool `json:"statistics"`
	Marketing   bool `json:"marketing"`
	// Signal names the browser's privacy signal that refused statistics and
	// marketing ("" for none).
	Signal string `json:"signal,omitempty"`
}

func toCookieChoice(c server.CookieChoice, signal string) cookieChoiceResponse {
	c = c.Honour(signal)
	return cookieChoiceResponse{Decided: c.Decided, Preferences: c.Preferences, Statistics: c.Statistics, Marketing: c.Marketing, Signal: signal}
}

// cookieChoice answers the member's cookie choice as the consent ledger holds it.
func (a *API) cookieChoice(w http.ResponseWriter, r *http.Request, sess account.Session) {
	c, err := a.MemberCookieChoice(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toCookieChoice(c, server.BrowserSignal(r)))
}

type putCookieChoiceRequest struct {
	Preferences *bool `json:"preferences"`
	Statistics  *bool `json:"statistics"`
	Marketing   *bool `json:"marketing"`
}

// putCookieChoice records the member's cookie choice in the ledger (source: API) and
// in the choice cookie; every category is required.
func (a *API) putCookieChoice(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req putCookieChoiceRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	c := server.CookieChoice{Decided: true}
	for _, f := range []struct {
		name string
		v    *bool
		cat  server.CookieCategory
	}{{"preferences", req.Preferences, server.Preferences}, {"statistics", req.Statistics, server.Statistics}, {"marketing", req.Marketing, server.Marketing}} {
		if f.v == nil {
			a.fail(w, r, apperr.Field(f.name, "required", "is required (true or false)"))
			return
		}
		c = c.With(f.cat, *f.v)
	}
	c, err := a.SaveCookieChoice(w, r, sess.AccountID, c, consent.SourceAPI)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toCookieChoice(c, server.BrowserSignal(r)))
}

// bannerScript serves the cookie banner script for the operator's other sites.
func (a *API) bannerScript(w http.ResponseWriter, r *http.Request) {
	b, err := consentScript.ReadFile("static/steward-consent.js")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	_, _ = w.Write(b) // a failed write is a client gone
}
