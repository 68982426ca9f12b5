// Package web serves Steward's HTML pages: server-rendered with html/template from
// embedded files, plain, and usable without JavaScript. Handlers parse the form, call
// one service method and render a typed view.
package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/breaches"
	"steward/internal/config"
	"steward/internal/disclosures"
	"steward/internal/holds"
	"steward/internal/processors"
	"steward/internal/requests"
	"steward/internal/retention"
	"steward/internal/server"
)

//go:embed templates/*.html static/* countries.txt
var assets embed.FS

// Options are what the pages need: the services the API uses too, and how the pages
// look and which fields they ask for.
type Options struct {
	server.Services
	SiteName string
	Fields   map[string]config.Requirement
	// DefaultAgeOfConsent is the age of consent of countries without their own.
	DefaultAgeOfConsent int
	CookieSecure        bool
	// Dev serves the style guide at /_styleguide (development mode, --dev).
	Dev bool
}

// Pages is the web interface.
type Pages struct {
	o         Options
	pages     map[string]*lazyPage
	css       string // the stylesheet's address, versioned by its content
	countries []country
}

// country is one choice of the country lists.
type country struct {
	Code, Name string
}

// New parses the templates; an error in them fails here, at start.
func New(o Options) (*Pages, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pages{o: o, pages: map[string]*lazyPage{}}
	var err error
	if p.countries, err = readCountries(); err != nil {
		return nil, err
	}
	css, err := assets.ReadFile("static/style.css")
	if err != nil {
		return nil, fmt.Errorf("web: stylesheet: %w", err)
	}
	sum := sha256.Sum256(css)
	p.css = "/static/style.css?v=" + hex.EncodeToString(sum[:6])

	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	for _, file := range names {
		name := strings.TrimSuffix(path.Base(file), ".html")
		if name == "layout" {
			continue
		}
		lp := &lazyPage{parse: func() (*template.Template, error) {
			t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", file)
			if err != nil {
				return nil, fmt.Errorf("web: template %s: %w", name, err)
			}
			if t.Lookup("main") == nil {
				return nil, fmt.Errorf("web: template %s: no main block", name)
			}
			return t, nil
		}}
		// Parsed here to refuse a broken template at start, and dropped: a page is
		// parsed again when it is first shown (lazyPage).
		if _, err := lp.parse(); err != nil {
			return nil, err
		}
		p.pages[name] = lp
	}
	for _, name := range pageNames {
		if p.pages[name] == nil {
			return nil, fmt.Errorf("web: template %s.html is missing", name)
		}
	}
	return p, nil
}

// lazyPage is a page's template, parsed when the page is first shown: the parsed
// pages took 5.6 MiB of an idle node's heap, most of them pages an API-only node never
// shows (issue 11's idle memory target).
type lazyPage struct {
	parse func() (*template.Template, error)
	once  sync.Once
	t     *template.Template
	err   error
}

func (l *lazyPage) get() (*template.Template, error) {
	l.once.Do(func() { l.t, l.err = l.parse() })
	return l.t, l.err
}

// pageNames are the templates the handlers render; New checks that each exists.
var pageNames = []string{
	"home", "register", "register-sent", "verify", "verify-done", "resend", "resend-sent", "guardian", "guardian-done", "guardian-purpose", "children", "child",
	"login", "forgot", "forgot-sent", "reset", "account", "sessions", "password", "activity",
	"files", "file-delete", "delete", "erasure", "member", "error", "purposes", "preferences", "receipt", "receipt-verify", "conflicts",
	"newsletter", "newsletter-sent", "newsletter-confirm", "newsletter-confirmed", "unsubscribe", "unsubscribed",
	"campaigns", "campaign-new", "campaign", "campaign-edit", "campaign-delete", "campaign-send", "unsubscribe-test",
	"campaigns", "campaign-new", "campaign", "requests", "request", "staff-requests", "staff-request",
	"request-new", "request-sent", "request-confirm", "request-confirmed", "request-download",
	"staff-holds", "staff-hold-release",
	"processor-notices", "processor-notice", "processor-notice-done",
	"policy", "policy-versions", "policy-diff", "account-policy", "staff-policies", "staff-policy",
	"staff-disclosures", "staff-disclosure", "staff-breaches", "staff-breach",
	"privacy-processors", "staff-processors", "staff-processor", "staff-ropa",
	"second-factor", "second-factor-setup", "second-factor-codes", "reauth", "staff-people", "staff-audit",
	"staff-analytics", "statistics",
	"staff-analytics-campaigns",
}

