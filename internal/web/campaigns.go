package web

import (
	"net/http"
	"net/url"

	"steward/internal/account"
	"steward/internal/newsletter"
)

// campaignEditView is the form of a draft being changed.
type campaignEditView struct {
	campaignRow
	Fields []field
	Error  string
}

// draft reads the campaign of the request's path and checks that it is a draft, for
// what is to be done ("changed", "deleted", "" for a send); it answers the request
// itself when not.
func (p *Pages) draft(w http.ResponseWriter, r *http.Request, done string) (newsletter.Campaign, bool) {
	c, err := p.o.Newsletter.Campaign(r.Context(), r.PathValue("id"))
	if err == nil {
		err = c.CheckDraft(done)
	}
	if err != nil {
		p.fail(w, r, err)
		return newsletter.Campaign{}, false
	}
	return c, true
}

func campaignPath(id string) string { return "/staff/campaigns/" + url.PathEscape(id) }

func (p *Pages) editCampaignForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, ok := p.draft(w, r, "changed")
	if !ok {
		return
	}
	p.render(w, r, http.StatusOK, "campaign-edit", "Edit: "+c.Subject, true,
		campaignEditView{campaignRow: p.campaignRow(c), Fields: p.campaignFields(c.Purpose, c.Subject, c.Body)})
}

func (p *Pages) editCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	c, ok := p.draft(w, r, "changed")
	if !ok {
		return
	}
	f := r.PostFormValue
	purpose, subject, body := f("purpose"), f("subject"), f("body")
	_, err := p.o.Newsletter.UpdateCampaign(r.Context(), c.ID, newsletter.CampaignEdit{Purpose: &purpose, Subject: &subject, Body: &body})
	if err != nil {
		v := campaignEditView{campaignRow: p.campaignRow(c), Fields: p.campaignFields(purpose, subject, body)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "campaign-edit", "Edit: "+c.Subject, true, v)
		return
	}
	redirect(w, r, campaignPath(c.ID)+"?saved=1")
}

func (p *Pages) deleteCampaignForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, ok := p.draft(w, r, "deleted")
	if !ok {
		return
	}
	p.render(w, r, http.StatusOK, "campaign-delete", "Delete the draft?", true, p.campaignRow(c))
}

func (p *Pages) deleteCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := p.o.Newsletter.DeleteCampaign(r.Context(), r.PathValue("id")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/campaigns?deleted=1")
}

// campaignSendView is the question before a send: to how many, for which purpose.
type campaignSendView struct {
	campaignRow
	Audience int    // whom the ledger allows the campaign to go to now: what the send would snapshot
	Version  string // of the draft asked about; a send of another version is refused
}

// sendCampaignForm asks before a send, with the size of the audience now.
func (p *Pages) sendCampaignForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, ok := p.draft(w, r, "")
	if !ok {
		return
	}
	_, n, err := p.o.Newsletter.Preview(r.Context(), c.ID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "campaign-send", "Send "+c.Subject+"?", true,
		campaignSendView{campaignRow: p.campaignRow(c), Audience: n, Version: c.Version()})
}

// sendCampaign snapshots a draft's audience and schedules its sending, once confirmed
// (the form of sendCampaignForm). A confirmation of a version of the draft that has
// changed since is refused: the staff member looks again. A campaign already sent is
// a conflict.
func (p *Pages) sendCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	if v := r.PostFormValue("version"); v != "" {
		c, ok := p.draft(w, r, "")
		if !ok {
			return
		}
		if c.Version() != v {
			p.fail(w, r, newsletter.ErrDraftChanged)
			return
		}
	}
	c, err := p.o.Newsletter.StartSend(r.Context(), p.o.Jobs, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, campaignPath(c.ID)+"?started=1")
}

// testCampaign sends the campaign as a test to the staff member's own address.
func (p *Pages) testCampaign(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if _, err := p.o.SendTestLimited(r, sess, r.PathValue("id")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, campaignPath(r.PathValue("id"))+"?tested=1")
}

// previewCSP lets the preview show the mail as a client would (its inline styles,
// pictures over https) and nothing else: no script, no form, no plugin, a sandbox, and
// framed only by the site's own campaign page.
const previewCSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; " +
	"form-action 'none'; base-uri 'none'; frame-ancestors 'self'"

// campaignPreview serves the campaign's HTML part as a sample recipient gets it, under
// a CSP of its own, for the campaign page's frame.
func (p *Pages) campaignPreview(w http.ResponseWriter, r *http.Request, _ account.Session) {
	m, _, err := p.o.Newsletter.PreviewMail(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", previewCSP)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(m.HTML)) // a failed write is a client gone
}

// unsubscribeTest is where the opt-out link of a test mail leads: it changes nothing.
func (p *Pages) unsubscribeTest(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "unsubscribe-test", "A test mail", p.loggedIn(r), nil)
}
