// Package api serves the JSON API under /api/v1: thin handlers that decode a request,
// call one service method and encode the answer with their own response types.
package api

import (
	"fmt"
	"net/http"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

// API holds what the handlers need: the services the pages use too.
type API struct {
	server.Services
}

// Register adds the API's routes to mux.
func (a *API) Register(mux server.Router) {
	mux.HandleFunc("POST /api/v1/accounts", a.register)
	mux.HandleFunc("POST /api/v1/verifications", a.verify)
	mux.HandleFunc("GET /api/v1/guardian-consents", a.guardianRequest)
	mux.HandleFunc("POST /api/v1/guardian-consents", a.guardianDecide)
	mux.HandleFunc("GET /api/v1/guardian-purposes", a.guardianPurpose)
	mux.HandleFunc("POST /api/v1/guardian-purposes", a.decideGuardianPurpose)
	mux.HandleFunc("POST /api/v1/sessions", a.login)
	mux.HandleFunc("GET /api/v1/sessions", a.auth(a.sessions))
	mux.HandleFunc("DELETE /api/v1/sessions", a.auth(a.logoutEverywhere))
	mux.HandleFunc("DELETE /api/v1/sessions/current", a.auth(a.logout))
	mux.HandleFunc("DELETE /api/v1/sessions/others", a.auth(a.logoutOthers))
	mux.HandleFunc("DELETE /api/v1/sessions/{id}", a.auth(a.revoke))
	mux.HandleFunc("POST /api/v1/password-resets", a.requestReset)
	mux.HandleFunc("POST /api/v1/password-resets/confirm", a.confirmReset)
	mux.HandleFunc("GET /api/v1/me", a.me) // authenticates itself, in the same query as the profile
	mux.HandleFunc("PATCH /api/v1/me", a.auth(a.updateMe))
	mux.HandleFunc("DELETE /api/v1/me", a.auth(a.deleteMe))
	mux.HandleFunc("PUT /api/v1/me/password", a.auth(a.changePassword))
	mux.HandleFunc("GET /api/v1/me/export", a.auth(a.export))
	mux.HandleFunc("GET /api/v1/me/activity", a.auth(a.activity))
	mux.HandleFunc("GET /api/v1/erasures/{id}", a.erasure)
	mux.HandleFunc("GET /api/v1/members/{id}", a.publicProfile)
	a.registerFiles(mux)
	a.registerConsent(mux)
	a.registerNewsletter(mux)
	a.registerChildren(mux)
	a.registerNotices(mux)
	a.registerRequests(mux)
	a.registerHolds(mux)
	a.registerRetention(mux)
	a.registerPolicy(mux)
	a.registerDisclosures(mux)
	a.registerBreaches(mux)
	a.registerProcessors(mux)
	a.registerAccess(mux)
	a.registerBeacons(mux)
	a.registerCookies(mux)
	a.registerStats(mux)
	a.registerStaff(mux)
	a.registerCampaignStats(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, apperr.New(apperr.NotFound, "no_route", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
	})
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	server.WriteError(a.Log, w, r, err)
}

// auth admits only requests with a live session, by bearer token or cookie.
func (a *API) auth(h func(http.ResponseWriter, *http.Request, account.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := a.Accounts.Authenticate(r.Context(), server.Token(r))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
			a.fail(w, r, err)
			return
		}
		if err := a.GPC(r, sess.AccountID); err != nil {
			a.fail(w, r, err)
			return
		}
		h(w, r, sess)
	}
}