// readCountries reads the embedded country list and checks every code against the
// one the account service accepts.
func readCountries() ([]country, error) {
	f, err := assets.Open("countries.txt")
	if err != nil {
		return nil, fmt.Errorf("web: countries: %w", err)
	}
	defer f.Close()
	var out []country
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		code, name, ok := strings.Cut(line, "\t")
		if !ok || !config.ValidCountry(code) || name == "" {
			return nil, fmt.Errorf("web: countries: bad line %q", line)
		}
		out = append(out, country{Code: code, Name: name})
	}
	return out, sc.Err()
}

var funcs = template.FuncMap{
	"lower": strings.ToLower,
	// invalid lists a form's fields in error, for the summary's links.
	"invalid": func(fields []field) []field {
		var out []field
		for _, f := range fields {
			if f.Error != "" {
				out = append(out, f)
			}
		}
		return out
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2 Jan 2006, 15:04 UTC")
	},
}

// Register adds the pages' routes to mux.
func (p *Pages) Register(mux server.Router) {
	mux.HandleFunc("GET /{$}", p.home)
	mux.Handle("GET /static/", p.static())

	mux.HandleFunc("GET /register", p.registerForm)
	mux.HandleFunc("POST /register", p.register)
	mux.HandleFunc("GET /register/sent", p.registerSent)
	mux.HandleFunc("GET /verify", p.verifyForm)
	mux.HandleFunc("POST /verify", p.verify)
	mux.HandleFunc("GET /verify/done", p.verifyDone)
	mux.HandleFunc("GET /verify/resend", p.resendForm)
	mux.HandleFunc("POST /verify/resend", p.resend)
	mux.HandleFunc("GET /verify/resend/sent", p.resendSent)
	mux.HandleFunc("GET /guardian", p.guardianForm)
	mux.HandleFunc("POST /guardian", p.guardianDecide)
	mux.HandleFunc("GET /guardian/done", p.guardianDone)
	mux.HandleFunc("GET /guardian/purpose", p.guardianPurposeForm)
	mux.HandleFunc("POST /guardian/purpose", p.guardianPurposeDecide)

	mux.HandleFunc("GET /login", p.loginForm)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("POST /logout", p.logout)
	mux.HandleFunc("GET /password/forgot", p.forgotForm)
	mux.HandleFunc("POST /password/forgot", p.forgot)
	mux.HandleFunc("GET /password/forgot/sent", p.forgotSent)
	mux.HandleFunc("GET /password/reset", p.resetForm)
	mux.HandleFunc("POST /password/reset", p.reset)

	mux.HandleFunc("GET /account", p.member(p.profile))
	mux.HandleFunc("POST /account", p.member(p.updateProfile))
	mux.HandleFunc("GET /account/export", p.member(p.export))
	mux.HandleFunc("GET /account/sessions", p.member(p.sessions))
	mux.HandleFunc("POST /account/sessions/{id}/revoke", p.member(p.revoke))
	mux.HandleFunc("POST /account/sessions/revoke-all", p.member(p.revokeAll))
	mux.HandleFunc("POST /account/sessions/revoke-others", p.member(p.revokeOthers))
	mux.HandleFunc("GET /account/password", p.member(p.passwordForm))
	mux.HandleFunc("POST /account/password", p.member(p.changePassword))
	mux.HandleFunc("GET /account/activity", p.member(p.activity))
	mux.HandleFunc("GET /account/files", p.member(p.filesPage))
	mux.HandleFunc("POST /account/files", p.member(p.upload))
	mux.HandleFunc("GET /account/files/{id}/download", p.member(p.download))
	mux.HandleFunc("GET /account/files/{id}/delete", p.member(p.deleteFileForm))
	mux.HandleFunc("POST /account/files/{id}/delete", p.member(p.deleteFile))
	mux.HandleFunc("GET /account/children", p.member(p.children))
	mux.HandleFunc("GET /account/children/{id}", p.member(p.child))
	mux.HandleFunc("POST /account/children/{id}/preferences", p.member(p.saveChild))
	mux.HandleFunc("GET /account/children/{id}/export", p.member(p.childExport))
	mux.HandleFunc("POST /account/children/{id}/delete", p.member(p.deleteChild))
	mux.HandleFunc("GET /account/preferences", p.member(p.preferences))
	mux.HandleFunc("POST /account/preferences", p.member(p.savePreferences))
	mux.HandleFunc("GET /account/preferences/receipts/{id}", p.member(p.receipt))
	mux.HandleFunc("GET /account/preferences/receipts/{id}/download", p.member(p.receiptDownload))
	mux.HandleFunc("GET /receipts/verify", p.verifyReceiptForm)
	mux.HandleFunc("POST /receipts/verify", p.verifyReceipt)
	mux.HandleFunc("GET /account/delete", p.member(p.deleteForm))
	mux.HandleFunc("POST /account/delete", p.member(p.deleteAccount))
	mux.HandleFunc("GET /account/requests", p.member(p.requestsPage))
	mux.HandleFunc("POST /account/requests", p.member(p.sendRequest))
	mux.HandleFunc("GET /account/requests/{id}", p.member(p.myRequest))
	mux.HandleFunc("POST /account/requests/{id}/withdraw", p.member(p.withdrawRequest))
	mux.HandleFunc("GET /erasures/{id}", p.erasure)

	mux.HandleFunc("GET /members/{id}", p.publicProfile)
	mux.HandleFunc("GET /privacy/purposes", p.purposes)
	mux.HandleFunc("GET /privacy/processors", p.publicProcessors)
	mux.HandleFunc("GET /privacy/cookies", p.cookies)
	mux.HandleFunc("POST /privacy/cookies", p.saveCookies)

	mux.HandleFunc("GET /newsletter", p.subscribeForm)
	mux.HandleFunc("POST /newsletter", p.subscribe)
	mux.HandleFunc("GET /newsletter/sent", p.subscribeSent)
	mux.HandleFunc("GET /newsletter/confirm", p.confirmForm)
	mux.HandleFunc("POST /newsletter/confirm", p.confirm)
	mux.HandleFunc("GET /newsletter/confirmed", p.confirmed)
	// The API serves RFC 8058's POST /unsubscribe/one-click; these are the pages a
	// person opens from the mail.
	mux.HandleFunc("GET /unsubscribe", p.unsubscribeForm)
	mux.HandleFunc("POST /unsubscribe", p.unsubscribe)
	mux.HandleFunc("GET /unsubscribe/test", p.unsubscribeTest)

	mux.HandleFunc("GET /staff/campaigns", p.staff(p.campaigns, marketing))
	mux.HandleFunc("GET /staff/campaigns/new", p.staff(p.campaignForm, marketing))
	mux.HandleFunc("POST /staff/campaigns/new", p.staff(p.createCampaign, marketing))
	mux.HandleFunc("GET /staff/campaigns/{id}", p.staff(p.campaign, marketing))
	mux.HandleFunc("GET /staff/campaigns/{id}/send", p.staff(p.sendCampaignForm, marketing))
	mux.HandleFunc("POST /staff/campaigns/{id}/send", p.staff(p.sensitive(p.sendCampaign), marketing))
	mux.HandleFunc("GET /staff", p.staff(p.staffHome, staffRoles...))
	mux.HandleFunc("GET /staff/consent-conflicts", p.staff(p.conflicts, conflictRoles...))
	mux.HandleFunc("GET /staff/campaigns/{id}/edit", p.staff(p.editCampaignForm, marketing))
	mux.HandleFunc("POST /staff/campaigns/{id}/edit", p.staff(p.editCampaign, marketing))
	mux.HandleFunc("GET /staff/campaigns/{id}/delete", p.staff(p.deleteCampaignForm, marketing))
	mux.HandleFunc("POST /staff/campaigns/{id}/delete", p.staff(p.deleteCampaign, marketing))
	mux.HandleFunc("POST /staff/campaigns/{id}/test", p.staff(p.testCampaign, marketing))
	mux.HandleFunc("GET /staff/campaigns/{id}/preview", p.staff(p.campaignPreview, marketing))
	mux.HandleFunc("GET /staff/analytics/campaigns", p.staff(p.campaignStats, server.AnalyticsRoles...))
	mux.HandleFunc("GET /requests/new", p.visitorForm)
	mux.HandleFunc("POST /requests/new", p.submitVisitor)
	mux.HandleFunc("GET /requests/sent", p.visitorSent)
	mux.HandleFunc("GET /requests/confirm", p.visitorConfirmForm)
	mux.HandleFunc("POST /requests/confirm", p.visitorConfirm)
	mux.HandleFunc("GET /requests/confirmed", p.visitorConfirmed)
	mux.HandleFunc("GET /staff/requests", p.staff(p.staffRequests, requests.WarnRole))
	mux.HandleFunc("GET /staff/requests/{id}", p.staff(p.staffRequest, requests.WarnRole))
	mux.HandleFunc("POST /staff/requests/{id}/state", p.staff(p.changeRequest, requests.WarnRole))
	mux.HandleFunc("POST /staff/requests/{id}/extend", p.staff(p.extendRequest, requests.WarnRole))
	mux.HandleFunc("POST /staff/requests/{id}/identity", p.staff(p.verifyIdentity, requests.WarnRole))
	mux.HandleFunc("POST /staff/requests/{id}/rectify", p.staff(p.rectify, requests.WarnRole))
	mux.HandleFunc("GET /staff/requests/{id}/document", p.staff(p.requestDocument, requests.WarnRole))
	mux.HandleFunc("GET /requests/download", p.downloadForm)
	mux.HandleFunc("POST /requests/download", p.requestDownload)
	mux.HandleFunc("GET /staff/holds", p.staff(p.staffHolds, holds.Role))
	mux.HandleFunc("POST /staff/holds", p.staff(p.placeHold, holds.Role))
	mux.HandleFunc("GET /staff/holds/{hold}/release", p.staff(p.releaseHoldForm, holds.Role))
	mux.HandleFunc("GET /staff/retention", p.staff(p.staffRetention, retention.Role))
	mux.HandleFunc("GET /staff/analytics", p.staff(p.staffAnalytics, analyticsRoles...))
	mux.HandleFunc("GET /statistics", p.publicStatistics)
	mux.HandleFunc("POST /staff/retention/run", p.staff(p.sensitive(p.runRetention), retention.Role))
	mux.HandleFunc("POST /staff/holds/{hold}/release", p.staff(p.sensitive(p.releaseHold), holds.Role))
	mux.HandleFunc("GET /staff/processor-notices", p.staff(p.processorNotices, noticeRole))
	mux.HandleFunc("GET /staff/processor-notices/{id}", p.staff(p.processorNotice, noticeRole))
	mux.HandleFunc("GET /staff/processor-notices/{id}/done", p.staff(p.processorNoticeDoneForm, noticeRole))
	mux.HandleFunc("POST /staff/processor-notices/{id}/done", p.staff(p.processorNoticeDone, noticeRole))
	p.registerPolicy(mux)
	mux.HandleFunc("GET /staff/disclosures", p.staff(p.staffDisclosures, disclosures.Role))
	mux.HandleFunc("POST /staff/disclosures", p.staff(p.recordDisclosure, disclosures.Role))
	mux.HandleFunc("GET /staff/disclosures/{id}", p.staff(p.staffDisclosure, disclosures.Role))
	mux.HandleFunc("GET /staff/disclosures/{id}/document", p.staff(p.disclosureDocument, disclosures.Role))
	mux.HandleFunc("POST /staff/disclosures/{id}/lift", p.staff(p.sensitive(p.liftDisclosure), disclosures.Role))
	mux.HandleFunc("POST /staff/disclosures/{id}/postpone", p.staff(p.postponeDisclosure, disclosures.Role))
	mux.HandleFunc("GET /staff/breaches", p.staff(p.staffBreaches, breaches.Role))
	mux.HandleFunc("POST /staff/breaches", p.staff(p.recordBreach, breaches.Role))
	mux.HandleFunc("GET /staff/breaches/{id}", p.staff(p.staffBreach, breaches.Role))
	mux.HandleFunc("POST /staff/breaches/{id}/members", p.staff(p.selectBreachMembers, breaches.Role))
	mux.HandleFunc("POST /staff/breaches/{id}/report", p.staff(p.reportBreach, breaches.Role))
	mux.HandleFunc("POST /staff/breaches/{id}/notify", p.staff(p.sensitive(p.notifyBreach), breaches.Role))
	mux.HandleFunc("GET /staff/processors", p.staff(p.staffProcessors, processors.Roles...))
	mux.HandleFunc("POST /staff/processors", p.staff(p.addProcessor, processors.Roles...))
	mux.HandleFunc("GET /staff/processors/{key}", p.staff(p.staffProcessor, processors.Roles...))
	mux.HandleFunc("POST /staff/processors/{key}", p.staff(p.editProcessor, processors.Roles...))
	mux.HandleFunc("POST /staff/processors/{key}/retire", p.staff(p.processorAction("retired"), processors.Roles...))
	mux.HandleFunc("POST /staff/processors/{key}/approve", p.staff(p.sensitive(p.processorAction("approved")), processors.Roles...))
	mux.HandleFunc("POST /staff/processors/{key}/reject", p.staff(p.processorAction("rejected"), processors.Roles...))
	mux.HandleFunc("GET /staff/ropa", p.staff(p.staffROPA, processors.Roles...))
	mux.HandleFunc("GET /staff/ropa/{format}", p.staff(p.staffROPADownload, processors.Roles...))
	p.registerAccess(mux)
	mux.HandleFunc("GET /login/second-factor", p.member(p.factorForm))
	mux.HandleFunc("POST /login/second-factor", p.member(p.passFactor))
	mux.HandleFunc("GET /account/second-factor", p.member(p.setupFactor))
	mux.HandleFunc("POST /account/second-factor", p.member(p.confirmFactor))
	mux.HandleFunc("POST /account/second-factor/recovery-codes", p.member(p.sensitive(p.regenerateCodes)))
	mux.HandleFunc("GET /staff/people", p.staff(p.people, adminRole))
	mux.HandleFunc("POST /staff/people/grant", p.staff(p.sensitive(p.grantRole), adminRole))
	mux.HandleFunc("POST /staff/people/{id}/revoke", p.staff(p.sensitive(p.revokeRole), adminRole))
	mux.HandleFunc("POST /staff/people/{id}/reset-second-factor", p.staff(p.sensitive(p.resetFactor), adminRole))
	mux.HandleFunc("GET /staff/audit", p.staff(p.auditLog, auditorRole))
	mux.HandleFunc("POST /staff/audit/verify", p.staff(p.verifyAudit, auditorRole))
	if p.o.Dev {
		mux.HandleFunc("GET /_styleguide", p.styleguide)
	}

	// Every other path is a page that does not exist. The API registers /api/ itself,
	// which is more specific and so keeps its JSON answers.
	mux.HandleFunc("/", p.notFound)
}

