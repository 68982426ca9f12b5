package web

import (
	"net/http"
	"net/url"
	"strings"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

// The second factor's pages: the step after the password for a staff account
// (/login/second-factor), setting one up (/account/second-factor), the recovery codes,
// and the "confirm it is you" step before a sensitive action (sensitive).

// secondFactorStep is where a staff session that has not passed the second factor is
// sent, back to next afterwards: the code step if the account has one, else the
// set-up page.
func (p *Pages) secondFactorStep(w http.ResponseWriter, r *http.Request, sess account.Session, next string) {
	state, err := p.o.SecondFactorState(r.Context(), sess)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	q := ""
	if next = safeNext(next); next != "" {
		q = "?next=" + url.QueryEscape(next)
	}
	if state == server.FactorEnroll {
		redirect(w, r, "/account/second-factor"+q)
		return
	}
	redirect(w, r, "/login/second-factor"+q)
}

// factorView is the code step after the password.
type factorView struct {
	Fields []field
	Error  string
	Next   string
}

func factorFields() []field {
	return []field{
		{Name: "totp", Label: labels["totp"], Type: "text", Autocomplete: "one-time-code", Hint: "Six digits; a new code every 30 seconds."},
		{Name: "recovery_code", Label: labels["recovery_code"], Type: "text", Autocomplete: "off",
			Hint: "If you do not have your phone: one of the codes you saved when you set up the second factor. Each works once."},
	}
}

func (p *Pages) factorForm(w http.ResponseWriter, r *http.Request, sess account.Session) {
	next := safeNext(r.URL.Query().Get("next"))
	state, err := p.o.SecondFactorState(r.Context(), sess)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	switch state {
	case server.FactorEnroll:
		p.secondFactorStep(w, r, sess, next)
		return
	case server.FactorNone, server.FactorPassed:
		redirect(w, r, orDefault(next, "/account"))
		return
	}
	p.render(w, r, http.StatusOK, "second-factor", "Second factor", true, factorView{Fields: factorFields(), Next: next})
}

func (p *Pages) passFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if err := p.o.PassSecondFactorLimited(r, sess, r.PostFormValue("totp"), r.PostFormValue("recovery_code")); err != nil {
		v := factorView{Fields: factorFields(), Next: next}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "second-factor", "Second factor", true, v)
		return
	}
	redirect(w, r, orDefault(next, "/staff"))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// setupView is the second factor's page in the account: its status, or the secret
// to set up with a code to confirm it.
type setupView struct {
	Staff        bool
	Enrolled     bool
	RecoveryLeft int
	Enrollment   account.Enrollment
	Fields       []field
	Error        string
	Next         string
}

func (p *Pages) setupFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.renderSetup(w, r, sess, http.StatusOK, setupView{Next: safeNext(r.URL.Query().Get("next"))}, nil)
}

// renderSetup fills in the set-up page's status (and the secret in progress) and shows
// it; err, if any, goes on the form.
func (p *Pages) renderSetup(w http.ResponseWriter, r *http.Request, sess account.Session, st int, v setupView, err error) {
	status, serr := p.o.Accounts.SecondFactor(r.Context(), sess.AccountID)
	if serr == nil {
		v.Staff, serr = p.o.Staff.IsStaff(r.Context(), sess.AccountID)
	}
	if serr != nil {
		p.fail(w, r, serr)
		return
	}
	v.Enrolled, v.RecoveryLeft = status.Enrolled, status.RecoveryLeft
	if err != nil {
		st = p.formError(w, r, nil, &v.Error, err)
	}
	if !v.Enrolled && v.Staff {
		if v.Enrollment, serr = p.o.Accounts.Enroll(r.Context(), sess.AccountID, false); serr != nil {
			p.fail(w, r, serr)
			return
		}
		v.Fields = []field{{Name: "totp", Label: labels["totp"], Type: "text", Need: "required", Autocomplete: "one-time-code",
			Hint: "The six digits the app shows for this account, to confirm it is set up."}}
		if err != nil {
			st = p.formError(w, r, v.Fields, &v.Error, err)
		}
	}
	p.render(w, r, st, "second-factor-setup", "Second factor", true, v)
}

// codesView shows recovery codes, once.
type codesView struct {
	Codes []string
	Next  string
}

func (p *Pages) confirmFactor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	codes, err := p.o.ConfirmEnrollmentLimited(r, sess, r.PostFormValue("totp"))
	if err != nil {
		if apperr.KindOf(err) == apperr.Invalid || apperr.KindOf(err) == apperr.RateLimited {
			p.renderSetup(w, r, sess, 0, setupView{Next: next}, err)
			return
		}
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "second-factor-codes", "Your recovery codes", true, codesView{Codes: codes, Next: orDefault(next, "/staff")})
}

func (p *Pages) regenerateCodes(w http.ResponseWriter, r *http.Request, sess account.Session) {
	codes, err := p.o.Accounts.RegenerateRecoveryCodes(r.Context(), sess.AccountID, p.o.Meta(r))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "second-factor-codes", "Your recovery codes", true, codesView{Codes: codes, Next: "/account/second-factor"})
}

// reauthView asks for the password or a code before a sensitive action, and sends
// the form it interrupted again.
type reauthView struct {
	Action string
	Carry  []hidden // the interrupted form's fields
	Fields []field
	Error  string
}

// hidden is a form field carried through the re-authentication.
type hidden struct{ Name, Value string }

// reauthPassword and reauthCode are the fields of the re-authentication; the form
// they carry comes with them.
const (
	reauthPassword = "reauth_password"
	reauthCode     = "reauth_totp"
)

func reauthFields() []field {
	return []field{
		{Name: reauthPassword, Label: "Your password", Type: "password", Autocomplete: "current-password"},
		{Name: reauthCode, Label: "Or a code from your authenticator app", Type: "text", Autocomplete: "one-time-code"},
	}
}

// sensitive guards a form's handler (a POST) that makes a sensitive change: unless
// the session's holder gave the password or a code within the re-authentication
// window (--reauth-window), it shows "confirm it is you" instead, a form that sends
// the interrupted form's fields again with the password or a code; once they check
// out, the change goes through. Wrap the handler inside the staff gate:
// p.staff(p.sensitive(h), roles...).
func (p *Pages) sensitive(h func(http.ResponseWriter, *http.Request, account.Session)) func(http.ResponseWriter, *http.Request, account.Session) {
	return func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		if p.o.Accounts.Recent(sess) {
			h(w, r, sess)
			return
		}
		if err := parseForm(w, r); err != nil {
			p.fail(w, r, err)
			return
		}
		v := reauthView{Action: r.URL.Path, Fields: reauthFields()}
		for name, vals := range r.PostForm {
			if strings.HasPrefix(name, "reauth_") {
				continue
			}
			for _, val := range vals {
				v.Carry = append(v.Carry, hidden{Name: name, Value: val})
			}
		}
		pw, code := r.PostFormValue(reauthPassword), r.PostFormValue(reauthCode)
		st := http.StatusForbidden
		if pw != "" || code != "" {
			err := p.o.ReauthLimited(r, sess, pw, code)
			if err == nil {
				if sess, err = p.o.Accounts.Authenticate(r.Context(), server.Token(r)); err == nil {
					h(w, r, sess)
					return
				}
			}
			if e, ok := apperr.As(err); ok && e.Field != "" {
				// The service names the password or totp field; the page's are its own.
				v.Error = "That was not your password, or not a current code. Try again."
				st = status(w, err)
			} else {
				st = p.formError(w, r, nil, &v.Error, err)
			}
		}
		p.render(w, r, st, "reauth", "Confirm it is you", true, v)
	}
}
