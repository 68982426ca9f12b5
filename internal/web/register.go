package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/config"
)

// registerView is the registration form.
type registerView struct {
	Fields []field
	Error  string
}

// registerFields lays out the registration form with what was typed, except the
// password, which is never sent back.
func (p *Pages) registerFields(reg account.Registration) []field {
	values := map[string]string{"name": reg.Name, "phone": reg.Phone, "home_address": reg.HomeAddress,
		"business_address": reg.BusinessAddress}
	var out []field
	if p.shown("name", "") {
		out = append(out, p.profileField("name", reg.Name))
	}
	out = append(out,
		field{Name: "email", Label: labels["email"], Need: "required", Type: "email", Value: reg.Email, Autocomplete: "email",
			Hint: "We send a link to it to confirm it is yours."},
		field{Name: "password", Label: labels["password"], Need: "required", Type: "password", Autocomplete: "new-password",
			Hint: "At least 10 characters; not a common password, and not your name or email address."},
	)
	for _, f := range config.ProfileFields {
		if f != "name" && p.shown(f, "") {
			out = append(out, p.profileField(f, values[f]))
		}
	}
	out = append(out,
		field{Name: "birthdate", Label: labels["birthdate"], Need: "required", Type: "date", Value: reg.Birthdate, Autocomplete: "bday",
			Hint: "To check whether you may register on your own. It is never shown on your public profile."},
		p.countryField(reg.Country),
		field{Name: "guardian_email", Label: labels["guardian_email"], Need: "optional", Type: "email", Value: reg.GuardianEmail,
			Hint: fmt.Sprintf("Only if you are younger than the digital age of consent of your country: %d, or between 13 and 16 "+
				"where your country sets another. A parent or guardian must then agree by a link we mail to them, "+
				"and your account waits until they do. Leave it empty otherwise.", p.o.DefaultAgeOfConsent)},
	)
	return out
}

func (p *Pages) registerForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "register", "Register", p.loggedIn(r), registerView{Fields: p.registerFields(account.Registration{})})
}

func (p *Pages) register(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	f := r.PostFormValue
	reg := account.Registration{
		Email: f("email"), Password: f("password"), Name: f("name"), Phone: f("phone"), HomeAddress: f("home_address"),
		BusinessAddress: f("business_address"), Birthdate: f("birthdate"), Country: f("country"), GuardianEmail: f("guardian_email"),
	}
	out, err := p.o.RegisterLimited(r, reg)
	if err != nil {
		v := registerView{Fields: p.registerFields(reg)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		if e, ok := apperr.As(err); reg.Password != "" && (!ok || e.Field != "password") {
			// Every other field keeps what was typed; the password is never sent back,
			// so the form says plainly that it must be typed again.
			for i := range v.Fields {
				if v.Fields[i].Name == "password" {
					v.Fields[i].Error = "Type your password again: for its safety, it is never sent back to your browser."
				}
			}
			v.Error = strings.Replace(v.Error, "the field marked below", "the fields marked below", 1)
			v.Error = strings.TrimSpace(v.Error + " Your password was not kept: type it again.")
		}
		p.render(w, r, st, "register", "Register", p.loggedIn(r), v)
		return
	}
	to := "/register/sent"
	if out.Status == account.PendingGuardian {
		to += "?guardian=1"
	}
	p.setSentTo(w, "/register/sent", reg.Email)
	redirect(w, r, to)
}

func (p *Pages) registerSent(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "register-sent", "Check your email", p.loggedIn(r), sentView{Email: sentTo(r), Guardian: r.URL.Query().Get("guardian") == "1"})
}

// tokenView is a page that acts on the token of a mailed link.
type tokenView struct {
	Token string
	Error string
}

// verifyForm only shows a button: opening the link must not confirm anything, since
// mail scanners open links too.
func (p *Pages) verifyForm(w http.ResponseWriter, r *http.Request) {
	v := tokenView{Token: r.URL.Query().Get("token")}
	st := http.StatusOK
	if v.Token == "" {
		v.Error = "This link is incomplete. Open the link from the mail exactly as it is, or copy all of it into the address bar."
		st = http.StatusBadRequest
	} else if _, err := p.o.Accounts.VerifyLinkValid(r.Context(), v.Token); err != nil {
		// A used or expired link offers no button that cannot work, but what to do now.
		st = p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = ""
		}
	}
	p.render(w, r, st, "verify", "Confirm your email address", p.loggedIn(r), v)
}

