package api

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"steward/internal/analytics"
	"steward/internal/apperr"
	"steward/internal/server"
)

//go:embed static/steward-analytics.js
var analyticsScript embed.FS

// MaxEventBody is the largest event body accepted: an event is a few hundred bytes.
const MaxEventBody = 4 << 10

func (a *API) registerBeacons(mux server.Router) {
	mux.HandleFunc("GET /b.gif", a.pixel)
	mux.HandleFunc("POST /api/v1/events", a.event)
	mux.HandleFunc("GET /static/steward-analytics.js", a.script)
}

// script serves the page statistics script, loadable from the operator's other sites.
// It says whether the operator declared the statistics cookieless: without a choice
// in the cookie banner, it sends only then.
func (a *API) script(w http.ResponseWriter, r *http.Request) {
	b, err := analyticsScript.ReadFile("static/steward-analytics.js")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.Analytics != nil && a.Analytics.Cookieless() {
		b = bytes.Replace(b, []byte("/*cookieless*/ false"), []byte("/*cookieless*/ true"), 1)
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	_, _ = w.Write(b) // a failed write is a client gone
}

// pixel is the beacon of a page without the script: GET /b.gif?s=SITE&p=PATH&r=REFERRER
// (k=KIND and n=NAME for outbound links and events; c=granted or c=refused, the
// visitor's choice about statistics as the site's cookie banner recorded it). Counted or not, it answers the
// transparent GIF; bad input is a 400 naming the field.
// Header values of the beacons' answers, shared by all of them.
var (
	gifType     = []string{"image/gif"}
	noStore     = []string{"no-store"}
	crossOrigin = []string{"cross-origin"}
)

func (a *API) pixel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e := analytics.Event{Site: q.Get("s"), Kind: q.Get("k"), Path: q.Get("p"), Referrer: q.Get("r"), Name: q.Get("n"), Consent: q.Get("c")}
	if err := a.recordBeacon(r, e); err != nil {
		a.fail(w, r, err)
		return
	}
	h := w.Header()
	// Canonical names and shared values of capacity one: no copies per beacon.
	h["Content-Type"] = gifType
	h["Cache-Control"] = noStore
	h["Cross-Origin-Resource-Policy"] = crossOrigin
	_, _ = w.Write(gif)
}

// event takes an event of the script: a JSON object sent as application/json, or as
// text/plain (navigator.sendBeacon's, which needs no preflight). It answers 204,
// counted or not.
func (a *API) event(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.fail(w, r, apperr.New(apperr.TooLarge, "body_too_large", fmt.Sprintf("an event is at most %d bytes", MaxEventBody)))
			return
		}
		a.fail(w, r, apperr.New(apperr.Invalid, "malformed_json", "the body could not be read to its end"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		a.fail(w, r, apperr.New(apperr.Invalid, "content_type", "send the event as application/json (or text/plain, as navigator.sendBeacon does)"))
		return
	}
	e, err := analytics.ParseEvent(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.recordBeacon(r, e); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header()["Cross-Origin-Resource-Policy"] = crossOrigin
	w.WriteHeader(http.StatusNoContent)
}

// recordBeacon limits the sender's address, checks the event and records it where the
// visitor's choice allows. It never reads the session: a beacon is nobody's.
func (a *API) recordBeacon(r *http.Request, e analytics.Event) error {
	if a.Analytics == nil {
		return apperr.New(apperr.NotFound, "not_found", "statistics are off on this server")
	}
	ip := a.ClientIP(r)
	if a.BeaconLimit != nil && !a.BeaconLimit.Take(ip) {
		return apperr.New(apperr.RateLimited, "rate_limited", "too many events from your address; try again in a minute")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Hostname(), strings.TrimSpace(e.Site)) {
			return apperr.Field("site", "wrong_origin", "is not the site the event was sent from")
		}
	}
	return a.Analytics.Record(r.Context(), e, analytics.Client{IP: ip, UserAgent: r.UserAgent()},
		server.StatisticsSignals(r))
}
