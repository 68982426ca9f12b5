package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/access"
	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

// staffSession is the session of the staff page being served (p.member puts it in the
// request's context).
func staffSession(r *http.Request) account.Session {
	sess, _ := r.Context().Value(sessionKey{}).(account.Session)
	return sess
}

func (p *Pages) registerAccess(mux server.Router) {
	mux.HandleFunc("GET /account/access", p.member(p.myAccess))
	mux.HandleFunc("POST /account/access/{id}/decision", p.member(p.decideMyGrant))
	mux.HandleFunc("POST /account/access/{id}/revoke", p.member(p.revokeMyGrant))
	mux.HandleFunc("GET /staff/members", p.staff(p.findMember, server.MemberViewRoles...))
	mux.HandleFunc("GET /staff/members/{id}", p.staff(p.staffMember, server.MemberViewRoles...))
	mux.HandleFunc("GET /staff/members/{id}/files/{file}", p.staff(p.staffMemberFile, server.MemberViewRoles...))
	mux.HandleFunc("GET /staff/grants", p.staff(p.staffGrants, server.GrantRoles...))
	mux.HandleFunc("POST /staff/grants", p.staff(p.requestGrant, access.RoleSupport))
	mux.HandleFunc("POST /staff/grants/{id}/decision", p.staff(p.decideGrant, access.RoleDPO))
	mux.HandleFunc("POST /staff/grants/{id}/revoke", p.staff(p.revokeGrant, server.GrantRoles...))
}

var grantStateNames = map[string]string{access.Pending: "waiting for approval", access.Active: "active", access.Refused: "refused",
	access.Revoked: "revoked", access.Expired: "expired"}

var scopeNames = map[string]string{access.ScopeProfile: "your profile", access.ScopeConsents: "your privacy choices",
	access.ScopeRequests: "your privacy requests", access.ScopeFiles: "your files (including downloads)"}

// grantRow is a grant as pages show it.
type grantRow struct {
	ID        string
	Member    string // staff pages only
	Staff     string
	Scopes    string
	Reason    string
	Hours     int
	State     string
	Pending   bool
	Live      bool // pending or active: revocable
	Requested time.Time
	Expires   time.Time
}

func (p *Pages) grantRows(list []access.Grant, staff bool) []grantRow {
	now := p.o.Now()
	out := make([]grantRow, 0, len(list))
	for _, g := range list {
		st := g.State(now)
		row := grantRow{ID: g.ID, Staff: "Support: " + g.StaffName, Scopes: strings.Join(g.Scopes, ", "), Reason: g.Reason,
			Hours: int(g.Duration / time.Hour), State: grantStateNames[st], Pending: st == access.Pending,
			Live: st == access.Pending || st == access.Active, Requested: g.RequestedAt, Expires: g.ExpiresAt}
		if staff {
			row.Member = g.SubjectID
		} else {
			var words []string
			for _, sc := range g.Scopes {
				words = append(words, scopeNames[sc])
			}
			row.Scopes = strings.Join(words, ", ")
		}
		out = append(out, row)
	}
	return out
}

// myAccessView is the member's "who accessed my data".
type myAccessView struct {
	Notice         string
	MemberApproves bool
	Pending        []grantRow
	Grants         []grantRow
	Reads          []readRow
}

type readRow struct {
	At   time.Time
	Who  string
	What string
	Why  string
}

var roleNames = map[string]string{access.RoleAdmin: "Administrator", access.RoleDPO: "Data protection officer",
	access.RoleSupport: "Support", "marketing": "Marketing"}

