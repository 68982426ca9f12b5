package web

import (
	"net/http"
	"net/url"
	"time"

	"steward/internal/account"
	"steward/internal/rights"
	"steward/internal/server"
)

// deleteView asks for the password before deleting the account.
type deleteView struct {
	Fields []field
	Error  string
	Holds  []holdRow // what legal holds in force would keep (P-ERASE-2)
}

func deleteFields() []field {
	return []field{{Name: "password", Label: labels["password"], Type: "password", Need: "required", Autocomplete: "current-password",
		Hint: "To confirm that it is you."}}
}

func (p *Pages) deleteForm(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.renderDelete(w, r, sess, http.StatusOK, deleteView{Fields: deleteFields()})
}

// renderDelete shows the form with what legal holds would keep, before anything is erased.
func (p *Pages) renderDelete(w http.ResponseWriter, r *http.Request, sess account.Session, status int, v deleteView) {
	held, err := p.o.Holds.InForce(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Holds = p.holdRows(held, false)
	p.render(w, r, status, "delete", "Delete your account", true, v)
}

// deleteAccount checks the password, then starts the erasure: the account stops
// working at once and a background job erases it through every holder of data.
func (p *Pages) deleteAccount(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	err := p.o.Limits.PasswordCheck(r.Context(), sess.AccountID)
	if err == nil {
		err = p.o.Accounts.CheckPassword(r.Context(), sess.AccountID, "password", r.PostFormValue("password"))
	}
	if err != nil {
		v := deleteView{Fields: deleteFields()}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.renderDelete(w, r, sess, st, v)
		return
	}
	subj, err := p.o.Accounts.Subject(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	id, err := p.o.Rights.RequestErasure(r.Context(), subj, "member")
	if err != nil {
		p.fail(w, r, err)
		return
	}
	server.ClearSessionCookie(w, p.o.CookieSecure)
	redirect(w, r, "/erasures/"+url.PathEscape(id))
}

// erasureView is the state of an erasure request. Anyone with its random id may see
// it: it holds no personal data but the reasons of the legal holds that keep some (the
// member is told them), and the member no longer has a session to ask with.
type erasureView struct {
	ID          string
	Done        bool
	Kept        []holdRow // while holding: what the holds keep, why, until when
	StepsDone   []string
	CreatedAt   time.Time
	CompletedAt time.Time
}

// stepNames say in words what each holder of the data map erased.
var stepNames = map[string]string{
	"account":           "Your account, profile, sessions and one-time links",
	"audit_log":         "The security log of your account (its entries stay in the tamper-evident log, unreadable once your key is destroyed)",
	"mail_outbox":       "Mails to you still waiting to be sent",
	"files":             "Your files and their access log",
	"vault":             "The key your files were encrypted with, so that no copy of them can be read again",
	"erasure":           "Erasure bookkeeping (only keyed hashes remain, to keep you erased if a backup is restored)",
	"staff":             "Any staff roles your account held",
	"consent":           "Your consent decisions and privacy choices",
	"newsletter":        "Your newsletter subscription and the mailings sent to you",
	"processor_notices": "Notices to the companies that process data for us (such as our mail provider), telling them to erase you too",
	"requests":          "Your privacy requests and their history",
	"legal_holds":       "The legal holds on your data",
	"policy":            "Which versions of the privacy policy you accepted",
	"disclosures":       "Your links to disclosures of your data to authorities, and what was disclosed",
	"breaches":          "Your links to personal data breaches, and when you were told",
	"processors":        "Your account id in the history of the register of processors, if you changed it as staff",
	"staff_access":      "The record of our staff's access to your data, and the access grants you were asked for",
}

func (p *Pages) erasure(w http.ResponseWriter, r *http.Request) {
	req, err := p.o.Rights.Request(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := erasureView{ID: req.ID, Done: req.State == rights.StateDone, CreatedAt: req.CreatedAt, CompletedAt: req.CompletedAt}
	kept, err := p.o.ErasureHolds(r.Context(), req)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Kept = p.holdRows(kept, false)
	for _, s := range req.StepsDone {
		words := stepNames[s]
		if words == "" {
			words = "Other records held about you" // never an internal name
		}
		v.StepsDone = append(v.StepsDone, words)
	}
	title := "Your account is being deleted"
	switch {
	case v.Done:
		title = "Your account is deleted"
	case len(v.Kept) > 0:
		title = "Your account is deleted, except what a legal hold keeps"
	}
	p.render(w, r, http.StatusOK, "erasure", title, p.loggedIn(r), v)
}
