package web

import (
	"net/http"
	"net/url"

	"steward/internal/account"
)

// childrenView lists the children whose registration the member agreed to as their
// parent or guardian.
type childrenView struct {
	Children []account.Profile
}

func (p *Pages) children(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := p.o.Accounts.Children(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "children", "Your children", true, childrenView{Children: list})
}

// childView is one child, as their guardian sees and manages them.
type childView struct {
	ID         string
	Name       string
	Email      string
	Birthdate  string
	Country    string
	Choices    []choiceRow // the purposes that take consent
	Restricted bool
	Fields     []field // the guardian's password, to erase
	Error      string
	Saved      bool
}

func (p *Pages) readChild(r *http.Request, guardianID, childID string) (childView, error) {
	c, err := p.o.Child(r, guardianID, childID)
	if err != nil {
		return childView{}, err
	}
	v := childView{ID: c.Profile.ID, Name: c.Profile.Name, Email: c.Profile.Email, Birthdate: c.Profile.Birthdate,
		Country: p.countryName(c.Profile.Country), Restricted: c.Flags.Restricted, Fields: deleteFields()}
	v.Fields[0].Hint = "Your own password, to confirm that it is you."
	for _, ch := range c.Choices {
		if !ch.Purpose.NeedsConsent() {
			continue
		}
		v.Choices = append(v.Choices, choiceRow{Key: ch.Purpose.Key, Name: ch.Purpose.Name, Description: ch.Purpose.Description,
			Consent: true, Checked: ch.Decision == "granted", Decided: ch.Decision != "", Allowed: ch.Verdict.Allowed,
			Reason: reasonOf(ch.Verdict.Reason)})
	}
	return v, nil
}

func (p *Pages) child(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v, err := p.readChild(r, sess.AccountID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Saved = r.URL.Query().Get("saved") == "1"
	p.render(w, r, http.StatusOK, "child", v.title(), true, v)
}

func (v childView) title() string {
	if v.Name != "" {
		return v.Name
	}
	return "Your child’s account"
}

// saveChild saves the guardian's choices for the child: each purpose as ticked, and
// the restriction that stops the collection of the child's data.
func (p *Pages) saveChild(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	v, err := p.readChild(r, sess.AccountID, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	choices := map[string]bool{}
	for _, c := range v.Choices {
		_, choices[c.Key] = r.PostForm["consent_"+c.Key]
	}
	_, restricted := r.PostForm["restricted"]
	if err := p.o.SaveChildChoices(r, sess.AccountID, id, choices, &restricted); err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "child", v.title(), true, v)
		return
	}
	redirect(w, r, "/account/children/"+url.PathEscape(id)+"?saved=1")
}

func (p *Pages) childExport(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.WriteChildExport(w, r, sess.AccountID, r.PathValue("id"), p.fail)
}

// deleteChild erases the child's account once the guardian gave their password.
func (p *Pages) deleteChild(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	erasure, err := p.o.EraseChild(r, sess.AccountID, id, r.PostFormValue("password"))
	if err != nil {
		v, verr := p.readChild(r, sess.AccountID, id)
		if verr != nil {
			p.fail(w, r, verr)
			return
		}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "child", v.title(), true, v)
		return
	}
	redirect(w, r, "/erasures/"+url.PathEscape(erasure))
}