func (p *Pages) myAccess(w http.ResponseWriter, r *http.Request, sess account.Session) {
	reads, err := p.o.Access.Reads(r.Context(), sess.AccountID, 200)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	grants, err := p.o.Access.OfMember(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := myAccessView{MemberApproves: p.o.Access.MemberApproves(),
		Notice: map[string]string{"approved": "You approved the access. You can revoke it at any time below.",
			"refused": "You refused the access.", "revoked": "The access is revoked."}[r.URL.Query().Get("done")]}
	for _, g := range p.grantRows(grants, false) {
		if g.Pending {
			v.Pending = append(v.Pending, g)
		} else {
			v.Grants = append(v.Grants, g)
		}
	}
	for _, rd := range reads {
		role := roleNames[rd.Role]
		if role == "" {
			role = rd.Role
		}
		v.Reads = append(v.Reads, readRow{At: rd.At, Who: role + ": " + rd.Name, What: rd.What, Why: rd.Why})
	}
	p.render(w, r, http.StatusOK, "access", "Staff access to your data", true, v)
}

func (p *Pages) decideMyGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	approve, err := grantDecision(r.PostFormValue("decision"))
	if err == nil {
		_, err = p.o.Access.Decide(r.Context(), access.Decider{MemberID: sess.AccountID}, r.PathValue("id"), approve)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	done := "refused"
	if approve {
		done = "approved"
	}
	redirect(w, r, "/account/access?done="+done)
}

func grantDecision(s string) (bool, error) {
	switch s {
	case "approve":
		return true, nil
	case "refuse":
		return false, nil
	}
	return false, apperr.Field("decision", "required", "is required: approve or refuse")
}

func (p *Pages) revokeMyGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	if _, err := p.o.Access.Revoke(r.Context(), access.Viewer{ID: sess.AccountID, IP: p.o.ClientIP(r)}, r.PathValue("id"), false); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/account/access?done=revoked")
}

// findMemberView is the form that finds a member by email or id.
type findMemberView struct {
	Fields []field
	Error  string
}

func (p *Pages) findMember(w http.ResponseWriter, r *http.Request, _ account.Session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	v := findMemberView{Fields: []field{{Name: "q", Label: "Member", Need: "required", Type: "text", Value: q,
		Hint: "The member's email address or account id."}}}
	status := http.StatusOK
	if q != "" {
		subj, err := p.o.Accounts.Lookup(r.Context(), q)
		if err == nil {
			redirect(w, r, "/staff/members/"+url.PathEscape(subj.ID))
			return
		}
		if apperr.KindOf(err) != apperr.NotFound {
			p.fail(w, r, err)
			return
		}
		status = http.StatusNotFound
		v.Fields[0].Error, v.Error = "No member has that email address or id.", "Please correct the field marked below."
	}
	p.render(w, r, status, "staff-members", "Find a member", true, v)
}

// staffMemberView is the staff member-view.
type staffMemberView struct {
	server.MemberData
	Scopes   []string
	Purposes []staffChoiceRow
	Requests []requestRow
	Files    []fileRow
}

type staffChoiceRow struct {
	Purpose  string
	Decision string
	At       time.Time
}

func (p *Pages) staffMember(w http.ResponseWriter, r *http.Request, sess account.Session) {
	m, err := p.o.StaffMember(r, sess, r.PathValue("id"))
	if apperr.KindOf(err) == apperr.Forbidden {
		p.render(w, r, http.StatusForbidden, "error", "No access grant", true, errorView{Heading: "No access grant",
			Message: sentence("", server.Public(p.o.Log, r, err).Message) + " Ask for one on the access grants page."})
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := staffMemberView{MemberData: m, Scopes: m.Shown}
	for _, c := range m.Choices {
		d := string(c.Decision)
		if d == "" {
			d = "no decision"
		}
		v.Purposes = append(v.Purposes, staffChoiceRow{Purpose: c.Purpose.Name, Decision: d, At: c.At})
	}
	for _, req := range m.Requests {
		v.Requests = append(v.Requests, p.requestRow(req))
	}
	for _, f := range m.Files {
		v.Files = append(v.Files, fileRow{ID: f.ID, Name: f.Name, Size: sizeOf(f.Size), SHA256: f.SHA256, CreatedAt: f.CreatedAt})
	}
	p.render(w, r, http.StatusOK, "staff-member", "Member", true, v)
}

func (p *Pages) staffMemberFile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.ServeStaffFile(w, r, sess, r.PathValue("id"), r.PathValue("file"), p.fail)
}

// staffGrantsView is the grants page: support asks and sees theirs; a DPO decides.
type staffGrantsView struct {
	Notice   string
	Error    string
	Support  bool
	DPO      bool
	Fields   []field // member, reason, hours
	Scopes   []scopeBox
	ScopeErr string
	Mine     []grantRow
	Pending  []grantRow
}

