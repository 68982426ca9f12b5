package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/newsletter"
	"steward/internal/server"
)

// marketing is the staff role the campaign pages need (admin holds every role).
const marketing = "marketing"

// staff admits only logged-in members holding one of the roles, in a session that
// passed the second factor (else they are sent to its step, or to set one up, and
// back); another member gets the forbidden page.
func (p *Pages) staff(h func(http.ResponseWriter, *http.Request, account.Session), roles ...string) http.HandlerFunc {
	role := strings.Join(roles, " or ")
	return p.member(func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		ok, err := p.o.Staff.HasAny(r.Context(), sess.AccountID, roles...)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if !ok {
			p.render(w, r, http.StatusForbidden, "error", "Staff only", true, errorView{Heading: "Staff only",
				Message: "This page is for staff who hold the " + role + " role. An administrator can grant it."})
			return
		}
		if sess.SecondFactorAt.IsZero() {
			// A form sent is not replayed: the step leads back to the staff home.
			next := "/staff"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			p.secondFactorStep(w, r, sess, next)
			return
		}
		h(w, r, sess)
	})
}

// isStaff reports whether the request's member may reach the staff pages, for the
// navigation. An error only hides the link.
func (p *Pages) isStaff(r *http.Request) bool {
	if p.o.Staff == nil {
		return false
	}
	sess, ok := r.Context().Value(sessionKey{}).(account.Session)
	if !ok {
		var err error
		if sess, err = p.o.Accounts.Authenticate(r.Context(), server.Token(r)); err != nil {
			if apperr.KindOf(err) != apperr.Unauthorized {
				p.o.Log.ErrorContext(r.Context(), "staff role", "err", err)
			}
			return false
		}
	}
	yes, err := p.o.Staff.HasAny(r.Context(), sess.AccountID, staffRoles...)
	if err != nil {
		p.o.Log.ErrorContext(r.Context(), "staff role", "err", err)
	}
	return yes
}

// campaignsView lists the campaigns.
type campaignsView struct {
	Campaigns []campaignRow
	Deleted   bool // a draft was just deleted
}

// campaignRow is a campaign as the list and its page show it.
type campaignRow struct {
	ID         string
	Subject    string
	Purpose    string // the purpose's name
	Status     string
	Draft      bool
	CreatedAt  time.Time
	SentAt     time.Time
	Recipients int
	Sent       int
	Skipped    int
	Failed     int
	// Unconfirmed may not have been delivered (the server stopped while sending).
	Unconfirmed int
}

func (p *Pages) campaignRow(c newsletter.Campaign) campaignRow {
	name := c.Purpose
	if pu, ok := p.o.Consent.Register().Purpose(c.Purpose); ok {
		name = pu.Name
	}
	return campaignRow{ID: c.ID, Subject: c.Subject, Purpose: name, Status: c.Status, Draft: c.Status == newsletter.CampaignDraft,
		CreatedAt: c.CreatedAt, SentAt: c.SentAt, Recipients: c.Recipients, Sent: c.Sent, Skipped: c.Skipped, Failed: c.Failed,
		Unconfirmed: c.Unconfirmed}
}

func (p *Pages) campaigns(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := p.o.Newsletter.Campaigns(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := campaignsView{Deleted: r.URL.Query().Get("deleted") == "1"}
	for _, c := range list {
		v.Campaigns = append(v.Campaigns, p.campaignRow(c))
	}
	p.render(w, r, http.StatusOK, "campaigns", "Campaigns", true, v)
}

// campaignFormView is the form of a new campaign.
type campaignFormView struct {
	Fields []field
	Error  string
}

// campaignFields lays out the campaign form: a choice among the purposes marketing
// mail can be sent for (not those that share data with third parties), none chosen.
func (p *Pages) campaignFields(purpose, subject, body string) []field {
	pf := field{Name: "purpose", Label: labels["purpose"], Need: "required", Type: "select", Prompt: "Choose a purpose",
		Hint: "Only people whose consent covers this purpose get the mail; each can opt out of it with one click."}
	for _, pu := range p.o.Consent.Register().Purposes {
		if pu.Marketing && !pu.Sharing {
			pf.Options = append(pf.Options, option{Value: pu.Key, Name: pu.Name, Selected: pu.Key == purpose})
		}
	}
	return []field{
		pf,
		{Name: "subject", Label: labels["subject"], Need: "required", Type: "text", Value: subject, Hint: "One line, at most 200 characters."},
		{Name: "body", Label: labels["body"], Need: "required", Type: "textarea", Rows: 16, Value: body,
			Hint: "In Markdown. Raw HTML is left out. A greeting goes before it, and the opt-out link after it."},
	}
}

func (p *Pages) campaignForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	p.render(w, r, http.StatusOK, "campaign-new", "New campaign", true, campaignFormView{Fields: p.campaignFields("", "", "")})
}

func (p *Pages) createCampaign(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	f := r.PostFormValue
	purpose, subject, body := f("purpose"), f("subject"), f("body")
	var c newsletter.Campaign
	var err error = apperr.Field("purpose", "required", "is required")
	if purpose != "" {
		c, err = p.o.Newsletter.CreateCampaign(r.Context(), sess.AccountID, purpose, subject, body)
	}
	if err != nil {
		v := campaignFormView{Fields: p.campaignFields(purpose, subject, body)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "campaign-new", "New campaign", true, v)
		return
	}
	redirect(w, r, "/staff/campaigns/"+url.PathEscape(c.ID))
}

// campaignView is one campaign with its mail as a sample recipient would get it.
type campaignView struct {
	campaignRow
	Audience int // whom the ledger allows it to go to now
	Text     string
	Headers  []header
	Started  bool
	Saved    bool
	TestTo   string // the address a test was just sent to
	// Visits are the visits and conversions its own links brought, once it is sent.
	Visits *server.CampaignVisits
}

// header is one mail header of the preview.
type header struct {
	Name, Value string
}

func (p *Pages) campaign(w http.ResponseWriter, r *http.Request, sess account.Session) {
	c, err := p.o.Newsletter.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	m, n, err := p.o.Newsletter.Preview(r.Context(), c.ID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	v := campaignView{campaignRow: p.campaignRow(c), Audience: n, Text: m.Text, Started: q.Get("started") == "1", Saved: q.Get("saved") == "1"}
	if c.Status != newsletter.CampaignDraft {
		visits, err := p.o.NewsletterVisits(r.Context(), c)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		v.Visits = &visits
	}
	if q.Get("tested") == "1" {
		// The test went to the staff member's own address: say which.
		prof, err := p.o.Accounts.Profile(r.Context(), sess.AccountID)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		v.TestTo = prof.Email
	}
	for k, val := range m.Headers {
		v.Headers = append(v.Headers, header{Name: k, Value: val})
	}
	slices.SortFunc(v.Headers, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	p.render(w, r, http.StatusOK, "campaign", c.Subject, true, v)
}
