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
}

func deleteFields() []field {
	return []field{{Name: "password", Label: labels["password"], Type: "password", Need: "required", Autocomplete: "current-password",
		Hint: "To confirm that it is you."}}
}

func (p *Pages) deleteForm(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.render(w, r, http.StatusOK, "delete", "Delete your account", true, deleteView{Fields: deleteFields()})
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
		p.render(w, r, st, "delete", "Delete your account", true, v)
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
// it: it holds no personal data, and the member no longer has a session to ask with.
type erasureView struct {
	ID          string
	Done        bool
	StepsDone   []string
	CreatedAt   time.Time
	CompletedAt time.Time
}

// stepNames say in words what each holder of the data map erased.
var stepNames = map[string]string{
	"account":           "Your account, profile, sessions and one-time links",
	"audit_log":         "The security log of your account",
	"mail_outbox":       "Mails to you still waiting to be sent",
	"files":             "Your files and their access log",
	"vault":             "The key your files were encrypted with, so that no copy of them can be read again",
	"erasure":           "Erasure bookkeeping (only keyed hashes remain, to keep you erased if a backup is restored)",
	"staff":             "Any staff roles your account held",
	"consent":           "Your consent decisions and privacy choices",
	"newsletter":        "Your newsletter subscription and the mailings sent to you",
	"processor_notices": "Notices to the companies that process data for us (such as our mail provider), telling them to erase you too",
	"requests":          "Your privacy requests and their history",
}

func (p *Pages) erasure(w http.ResponseWriter, r *http.Request) {
	req, err := p.o.Rights.Request(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := erasureView{ID: req.ID, Done: req.State == rights.StateDone, CreatedAt: req.CreatedAt, CompletedAt: req.CompletedAt}
	for _, s := range req.StepsDone {
		words := stepNames[s]
		if words == "" {
			words = "Other records held about you" // never an internal name
		}
		v.StepsDone = append(v.StepsDone, words)
	}
	title := "Your account is being deleted"
	if v.Done {
		title = "Your account is deleted"
	}
	p.render(w, r, http.StatusOK, "erasure", title, p.loggedIn(r), v)
}
