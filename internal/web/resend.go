package web

import (
	"encoding/base64"
	"net/http"

	"steward/internal/server"
)

// sentCookie carries the address a form was sent for to the "check your email" page
// the form redirects to, so that the page can show it without putting it in an
// address (logs and the history keep those). It lives for minutes, only on that page.
const sentCookie = server.SentCookie

// setSentTo remembers the address for the page at path.
func (p *Pages) setSentTo(w http.ResponseWriter, path, email string) {
	http.SetCookie(w, &http.Cookie{Name: sentCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(email)), Path: path,
		MaxAge: 600, HttpOnly: true, Secure: p.o.CookieSecure, SameSite: http.SameSiteStrictMode})
}

// sentTo is the address setSentTo remembered, or "".
func sentTo(r *http.Request) string {
	c, err := r.Cookie(sentCookie)
	if err != nil {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 320 {
		return ""
	}
	return string(b)
}

// sentView is a "check your email" page.
type sentView struct {
	Email    string // as typed; "" when the page was opened on its own
	Guardian bool
}

func (p *Pages) resendForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "resend", "Send the confirmation again", p.loggedIn(r), emailView{Fields: forgotFields("")})
}

// resend mails a new confirmation link (or asks a child's guardian again). The answer
// is the same whether the address has an account, and in which state.
func (p *Pages) resend(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	email := r.PostFormValue("email")
	if err := p.o.ResendLimited(r, email); err != nil {
		v := emailView{Fields: forgotFields(email)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "resend", "Send the confirmation again", p.loggedIn(r), v)
		return
	}
	p.setSentTo(w, "/verify/resend/sent", email)
	redirect(w, r, "/verify/resend/sent")
}

func (p *Pages) resendSent(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "resend-sent", "Check your email", p.loggedIn(r), sentView{Email: sentTo(r)})
}
