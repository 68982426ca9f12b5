package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"steward/internal/analytics"
	"steward/internal/consent"
)

// CookieCategory is a category of cookies, as the banner and the cookie page name
// them. Only strictly necessary cookies are set before a visitor chooses.
type CookieCategory string

// The categories.
const (
	Necessary   CookieCategory = "necessary"
	Preferences CookieCategory = "preferences"
	Statistics  CookieCategory = "statistics"
	Marketing   CookieCategory = "marketing"
)

// CookieCategories are the categories in the order the banner and the page show them.
var CookieCategories = []CookieCategory{Necessary, Preferences, Statistics, Marketing}

// Cookie is one cookie of the register: every cookie Steward sets is one of these (a
// test drives the flows that set cookies and fails on any other, or on a lifetime other
// than the one declared here).
type Cookie struct {
	// Name is the cookie's name; with Prefix, the start of its name (one cookie per
	// account, named by a blind index of the address).
	Name     string
	Prefix   bool
	Purpose  string
	Category CookieCategory
	// Lifetime is how long the cookie lives; 0: a session cookie, gone when the
	// browser closes.
	Lifetime time.Duration
	// SetBy says who sets it and where.
	SetBy string
	// Script: page scripts may read it (not HttpOnly).
	Script bool
}

// The names of the cookies Steward sets besides the session's and the known devices'.
const (
	// ChoiceCookie records a visitor's cookie choice, and only that.
	ChoiceCookie = "steward_cookies"
	// SentCookie carries the address a form was sent for to the "check your email"
	// page the form redirects to.
	SentCookie = "steward_sent"
)

// ChoiceLifetime is how long a cookie choice is kept before the banner asks again.
const ChoiceLifetime = 180 * 24 * time.Hour

// ChoiceVersion is the version of the choice cookie's format and of the categories it
// answers: a choice of another version is no choice, and the banner asks again.
const ChoiceVersion = "1"

// CookieRegister is every cookie Steward sets, on its own site and (through the banner
// script) on the operator's other sites.
var CookieRegister = []Cookie{
	{Name: CookieName, Category: Necessary, SetBy: "Steward, on this site, when you log in",
		Purpose: "Keeps you logged in. It holds a random token; the server ends the session when you log out or after its lifetime."},
	{Name: deviceCookiePrefix, Prefix: true, Category: Necessary, Lifetime: knownDeviceFor,
		SetBy:   "Steward, on this site, when you log in",
		Purpose: "Remembers that this browser logged in to the account before, so that a flood of wrong passwords from elsewhere does not lock you out. Signed; it holds no address."},
	{Name: SentCookie, Category: Necessary, Lifetime: 10 * time.Minute,
		SetBy:   "Steward, on this site, when you ask for a confirmation email",
		Purpose: "Shows the address the email was sent to on the next page, without putting the address in the page's link. Only that page receives it."},
	{Name: ChoiceCookie, Category: Necessary, Lifetime: ChoiceLifetime, Script: true,
		SetBy:   "Steward, on this site, and Steward's banner script on each site that includes it",
		Purpose: "Records your cookie choice, and nothing else (for example v1.p0.s1.m0: version 1, preferences no, statistics yes, marketing no), so that the banner is not shown again."},
}

// CookieOf returns the register's entry for a cookie name.
func CookieOf(name string) (Cookie, bool) {
	for _, c := range CookieRegister {
		if name == c.Name || c.Prefix && strings.HasPrefix(name, c.Name) {
			return c, true
		}
	}
	return Cookie{}, false
}

// CookieChoice is a visitor's choice of the optional categories.
type CookieChoice struct {
	Decided                            bool // false: no choice yet, every optional category is off
	Preferences, Statistics, Marketing bool
}

// AcceptAll and RejectAll are the banner's two buttons.
var (
	AcceptAll = CookieChoice{Decided: true, Preferences: true, Statistics: true, Marketing: true}
	RejectAll = CookieChoice{Decided: true}
)

// Allows reports whether the choice allows a category; strictly necessary always.
func (c CookieChoice) Allows(cat CookieCategory) bool {
	switch cat {
	case Necessary:
		return true
	case Preferences:
		return c.Preferences
	case Statistics:
		return c.Statistics
	case Marketing:
		return c.Marketing
	}
	return false
}

// With returns the choice with a category set (strictly necessary cannot be).
func (c CookieChoice) With(cat CookieCategory, on bool) CookieChoice {
	switch cat {
	case Preferences:
		c.Preferences = on
	case Statistics:
		c.Statistics = on
	case Marketing:
		c.Marketing = on
	}
	return c
}

// Value is the choice cookie's value: v1.p0.s1.m0.
func (c CookieChoice) Value() string {
	b := func(on bool) string {
		if on {
			return "1"
		}
		return "0"
	}
	return "v" + ChoiceVersion + ".p" + b(c.Preferences) + ".s" + b(c.Statistics) + ".m" + b(c.Marketing)
}

