package web

import (
	"net/http"
	"net/url"

	"steward/internal/account"
	"steward/internal/governance"
	"steward/internal/server"
)

// The administrator's staff management (/staff/people) and the auditor's reading of
// the audit log (/staff/audit).

const (
	adminRole   = "admin"
	auditorRole = "auditor"
)

// peopleView lists the staff with their roles and second factor, and the grant form.
type peopleView struct {
	People []server.StaffPerson
	Roles  []string
	Fields []field
	Error  string
	Done   string // what was just changed
}

// peopleNotices are what a redirect back to the list may say was done.
var peopleNotices = map[string]string{
	"granted": "The role is granted.",
	"revoked": "The role is revoked.",
	"reset":   "The second factor is reset: the person sets up a new one at their next staff page.",
}

func roleGrantFields(email, role string) []field {
	f := field{Name: "role", Label: labels["role"], Type: "select", Need: "required", Prompt: "Choose a role"}
	for _, r := range governance.Roles {
		f.Options = append(f.Options, option{Value: r, Name: r, Selected: r == role})
	}
	return []field{
		{Name: "email", Label: labels["email"], Type: "email", Need: "required", Value: email, Autocomplete: "off",
			Hint: "The address of the person's account here; they register first."},
		f,
	}
}

func (p *Pages) people(w http.ResponseWriter, r *http.Request, _ account.Session) {
	p.renderPeople(w, r, http.StatusOK, peopleView{Fields: roleGrantFields("", ""), Done: peopleNotices[r.URL.Query().Get("done")]})
}

func (p *Pages) renderPeople(w http.ResponseWriter, r *http.Request, st int, v peopleView) {
	list, err := p.o.StaffPeople(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.People, v.Roles = list, governance.Roles
	p.render(w, r, st, "staff-people", "Staff", true, v)
}

func (p *Pages) grantRole(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	email, role := r.PostFormValue("email"), r.PostFormValue("role")
	if _, err := p.o.GrantRole(r, sess, email, role); err != nil {
		v := peopleView{Fields: roleGrantFields(email, role)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.renderPeople(w, r, st, v)
		return
	}
	redirect(w, r, "/staff/people?done=granted")
}

func (p *Pages) revokeRole(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.o.RevokeRole(r, sess, r.PathValue("id"), r.PostFormValue("role")); err != nil {
		v := peopleView{Fields: roleGrantFields("", "")}
		st := p.formError(w, r, nil, &v.Error, err)
		p.renderPeople(w, r, st, v)
		return
	}
	redirect(w, r, "/staff/people?done=revoked")
}

func (p *Pages) resetFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := p.o.ResetStaffSecondFactor(r, sess, r.PathValue("id")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/people?done=reset")
}

// auditView is a page of the audit log with the chain's newest verification.
type auditView struct {
	Entries []governance.Listed
	Check   server.Verification
	Queued  bool // a verification was just asked for
	Nav     pageNav
}

func (p *Pages) auditLog(w http.ResponseWriter, r *http.Request, _ account.Session) {
	pg := pagerFor(r, url.Values{})
	list, total, ver, err := p.o.AuditPage(r.Context(), pg.Offset(), pg.Size)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "staff-audit", "Audit log", true, auditView{Entries: list, Check: ver, Nav: pg.nav(total),
		Queued: r.URL.Query().Get("verify") == "queued"})
}

// verifyAudit asks for a verification of the whole chain now; the page shows it once
// the job has run.
func (p *Pages) verifyAudit(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := p.o.VerifyAudit(r.Context(), sess.AccountID, p.o.ClientIP(r)); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/audit?verify=queued")
}
