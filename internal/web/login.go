package web

import (
	"net/http"

	"steward/internal/apperr"
	"steward/internal/server"
)

// loginView is the login form.
type loginView struct {
	Fields []field
	Error  string
	Notice string
	Next   string // the page to return to after the login, checked by safeNext
}

// notices are the messages a redirect to the login page may ask for, by key, so that
// no text from the address ends up on the page.
var notices = map[string]string{
	"everywhere": "You are logged out on every device.",
	"reset":      "Your new password is set. Log in with your new password.",
	"revoked":    "This session has ended.",
}

func loginFields(email string) []field {
	return []field{
		{Name: "email", Label: labels["email"], Type: "email", Value: email, Autocomplete: "username"},
		{Name: "password", Label: labels["password"], Type: "password", Autocomplete: "current-password"},
	}
}

func (p *Pages) loginForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "login", "Log in", p.loggedIn(r),
		loginView{Fields: loginFields(""), Notice: notices[r.URL.Query().Get("notice")], Next: safeNext(r.URL.Query().Get("next"))})
}

func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	email := r.PostFormValue("email")
	token, sess, err := p.o.LoginLimited(w, r, email, r.PostFormValue("password"))
	if err != nil {
		v := loginView{Fields: loginFields(email), Next: safeNext(r.PostFormValue("next"))}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "login", "Log in", p.loggedIn(r), v)
		return
	}
	server.SetSessionCookie(w, token, p.o.CookieSecure)
	to := safeNext(r.PostFormValue("next"))
	// A staff account gives its second factor next (or sets one up).
	if state, err := p.o.SecondFactorState(r.Context(), sess); err != nil {
		p.fail(w, r, err)
		return
	} else if state == server.FactorRequired || state == server.FactorEnroll {
		p.secondFactorStep(w, r, sess, orDefault(to, "/staff"))
		return
	}
	if to == "" {
		to = "/account"
	}
	redirect(w, r, to)
}

func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	// No live session: nothing to end but the cookie. Any other failure must not look
	// like a logout, or the session would live on behind a cleared cookie.
	sess, err := p.o.Accounts.Authenticate(r.Context(), server.Token(r))
	if err == nil {
		err = p.o.Accounts.Logout(r.Context(), sess, p.o.Meta(r))
	}
	if err != nil && apperr.KindOf(err) != apperr.Unauthorized {
		p.fail(w, r, err)
		return
	}
	server.ClearSessionCookie(w, p.o.CookieSecure)
	redirect(w, r, "/")
}

// emailView is the form that asks for a password reset link.
type emailView struct {
	Fields []field
	Error  string
}

func forgotFields(email string) []field {
	return []field{{Name: "email", Label: labels["email"], Type: "email", Value: email, Autocomplete: "email"}}
}

func (p *Pages) forgotForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "forgot", "Forgot your password?", p.loggedIn(r), emailView{Fields: forgotFields("")})
}

func (p *Pages) forgot(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	email := r.PostFormValue("email")
	if err := p.o.ResetLimited(r, email); err != nil {
		v := emailView{Fields: forgotFields(email)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "forgot", "Forgot your password?", p.loggedIn(r), v)
		return
	}
	p.setSentTo(w, "/password/forgot/sent", email)
	redirect(w, r, "/password/forgot/sent")
}

func (p *Pages) forgotSent(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "forgot-sent", "Check your email", p.loggedIn(r), sentView{Email: sentTo(r)})
}

// resetView is the form that sets a new password with a mailed link.
type resetView struct {
	Token  string
	Fields []field
	Error  string
}

func resetFields() []field {
	return []field{{Name: "password", Label: "New password", Type: "password", Need: "required", Autocomplete: "new-password",
		Hint: "At least 10 characters; not a common password, and not your name or email address."}}
}

func (p *Pages) resetForm(w http.ResponseWriter, r *http.Request) {
	v := resetView{Token: r.URL.Query().Get("token"), Fields: resetFields()}
	st := http.StatusOK
	if v.Token == "" {
		v.Error = "This link is incomplete. Open the link from the mail exactly as it is, or ask for a new one."
		st = http.StatusBadRequest
	} else if err := p.o.Accounts.ResetLinkValid(r.Context(), v.Token); err != nil {
		// Said now, not after a new password is typed.
		st = p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = ""
		}
	}
	p.render(w, r, st, "reset", "Choose a new password", p.loggedIn(r), v)
}

func (p *Pages) reset(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v := resetView{Token: r.PostFormValue("token"), Fields: resetFields()}
	if err := p.o.Accounts.ResetPassword(r.Context(), v.Token, r.PostFormValue("password"), p.o.Meta(r)); err != nil {
		st := p.formError(w, r, v.Fields, &v.Error, err)
		if e, ok := apperr.As(err); ok && e.Field == "token" {
			v.Token = "" // the link died meanwhile: no form that cannot work
		}
		p.render(w, r, st, "reset", "Choose a new password", p.loggedIn(r), v)
		return
	}
	// Every session of the account has ended, this browser's too if it had one.
	server.ClearSessionCookie(w, p.o.CookieSecure)
	redirect(w, r, "/login?notice=reset")
}
