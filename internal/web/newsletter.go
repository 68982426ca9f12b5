package web

import (
	"net/http"

	"steward/internal/consent"
	"steward/internal/newsletter"
	"steward/internal/server"
)

// subscribeView is the newsletter's subscription form.
type subscribeView struct {
	Fields   []field
	Error    string
	LoggedIn bool
}

// subscribeFields lays out the subscription form with what was typed. It has no
// checkbox: sending the form is the request, and the mailed link is the consent.
func subscribeFields(sub newsletter.Subscription) []field {
	return []field{
		{Name: "first_name", Label: labels["first_name"], Need: "optional", Type: "text", Value: sub.FirstName, Autocomplete: "given-name"},
		{Name: "last_name", Label: labels["last_name"], Need: "optional", Type: "text", Value: sub.LastName, Autocomplete: "family-name"},
		{Name: "email", Label: labels["email"], Need: "required", Type: "email", Value: sub.Email, Autocomplete: "email",
			Hint: "We send a link to it; the subscription starts only when you open it."},
		{Name: "company", Label: labels["company"], Need: "optional", Type: "text", Value: sub.Company, Autocomplete: "organization"},
	}
}

func (p *Pages) subscribeForm(w http.ResponseWriter, r *http.Request) {
	in := p.loggedIn(r)
	p.render(w, r, http.StatusOK, "newsletter", "Newsletter", in,
		subscribeView{Fields: subscribeFields(newsletter.Subscription{}), LoggedIn: in})
}

// subscribe starts a double opt-in. The answer is the same whether the address was
// new, waiting for its confirmation or already subscribed.
func (p *Pages) subscribe(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	f := r.PostFormValue
	sub := newsletter.Subscription{FirstName: f("first_name"), LastName: f("last_name"), Email: f("email"), Company: f("company")}
	if err := p.o.SubscribeLimited(r, sub); err != nil {
		in := p.loggedIn(r)
		v := subscribeView{Fields: subscribeFields(sub), LoggedIn: in}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "newsletter", "Newsletter", in, v)
		return
	}
	p.setSentTo(w, "/newsletter/sent", sub.Email)
	redirect(w, r, "/newsletter/sent")
}

func (p *Pages) subscribeSent(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "newsletter-sent", "Check your mailbox", p.loggedIn(r), sentView{Email: sentTo(r)})
}

// confirmForm only shows a button: opening the link must not subscribe anyone, since
// mail scanners open links too.
func (p *Pages) confirmForm(w http.ResponseWriter, r *http.Request) {
	v := tokenView{Token: r.URL.Query().Get("token")}
	st := http.StatusOK
	if v.Token == "" {
		v.Error = "This link is incomplete. Open the link from the mail exactly as it is, or copy all of it into the address bar."
		st = http.StatusBadRequest
	}
	p.render(w, r, st, "newsletter-confirm", "Confirm your subscription", p.loggedIn(r), v)
}

func (p *Pages) confirm(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v := tokenView{Token: r.PostFormValue("token")}
	c, err := p.o.Newsletter.Confirm(r.Context(), v.Token, p.o.Evidence(r))
	if err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = "" // the link is dead: no button that cannot work
		}
		p.render(w, r, st, "newsletter-confirm", "Confirm your subscription", p.loggedIn(r), v)
		return
	}
	if c.WaitsForGuardian {
		redirect(w, r, "/newsletter/confirmed?guardian=1")
		return
	}
	redirect(w, r, "/newsletter/confirmed")
}

func (p *Pages) confirmed(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("guardian") == "1" {
		p.render(w, r, http.StatusOK, "newsletter-confirmed", "Your parent or guardian must agree", p.loggedIn(r), struct{ Guardian bool }{true})
		return
	}
	p.render(w, r, http.StatusOK, "newsletter-confirmed", "You are subscribed", p.loggedIn(r), struct{ Guardian bool }{})
}

// unsubscribeView is the opt-out page of a marketing mail's link.
type unsubscribeView struct {
	Token   string
	Error   string
	Purpose string // after the opt-out: what it was from
	From    string // before the click: what the link opts out of
	Already bool   // the address was unsubscribed before: nothing to ask
	Member  bool   // the subject has an account: its preferences show every choice
}

// unsubscribeForm names what the link opts out of and shows one button. Opening the
// link changes nothing: mail scanners open links too. A forged or expired link is
// refused here already.
func (p *Pages) unsubscribeForm(w http.ResponseWriter, r *http.Request) {
	v := unsubscribeView{Token: r.URL.Query().Get("t")}
	st := http.StatusOK
	if v.Token == "" {
		v.Error = "This link is incomplete. Open the link from the mail exactly as it is, or copy all of it into the address bar."
		st = http.StatusBadRequest
	} else if state, err := p.o.Newsletter.UnsubscribeState(r.Context(), v.Token); err != nil {
		v.Error, st = "This opt-out link is not valid or has expired.", server.Status(err)
		if st < http.StatusInternalServerError {
			v.Token = "" // no button that cannot work
		}
	} else if state.Already {
		// Nothing to ask: say so, with the way back.
		p.render(w, r, http.StatusOK, "unsubscribed", "You are already unsubscribed", p.loggedIn(r),
			unsubscribeView{Purpose: state.PurposeName, Already: true, Member: state.Member})
		return
	} else {
		v.From = state.PurposeName
	}
	p.render(w, r, st, "unsubscribe", "Unsubscribe", p.loggedIn(r), v)
}

// unsubscribe withdraws the consent the mail was sent under, with no login: the signed
// token is the proof. A used token works again, harmlessly, so the answer is a page,
// not a redirect that would need the purpose in its address.
func (p *Pages) unsubscribe(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v := unsubscribeView{Token: r.PostFormValue("t")}
	out, err := p.o.Newsletter.Unsubscribe(r.Context(), v.Token, consent.SourceEmailLink, p.o.Evidence(r))
	if err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = ""
		}
		p.render(w, r, st, "unsubscribe", "Unsubscribe", p.loggedIn(r), v)
		return
	}
	v.Purpose, v.Already, v.Member = out.PurposeName, out.Already, out.Member
	if v.Purpose == "" {
		v.Purpose = "this mailing list" // a purpose since removed from the register
	}
	p.render(w, r, http.StatusOK, "unsubscribed", "You are unsubscribed", p.loggedIn(r), v)
}
