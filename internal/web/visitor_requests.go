package web

import (
	"mime"
	"net/http"

	"steward/internal/requests"
)

// visitorView is the form of a request made without logging in.
type visitorView struct {
	Fields   []field
	Error    string
	LoggedIn bool
}

// visitorFields lays out the form with what was typed; max is the document's size limit.
func visitorFields(v requests.VisitorSubmission, max int64) []field {
	rf := field{Name: "right", Label: labels["right"], Need: "required", Type: "select", Prompt: "Choose what you ask"}
	for _, r := range requests.Rights {
		rf.Options = append(rf.Options, option{Value: r, Name: capitalized(requests.RightName(r)), Selected: r == v.Right})
	}
	return []field{
		{Name: "name", Label: "Full name", Need: "required", Type: "text", Value: v.Name, Autocomplete: "name"},
		{Name: "email", Label: "Email address to answer you at", Need: "required", Type: "email", Value: v.NotifyEmail, Autocomplete: "email",
			Hint: "We send a link to it; nothing happens until you open it."},
		{Name: "held_email", Label: "Email address we hold your data under", Need: "optional", Type: "email", Value: v.HeldEmail,
			Hint: "If it is another address than the one above."},
		rf,
		{Name: "details", Label: labels["details"], Need: "optional", Type: "textarea", Rows: 6, Value: v.Details,
			Hint: "Required for a correction, a complaint or a question: what it is about."},
		{Name: "document", Label: "Copy of an identity document", Need: "optional", Type: "file",
			Accept: ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png",
			Hint: "A PDF, JPEG or PNG file, " + requests.DocumentLimit(max) + ". It helps us check who you are; it is kept encrypted, " +
				"seen only by our privacy team, and deleted when your request is closed. You may black out everything but your name and photo."},
	}
}

func capitalized(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func (p *Pages) visitorForm(w http.ResponseWriter, r *http.Request) {
	in := p.loggedIn(r)
	p.render(w, r, http.StatusOK, "request-new", "Ask about your data", in, visitorView{Fields: visitorFields(requests.VisitorSubmission{}, p.o.Requests.MaxDocument()), LoggedIn: in})
}

// submitVisitor records the request and mails its confirmation link. The answer is
// the same whoever the addresses belong to.
func (p *Pages) submitVisitor(w http.ResponseWriter, r *http.Request) {
	var v requests.VisitorSubmission
	var err error
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		v, err = p.o.VisitorFrom(w, r)
	} else if err = parseForm(w, r); err == nil {
		f := r.PostFormValue
		v = requests.VisitorSubmission{Name: f("name"), NotifyEmail: f("email"), HeldEmail: f("held_email"), Right: f("right"), Details: f("details")}
	}
	if err == nil {
		err = p.o.SubmitVisitorLimited(r, v)
	}
	if err != nil {
		in := p.loggedIn(r)
		view := visitorView{Fields: visitorFields(v, p.o.Requests.MaxDocument()), LoggedIn: in}
		st := p.formError(w, r, view.Fields, &view.Error, err)
		p.render(w, r, st, "request-new", "Ask about your data", in, view)
		return
	}
	p.setSentTo(w, "/requests/sent", v.NotifyEmail)
	redirect(w, r, "/requests/sent")
}

func (p *Pages) visitorSent(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "request-sent", "Check your mailbox", p.loggedIn(r), sentView{Email: sentTo(r)})
}

// visitorConfirmForm only shows a button: mail scanners open links too.
func (p *Pages) visitorConfirmForm(w http.ResponseWriter, r *http.Request) {
	v := tokenView{Token: r.URL.Query().Get("token")}
	st := http.StatusOK
	if v.Token == "" {
		v.Error = "This link is incomplete. Open the link from the mail exactly as it is, or copy all of it into the address bar."
		st = http.StatusBadRequest
	}
	p.render(w, r, st, "request-confirm", "Confirm your request", p.loggedIn(r), v)
}

func (p *Pages) visitorConfirm(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v := tokenView{Token: r.PostFormValue("token")}
	if _, err := p.o.Requests.Confirm(r.Context(), v.Token); err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		if st < http.StatusInternalServerError {
			v.Token = "" // the link is dead: no button that cannot work
		}
		p.render(w, r, st, "request-confirm", "Confirm your request", p.loggedIn(r), v)
		return
	}
	redirect(w, r, "/requests/confirmed")
}

func (p *Pages) visitorConfirmed(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "request-confirmed", "Your request is received", p.loggedIn(r), nil)
}

// downloadView is the page of a one-time download link.
type downloadView struct {
	Token string
	Error string
}

// downloadForm only shows a button (mail scanners open links too, and would use the
// link up), or says at once why the link cannot work.
func (p *Pages) downloadForm(w http.ResponseWriter, r *http.Request) {
	v := downloadView{Token: r.URL.Query().Get("token")}
	st := http.StatusOK
	if err := p.o.Requests.CheckDownload(r.Context(), v.Token); err != nil {
		st = p.formError(w, r, nil, &v.Error, err)
		v.Token = ""
	}
	p.render(w, r, st, "request-download", "Download your data", p.loggedIn(r), v)
}

// download uses the link: the ZIP archive, or the page saying why not.
func (p *Pages) requestDownload(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	p.o.WriteRequestDownload(w, r, r.PostFormValue("token"), func(w http.ResponseWriter, r *http.Request, err error) {
		var v downloadView
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "request-download", "Download your data", p.loggedIn(r), v)
	})
}