func (p *Pages) verify(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v := tokenView{Token: r.PostFormValue("token")}
	// Whether the link confirms a changed address decides what the next page says; a
	// link that is no longer valid fails in VerifyEmail below.
	change, _ := p.o.Accounts.VerifyLinkValid(r.Context(), v.Token)
	status, err := p.o.Accounts.VerifyEmail(r.Context(), v.Token, p.o.Meta(r))
	if err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = "" // the link is dead: no button that cannot work
		}
		p.render(w, r, st, "verify", "Confirm your email address", p.loggedIn(r), v)
		return
	}
	to := "/verify/done?status=" + url.QueryEscape(string(status))
	if change {
		to = "/verify/done?changed=1"
	}
	redirect(w, r, to)
}

// verifyDoneView is the result of a confirmation.
type verifyDoneView struct {
	Active, WaitingForGuardian bool
	Changed                    bool // a changed address was confirmed
	LoggedIn                   bool
}

func (p *Pages) verifyDone(w http.ResponseWriter, r *http.Request) {
	s := account.Status(r.URL.Query().Get("status"))
	in := p.loggedIn(r)
	if r.URL.Query().Get("changed") == "1" {
		p.render(w, r, http.StatusOK, "verify-done", "New email address confirmed", in, verifyDoneView{Changed: true, LoggedIn: in})
		return
	}
	p.render(w, r, http.StatusOK, "verify-done", "Email address confirmed", in,
		verifyDoneView{Active: s == account.Active, WaitingForGuardian: s == account.PendingGuardian, LoggedIn: in})
}

// guardianView asks a parent or guardian to agree.
type guardianView struct {
	Token          string
	ConfirmDecline bool // the step before a decline erases the registration
	ChildName      string
	ChildEmail     string
	Error          string
}

func (p *Pages) guardianForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	g, err := p.o.Accounts.GuardianRequestFor(r.Context(), token)
	if err != nil {
		v := guardianView{}
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "guardian", "Parent or guardian consent", p.loggedIn(r), v)
		return
	}
	p.render(w, r, http.StatusOK, "guardian", "Parent or guardian consent", p.loggedIn(r),
		guardianView{Token: token, ChildName: g.ChildName, ChildEmail: g.ChildEmail})
}

func (p *Pages) guardianDecide(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	token := r.PostFormValue("token")
	var agree bool
	switch r.PostFormValue("decision") {
	case "agree":
		agree = true
	case "decline":
		if r.PostFormValue("confirm") != "yes" {
			// Declining erases: it asks once more, on a page of its own (no script).
			v := guardianView{Token: token, ConfirmDecline: true}
			g, err := p.o.Accounts.GuardianRequestFor(r.Context(), token)
			if err != nil {
				v = guardianView{}
				st := p.formError(w, r, nil, &v.Error, err)
				p.render(w, r, st, "guardian", "Parent or guardian consent", p.loggedIn(r), v)
				return
			}
			v.ChildEmail = g.ChildEmail
			p.render(w, r, http.StatusOK, "guardian", "Decline the registration?", p.loggedIn(r), v)
			return
		}
	default:
		p.render(w, r, http.StatusBadRequest, "guardian", "Parent or guardian consent", p.loggedIn(r),
			guardianView{Token: token, Error: "Choose Agree or Decline."})
		return
	}
	if err := p.o.Accounts.GuardianDecide(r.Context(), token, agree, p.o.Meta(r)); err != nil {
		v := guardianView{}
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "guardian", "Parent or guardian consent", p.loggedIn(r), v)
		return
	}
	if agree {
		redirect(w, r, "/guardian/done?decision=agreed")
		return
	}
	redirect(w, r, "/guardian/done?decision=declined")
}

// guardianDoneView is the result of a guardian's decision.
type guardianDoneView struct {
	Agreed bool
}

func (p *Pages) guardianDone(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "guardian-done", "Thank you", p.loggedIn(r),
		guardianDoneView{Agreed: r.URL.Query().Get("decision") == "agreed"})
}
