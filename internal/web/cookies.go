package web

import (
	"fmt"
	"net/http"
	"time"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/server"
)

// cookieBanner is the server-rendered cookie banner, on every page until the visitor
// chooses: "Accept all" and "Reject all" as two equal buttons, and a link to choose per
// category. Plain forms: it needs no script.
type cookieBanner struct {
	Return string // the page to come back to
	Signal string // the browser's privacy signal, honoured ("" for none)
}

// bannerFor is the banner a page shows: none once the visitor chose, and none on the
// cookie page itself (its form is the banner's, at length).
func bannerFor(r *http.Request, page string) *cookieBanner {
	if page == "cookies" || server.RequestCookieChoice(r).Decided {
		return nil
	}
	return &cookieBanner{Return: r.URL.RequestURI(), Signal: server.BrowserSignal(r)}
}

// cookiesView is the cookie page: every cookie by category, the statistics beacons, and
// the form to change one's choice.
type cookiesView struct {
	Categories []cookieCategoryRow
	Choice     server.CookieChoice // as honoured (a browser signal refuses statistics and marketing)
	Signal     string
	Member     bool
	Saved      bool
	Statistics statisticsNote
	Error      string
}

type cookieCategoryRow struct {
	Key         string
	Name        string
	Description string
	Necessary   bool
	Checked     bool
	Blocked     bool // refused by the browser's signal
	Cookies     []cookieRow
}

type cookieRow struct {
	Name     string
	Purpose  string
	Lifetime string
	SetBy    string
	Script   bool
}

// statisticsNote says how page statistics count on this server.
type statisticsNote struct {
	On         bool
	Cookieless bool
	Sites      []string
}

// cookieCategoryWords name and describe the categories.
var cookieCategoryWords = map[server.CookieCategory][2]string{
	server.Necessary:   {"Strictly necessary", "Needed for the site to work: logging in, security, and remembering your cookie choice. Always on; they need no consent."},
	server.Preferences: {"Preferences", "Remember settings you choose, such as a language or a layout."},
	server.Statistics:  {"Statistics", "Count visits to pages, to learn how the site is used, without identifying you."},
	server.Marketing:   {"Marketing", "Measure advertising or fit it to what you looked at."},
}

// lifetimeOf says a cookie's lifetime in words.
func lifetimeOf(d time.Duration) string {
	switch {
	case d == 0:
		return "Session: deleted when you close the browser"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("Persistent: %d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("Persistent: %d hours", d/time.Hour)
	}
	return fmt.Sprintf("Persistent: %d minutes", d/time.Minute)
}

// memberOf is the account of a request with a live session, or "" for a visitor.
func (p *Pages) memberOf(r *http.Request) (string, error) {
	token := server.Token(r)
	if token == "" {
		return "", nil
	}
	sess, err := p.o.Accounts.Authenticate(r.Context(), token)
	if apperr.KindOf(err) == apperr.Unauthorized {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return sess.AccountID, p.o.GPC(r, sess.AccountID)
}

func (p *Pages) cookiesView(r *http.Request, member string) (cookiesView, error) {
	signal := server.BrowserSignal(r)
	choice := server.RequestCookieChoice(r)
	if !choice.Decided && member != "" {
		// A member's browser without the cookie shows what the ledger holds.
		c, err := p.o.MemberCookieChoice(r.Context(), member)
		if err != nil {
			return cookiesView{}, err
		}
		choice = c
	}
	choice = choice.Honour(signal)
	v := cookiesView{Choice: choice, Signal: signal, Member: member != "", Saved: r.URL.Query().Get("saved") == "1"}
	for _, cat := range server.CookieCategories {
		w := cookieCategoryWords[cat]
		row := cookieCategoryRow{Key: string(cat), Name: w[0], Description: w[1], Necessary: cat == server.Necessary,
			Checked: choice.Allows(cat), Blocked: signal != "" && (cat == server.Statistics || cat == server.Marketing)}
		for _, c := range server.CookieRegister {
			if c.Category != cat {
				continue
			}
			name := c.Name
			if c.Prefix {
				name += "…"
			}
			row.Cookies = append(row.Cookies, cookieRow{Name: name, Purpose: c.Purpose, Lifetime: lifetimeOf(c.Lifetime), SetBy: c.SetBy, Script: c.Script})
		}
		v.Categories = append(v.Categories, row)
	}
	if a := p.o.Analytics; a != nil {
		v.Statistics = statisticsNote{On: true, Cookieless: a.Cookieless(), Sites: a.Sites()}
	}
	return v, nil
}

func (p *Pages) cookies(w http.ResponseWriter, r *http.Request) {
	member, err := p.memberOf(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v, err := p.cookiesView(r, member)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "cookies", "Cookies", member != "", v)
}

// saveCookies records a choice from the banner (choice=accept or reject, from=banner)
// or from the cookie page (the same two, or choice=save with a box per category), and
// goes back to the page it came from.
func (p *Pages) saveCookies(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	var c server.CookieChoice
	switch r.PostFormValue("choice") {
	case "accept":
		c = server.AcceptAll
	case "reject":
		c = server.RejectAll
	case "save":
		c = server.RejectAll
		for _, cat := range server.CookieCategories[1:] {
			_, on := r.PostForm[string(cat)]
			c = c.With(cat, on)
		}
	default:
		p.fail(w, r, apperr.Field("choice", "invalid", "must be accept, reject or save"))
		return
	}
	src := consent.SourceCookiePage
	if r.PostFormValue("from") == "banner" {
		src = consent.SourceCookieBanner
	}
	member, err := p.memberOf(r)
	if err == nil {
		_, err = p.o.SaveCookieChoice(w, r, member, c, src)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, returnTo(r.PostFormValue("return")))
}

// returnTo is where a choice made in the banner goes back to: a path of this site
// (safeNext: no other host however written, no control character or backslash),
// else the cookie page with its confirmation.
func returnTo(path string) string {
	if next := safeNext(path); next != "" {
		return next
	}
	return "/privacy/cookies?saved=1"
}