// static serves the embedded stylesheet. Its address carries a hash of its content,
// so browsers may keep it.
func (p *Pages) static() http.Handler {
	sub, _ := fs.Sub(assets, "static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			p.notFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
}

// layout is what every page gives the layout template; Main is the page's own view.
type layout struct {
	Site     string
	Title    string
	Page     string
	CSS      string
	LoggedIn bool
	Staff    bool      // the member holds a staff role: the header links to /staff
	Tabs     []navLink // the member area's tabs, on its pages
	Sidebar  []navLink // the staff pages' sidebar, on theirs
	// Policy is the notice of a change of the privacy policy to read and accept, on
	// a member's pages.
	Policy *policyBanner
	// Cookies is the cookie banner, until the visitor chooses.
	Cookies *cookieBanner
	Main    any
}

// render writes a page. It renders into a buffer first so that a template error gives
// a clean error page, not half a page. Every page is no-store: most show member data,
// and every one shows whether a member is logged in.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name, title string, loggedIn bool, view any) {
	t, err := p.pages[name].get()
	if err != nil {
		p.o.Log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	tabs, sidebar := navFor(name, loggedIn)
	sidebar = p.ownLinks(r, sidebar)
	if err := t.ExecuteTemplate(&buf, "layout", layout{
		Site: p.o.SiteName, Title: title, Page: name, CSS: p.css, LoggedIn: loggedIn, Staff: loggedIn && p.isStaff(r),
		Tabs: tabs, Sidebar: sidebar, Main: view, Policy: p.policyNotice(r, name),
		Cookies: bannerFor(r, name),
	}); err != nil {
		p.o.Log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the status is sent: a failed write is a client gone
}

// redirect answers a successful POST (or a page that needs a login) with a GET of
// another page.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// errorView is the page shown for an error that belongs to no form.
type errorView struct {
	Heading string
	Message string
}

// fail shows an error page with the error's status.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := server.Status(err)
	if status == http.StatusNotFound {
		p.renderNotFound(w, r)
		return
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	d := server.Public(p.o.Log, r, err)
	heading := "Something went wrong"
	if status < 500 {
		heading = "That did not work"
	}
	p.render(w, r, status, "error", heading, p.loggedIn(r), errorView{Heading: heading, Message: sentence("", d.Message)})
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request) { p.renderNotFound(w, r) }

func (p *Pages) renderNotFound(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusNotFound, "error", "Page not found", p.loggedIn(r), errorView{
		Heading: "Page not found",
		Message: "There is no page at this address. It may have been removed, or the link may be mistyped.",
	})
}

// loggedIn reports whether the request carries a live session, for the navigation. A
// failure to tell only shows the links of a visitor; it is logged.
func (p *Pages) loggedIn(r *http.Request) bool {
	token := server.Token(r)
	if token == "" {
		return false
	}
	_, err := p.o.Accounts.Authenticate(r.Context(), token)
	if err != nil && apperr.KindOf(err) != apperr.Unauthorized {
		p.o.Log.ErrorContext(r.Context(), "session for the navigation", "err", err)
	}
	return err == nil
}

// member admits only requests with a live session; others go to the login page. It
// honours the browser's Global Privacy Control signal on every page a member sees: an
// opt-out of every sharing purpose, recorded once.
func (p *Pages) member(h func(http.ResponseWriter, *http.Request, account.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := p.o.Accounts.Authenticate(r.Context(), server.Token(r))
		if apperr.KindOf(err) == apperr.Unauthorized {
			if _, cerr := r.Cookie(server.CookieName); cerr == nil {
				server.ClearSessionCookie(w, p.o.CookieSecure)
			}
			redirect(w, r, loginFor(r))
			return
		}
		if err == nil {
			err = p.o.GPC(r, sess.AccountID)
		}
		if err != nil {
			p.fail(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)), sess)
	}
}