// ParseCookieChoice reads a choice cookie's value; anything but a value of this
// version is no choice.
func ParseCookieChoice(v string) CookieChoice {
	parts := strings.Split(v, ".")
	if len(parts) != 4 || parts[0] != "v"+ChoiceVersion {
		return CookieChoice{}
	}
	c := CookieChoice{Decided: true}
	for i, f := range []*bool{&c.Preferences, &c.Statistics, &c.Marketing} {
		p := parts[i+1]
		if len(p) != 2 || p[0] != "psm"[i] || (p[1] != '0' && p[1] != '1') {
			return CookieChoice{}
		}
		*f = p[1] == '1'
	}
	return c
}

// BrowserSignal is the privacy signal a request carries, in words ("" for none):
// Sec-GPC: 1 (Global Privacy Control) or DNT: 1 (Do Not Track). Either refuses
// statistics and marketing whatever a choice says.
func BrowserSignal(r *http.Request) string {
	switch {
	case r.Header.Get("Sec-GPC") == "1":
		return "Global Privacy Control (Sec-GPC: 1)"
	case r.Header.Get("DNT") == "1":
		return "Do Not Track (DNT: 1)"
	}
	return ""
}

// Honour returns the choice as a browser signal leaves it: statistics and marketing
// refused under one (signal is BrowserSignal's answer).
func (c CookieChoice) Honour(signal string) CookieChoice {
	if signal != "" {
		c.Statistics, c.Marketing = false, false
	}
	return c
}

// RequestCookieChoice is the choice a request's choice cookie records (undecided
// without one), before any browser signal.
func RequestCookieChoice(r *http.Request) CookieChoice {
	c, err := r.Cookie(ChoiceCookie)
	if err != nil {
		return CookieChoice{}
	}
	return ParseCookieChoice(c.Value)
}

// SetChoiceCookie records a choice in the browser: persistent (ChoiceLifetime),
// SameSite=Lax, Secure as the other cookies, readable by the site's scripts (it holds
// only the choice).
func SetChoiceCookie(w http.ResponseWriter, c CookieChoice, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: ChoiceCookie, Value: c.Value(), Path: "/", MaxAge: int(ChoiceLifetime / time.Second),
		Secure: secure, SameSite: http.SameSiteLaxMode})
}

// StatisticsSignals reads what a request says of its visitor's choice about
// statistics: Sec-GPC, DNT, and the choice cookie of Steward's own site (sent with a
// beacon to Steward's own host; a beacon from another site cannot carry it, and says
// its site's choice in the event instead).
func StatisticsSignals(r *http.Request) analytics.Signals {
	sig := analytics.Signals{GPC: r.Header.Get("Sec-GPC") == "1", DNT: r.Header.Get("DNT") == "1"}
	if c := RequestCookieChoice(r); c.Decided {
		sig.Choice = analytics.Refused
		if c.Statistics {
			sig.Choice = analytics.Granted
		}
	}
	return sig
}

// SaveCookieChoice records a cookie choice: in the choice cookie, and, for a member
// (accountID not ""), in the consent ledger too, under the purposes that stand for the
// optional categories (consent.Purpose.Cookies), with src and the request as evidence.
// A browser signal (Sec-GPC, DNT) refuses statistics and marketing whatever was
// chosen: the choice recorded is the one honoured, and the evidence names the signal.
// It returns the choice recorded.
func (s *Services) SaveCookieChoice(w http.ResponseWriter, r *http.Request, accountID string, c CookieChoice, src consent.Source) (CookieChoice, error) {
	signal := BrowserSignal(r)
	c = c.Honour(signal)
	c.Decided = true
	if accountID != "" {
		decisions := map[string]consent.Decision{}
		for _, cat := range CookieCategories {
			p, ok := s.Consent.Register().CookiePurpose(string(cat))
			if !ok {
				continue
			}
			decisions[p.Key] = consent.Withdrawn
			if c.Allows(cat) {
				decisions[p.Key] = consent.Granted
			}
		}
		ev := s.Evidence(r)
		if signal != "" {
			ev["signal"] = signal
		}
		if err := s.Consent.Apply(r.Context(), accountID, decisions, nil, src, ev); err != nil {
			return c, err
		}
	}
	SetChoiceCookie(w, c, s.CookieSecure)
	return c, nil
}

// MemberCookieChoice is a member's cookie choice as the ledger records it: decided
// when the ledger holds a decision for every category the register has a purpose for.
func (s *Services) MemberCookieChoice(ctx context.Context, accountID string) (CookieChoice, error) {
	choices, _, err := s.Consent.Choices(ctx, accountID)
	if err != nil {
		return CookieChoice{}, err
	}
	c := CookieChoice{Decided: true}
	found := false
	for _, ch := range choices {
		cat := CookieCategory(ch.Purpose.Cookies)
		if cat == "" {
			continue
		}
		found = true
		if ch.Decision == "" {
			c.Decided = false
		}
		c = c.With(cat, ch.Verdict.Allowed)
	}
	if !found {
		c.Decided = false
	}
	return c, nil
}
