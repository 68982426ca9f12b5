package web

import (
	"net/http"
)

// guardianPurposeView is a guardian's link about a child's choice: what the child
// chose, or what became of the answer.
type guardianPurposeView struct {
	Token              string
	ChildName          string
	ChildEmail         string
	PurposeName        string
	PurposeDescription string
	Done               string // "agreed" or "declined" once answered
	Error              string
}

const guardianPurposeTitle = "Your agreement to a child’s choice"

// guardianPurposeForm shows what the child chose, without using the link.
func (p *Pages) guardianPurposeForm(w http.ResponseWriter, r *http.Request) {
	if done := r.URL.Query().Get("done"); done == "agreed" || done == "declined" {
		p.render(w, r, http.StatusOK, "guardian-purpose", "Thank you", p.loggedIn(r), guardianPurposeView{Done: done})
		return
	}
	token := r.URL.Query().Get("token")
	g, err := p.o.Accounts.GuardianPurposeFor(r.Context(), token)
	if err != nil {
		v := guardianPurposeView{}
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "guardian-purpose", guardianPurposeTitle, p.loggedIn(r), v)
		return
	}
	pu, _ := p.o.Consent.Register().Purpose(g.Purpose)
	p.render(w, r, http.StatusOK, "guardian-purpose", guardianPurposeTitle, p.loggedIn(r), guardianPurposeView{Token: token,
		ChildName: g.ChildName, ChildEmail: g.ChildEmail, PurposeName: pu.Name, PurposeDescription: pu.Description})
}

// guardianPurposeDecide records the guardian's answer.
func (p *Pages) guardianPurposeDecide(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	decision := r.PostFormValue("decision")
	if decision != "agree" && decision != "decline" {
		p.render(w, r, http.StatusBadRequest, "guardian-purpose", guardianPurposeTitle, p.loggedIn(r),
			guardianPurposeView{Error: "Choose Agree or Decline."})
		return
	}
	if _, err := p.o.DecideGuardianPurpose(r, r.PostFormValue("token"), decision == "agree"); err != nil {
		v := guardianPurposeView{}
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "guardian-purpose", guardianPurposeTitle, p.loggedIn(r), v)
		return
	}
	if decision == "agree" {
		redirect(w, r, "/guardian/purpose?done=agreed")
		return
	}
	redirect(w, r, "/guardian/purpose?done=declined")
}