// loginFor is the login page's address for a request that needs a login: a page
// (GET) is returned to after the login, through a next parameter; a form sent (POST)
// is not replayed, and leads to the account.
func loginFor(r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "/login"
	}
	return "/login?next=" + url.QueryEscape(r.URL.RequestURI())
}

// safeNext returns next if it is a path of this site, else "": it must start with one
// "/" (not "//" or "/\", which browsers read as another host) and hold no control
// character or backslash.
func safeNext(next string) string {
	if len(next) < 1 || len(next) > 2000 || next[0] != '/' || strings.HasPrefix(next, "//") {
		return ""
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

// sessionKey carries the session member admitted, so that render need not look it up
// again.
type sessionKey struct{}

// maxForm is the largest form body accepted; the largest form, the profile, needs a
// few kilobytes.
const maxForm = 64 << 10

// parseForm reads a POSTed form under the size limit.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.New(apperr.TooLarge, "body_too_large", "the form is too large")
		}
		return apperr.New(apperr.Invalid, "form_invalid", "the form could not be read; please try again")
	}
	return nil
}

// formError places err on the form: beside the field it names when the form shows
// that field, else above the form. It returns the status to answer with.
func (p *Pages) formError(w http.ResponseWriter, r *http.Request, fields []field, general *string, err error) int {
	d := server.Public(p.o.Log, r, err)
	for i := range fields {
		if fields[i].Name == d.Field && d.Field != "" {
			fields[i].Error = sentence(fields[i].Label, d.Message)
			*general = "Please correct the field marked below."
			return status(w, err)
		}
	}
	*general = sentence(labels[d.Field], d.Message)
	return status(w, err)
}

// status returns the HTTP status of err, and asks a rate-limited client to wait.
func status(w http.ResponseWriter, err error) int {
	s := server.Status(err)
	if s == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	return s
}

// sentence makes a message readable on its own: the field's label before a message
// that continues it ("is required"), a capital letter and a full stop.
func sentence(label, msg string) string {
	if label != "" {
		msg = label + " " + msg
	}
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") && !strings.HasSuffix(msg, "!") {
		msg += "."
	}
	return msg
}
