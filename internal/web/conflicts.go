package web

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"steward/internal/account"
	"steward/internal/breaches"
	"steward/internal/consent"
	"steward/internal/disclosures"
	"steward/internal/holds"
	"steward/internal/policy"
	"steward/internal/requests"
	"steward/internal/retention"
	"steward/internal/server"
)

// The roles that read the consent conflicts (as the API's list): the DPO, and support,
// who answer members about their choices.
var conflictRoles = []string{"dpo", "support"}

// staffRoles are the roles that reach some staff page, for the header's link.
var staffRoles = append([]string{marketing, auditorRole}, conflictRoles...)

// staffLinkRoles are the roles a staff page needs, by its address, where it is not
// marketing's.
var staffLinkRoles = map[string][]string{"/staff/consent-conflicts": conflictRoles, "/staff/requests": {requests.WarnRole},
	"/staff/holds":             {holds.Role},
	"/staff/processor-notices": {noticeRole},
	"/staff/retention":         {retention.Role},
	"/staff/analytics":         analyticsRoles,
	"/staff/policy":            {policy.Role},
	"/staff/disclosures":       {disclosures.Role}, "/staff/breaches": {breaches.Role},
	"/staff/members": server.MemberViewRoles, "/staff/grants": server.GrantRoles,
	"/staff/audit":  {auditorRole},
	"/staff/people": {adminRole}, "/staff/analytics/campaigns": server.AnalyticsRoles}

// ownLinks keeps the links of the staff sidebar that the member's roles open, so that
// none leads to a refusal. An error keeps the link (the page itself still checks).
func (p *Pages) ownLinks(r *http.Request, links []navLink) []navLink {
	sess, ok := r.Context().Value(sessionKey{}).(account.Session)
	if len(links) == 0 || !ok {
		return links
	}
	out := links[:0:0]
	for _, l := range links {
		roles := staffLinkRoles[l.Href]
		if roles == nil {
			roles = []string{marketing}
		}
		yes, err := p.o.Staff.HasAny(r.Context(), sess.AccountID, roles...)
		if err != nil {
			p.o.Log.ErrorContext(r.Context(), "staff role", "err", err)
			yes = true // the page checks again
		}
		if yes {
			out = append(out, l)
		}
	}
	return out
}

// staffHome leads a member of staff to the first staff page their roles open: the
// campaigns for marketing (and admin), the privacy requests for the dpo, the consent
// conflicts for support, the audit log for the auditor.
func (p *Pages) staffHome(w http.ResponseWriter, r *http.Request, sess account.Session) {
	ok, err := p.o.Staff.HasAny(r.Context(), sess.AccountID, marketing)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if ok {
		redirect(w, r, "/staff/campaigns")
		return
	}
	if ok, err = p.o.Staff.HasAny(r.Context(), sess.AccountID, requests.WarnRole); err != nil {
		p.fail(w, r, err)
		return
	}
	if ok {
		redirect(w, r, "/staff/requests")
		return
	}
	if ok, err = p.o.Staff.HasAny(r.Context(), sess.AccountID, conflictRoles...); err != nil {
		p.fail(w, r, err)
		return
	}
	if ok {
		redirect(w, r, "/staff/consent-conflicts")
		return
	}
	redirect(w, r, "/staff/audit") // the auditor's only page
}

// conflictsView is a page of the consent conflicts: two sources that disagreed about
// a member's choice within 30 days. It shows the decisions, never their evidence.
type conflictsView struct {
	Purposes  []option // the filter
	Purpose   string   // the purpose shown, "" for all
	Sizes     []option
	Conflicts []conflictRow
	Nav       pageNav
}

// conflictRow is one conflict as the list shows it.
type conflictRow struct {
	At      time.Time
	Subject string // the member's random id
	Purpose string
	Earlier decisionRow
	Later   decisionRow
}

// decisionRow is one side of a conflict, in words.
type decisionRow struct {
	Decision string
	Source   string
	At       time.Time
}

func (p *Pages) conflicts(w http.ResponseWriter, r *http.Request, _ account.Session) {
	reg := p.o.Consent.Register()
	purpose := r.URL.Query().Get("purpose")
	if _, ok := reg.Purpose(purpose); !ok {
		purpose = "" // any: an unknown purpose is no filter
	}
	pg := pagerFor(r, url.Values{"purpose": {purpose}})
	list, total, err := p.o.Consent.ConflictsPage(r.Context(), purpose, pg.Offset(), pg.Size)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	subjects := make([]string, len(list))
	for i, c := range list {
		subjects[i] = c.SubjectID
	}
	if err := p.o.RecordReads(r, staffSession(r), "consent conflicts", "consent conflicts review", subjects...); err != nil {
		p.fail(w, r, err)
		return
	}
	v := conflictsView{Purpose: purpose, Nav: pg.nav(total)}
	for _, pu := range reg.Purposes {
		v.Purposes = append(v.Purposes, option{Value: pu.Key, Name: pu.Name, Selected: pu.Key == purpose})
	}
	for _, s := range pageSizes {
		n := strconv.Itoa(s)
		v.Sizes = append(v.Sizes, option{Value: n, Name: n + " a page", Selected: s == pg.Size})
	}
	for _, c := range list {
		pu, _ := reg.Purpose(c.Purpose)
		name := pu.Name
		if name == "" {
			name = inWords(nil, c.Purpose)
		}
		side := func(e consent.Event) decisionRow {
			return decisionRow{Decision: decisionOf(pu, e.Decision), Source: sourceOf(e.Source), At: e.At}
		}
		v.Conflicts = append(v.Conflicts, conflictRow{At: c.At, Subject: c.SubjectID, Purpose: name, Earlier: side(c.Earlier), Later: side(c.Later)})
	}
	p.render(w, r, http.StatusOK, "conflicts", "Consent conflicts", true, v)
}