type scopeBox struct {
	Name    string
	Checked bool
}

func grantFields(member, reason, hours string) []field {
	if hours == "" {
		hours = "24"
	}
	return []field{
		{Name: "member", Label: "Member", Need: "required", Type: "text", Value: member, Hint: "The member's email address or account id."},
		{Name: "reason", Label: "Reason or ticket", Need: "required", Type: "textarea", Rows: 2, Value: reason,
			Hint: "Why you need to see the data. The member is shown it."},
		{Name: "hours", Label: "Hours", Need: "required", Type: "number", Value: hours,
			Hint: "How long the access lasts once approved: 1 to 720 hours."},
	}
}

func (p *Pages) staffGrants(w http.ResponseWriter, r *http.Request, sess account.Session) {
	notice := map[string]string{"requested": "Access requested. It works once approved.", "approved": "Access approved.",
		"refused": "Access refused.", "revoked": "Access revoked."}[r.URL.Query().Get("done")]
	p.renderGrants(w, r, sess, http.StatusOK, staffGrantsView{Notice: notice, Fields: grantFields("", "", "")}, nil)
}

func (p *Pages) renderGrants(w http.ResponseWriter, r *http.Request, sess account.Session, status int, v staffGrantsView, checked []string) {
	ctx := r.Context()
	var err error
	if v.Support, err = p.o.Staff.HasAny(ctx, sess.AccountID, access.RoleSupport); err != nil {
		p.fail(w, r, err)
		return
	}
	if v.DPO, err = p.o.Staff.HasAny(ctx, sess.AccountID, access.RoleDPO); err != nil {
		p.fail(w, r, err)
		return
	}
	v.DPO = v.DPO && p.o.Access.DPOApproves()
	for _, sc := range access.Scopes {
		v.Scopes = append(v.Scopes, scopeBox{Name: sc, Checked: slices.Contains(checked, sc)})
	}
	mine, err := p.o.Access.OfStaff(ctx, sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Mine = p.grantRows(mine, true)
	if v.DPO {
		pending, err := p.o.Access.Pending(ctx)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		v.Pending = p.grantRows(pending, true)
	}
	p.render(w, r, status, "staff-grants", "Access grants", true, v)
}

func (p *Pages) requestGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	member, reason, hours := r.PostFormValue("member"), r.PostFormValue("reason"), r.PostFormValue("hours")
	scopes := r.PostForm["scopes"]
	n, err := strconv.Atoi(strings.TrimSpace(hours))
	if err != nil {
		err = apperr.Field("hours", "out_of_range", "must be a whole number from 1 to 720")
	}
	if err == nil {
		var v access.Viewer
		if v, err = p.o.Viewer(r, sess); err == nil {
			_, err = p.o.Access.Request(r.Context(), v, access.Ask{Subject: member, Scopes: scopes, Reason: reason, Duration: time.Duration(n) * time.Hour})
		}
	}
	if err != nil {
		v := staffGrantsView{Fields: grantFields(member, reason, hours)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		if e, ok := apperr.As(err); ok && e.Field == "scopes" {
			v.ScopeErr, v.Error = sentence("What", e.Message), "Please correct the field marked below."
		}
		p.renderGrants(w, r, sess, st, v, scopes)
		return
	}
	redirect(w, r, "/staff/grants?done=requested")
}

func (p *Pages) decideGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	approve, err := grantDecision(r.PostFormValue("decision"))
	if err == nil {
		var v access.Viewer
		if v, err = p.o.Viewer(r, sess); err == nil {
			_, err = p.o.Access.Decide(r.Context(), access.Decider{DPO: v}, r.PathValue("id"), approve)
		}
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	done := "refused"
	if approve {
		done = "approved"
	}
	redirect(w, r, "/staff/grants?done="+done)
}

func (p *Pages) revokeGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	dpo, err := p.o.Staff.HasAny(r.Context(), sess.AccountID, access.RoleDPO)
	if err == nil {
		_, err = p.o.Access.Revoke(r.Context(), access.Viewer{ID: sess.AccountID, IP: p.o.ClientIP(r)}, r.PathValue("id"), dpo)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/grants?done=revoked")
}
