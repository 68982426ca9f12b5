package api

import (
	"io"
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/newsletter"
	"steward/internal/server"
)

func (a *API) registerNewsletter(mux server.Router) {
	mux.HandleFunc("POST /api/v1/newsletter", a.subscribe)
	mux.HandleFunc("POST /api/v1/newsletter/confirm", a.confirmSubscription)
	mux.HandleFunc("POST /unsubscribe/one-click", a.oneClick)
	mux.HandleFunc("GET /b/o.gif", a.beacon)
	mux.HandleFunc("GET /api/v1/staff/campaigns", a.staff(a.campaigns, "marketing"))
	mux.HandleFunc("POST /api/v1/staff/campaigns", a.staff(a.createCampaign, "marketing"))
	mux.HandleFunc("GET /api/v1/staff/campaigns/{id}", a.staff(a.campaign, "marketing"))
	mux.HandleFunc("PATCH /api/v1/staff/campaigns/{id}", a.staff(a.updateCampaign, "marketing"))
	mux.HandleFunc("DELETE /api/v1/staff/campaigns/{id}", a.staff(a.deleteCampaign, "marketing"))
	mux.HandleFunc("POST /api/v1/staff/campaigns/{id}/test", a.staff(a.testCampaign, "marketing"))
	mux.HandleFunc("POST /api/v1/staff/campaigns/{id}/send", a.staff(a.sensitive(a.sendCampaign), "marketing"))
	mux.HandleFunc("POST /api/v1/staff/subscribers/import", a.staff(a.importSubscribers, "marketing"))
	mux.HandleFunc("GET /api/v1/staff/consent-conflicts", a.staff(a.conflicts, "dpo", "support"))
}

// staff admits only members holding one of the roles (admin holds all), in a session
// that passed the second factor (403 second_factor_required otherwise).
func (a *API) staff(h func(http.ResponseWriter, *http.Request, account.Session), roles ...string) http.HandlerFunc {
	return a.auth(func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		if err := a.StaffGate(r.Context(), sess, roles...); err != nil {
			if apperr.KindOf(err) == apperr.Forbidden && !server.IsSecondFactorRequired(err) {
				err = apperr.New(apperr.Forbidden, "forbidden", "this needs a staff role: "+roles[0])
			}
			a.fail(w, r, err)
			return
		}
		h(w, r, sess)
	})
}

type subscribeRequest struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Company   string `json:"company"`
}

func (a *API) subscribe(w http.ResponseWriter, r *http.Request) {
	var req subscribeRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.SubscribeLimited(r, newsletter.Subscription(req)); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "pending",
		"message": "check your mailbox: the subscription starts when you open the confirmation link"})
}

func (a *API) confirmSubscription(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Newsletter.Confirm(r.Context(), req.Token, a.Evidence(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if c.WaitsForGuardian {
		server.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "awaiting_guardian",
			"message": "the address is confirmed; the newsletter starts once your parent or guardian agrees: we have mailed them"})
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"status": "confirmed"})
}

// oneClick is RFC 8058's one-click unsubscribe: a POST from the mail client, no login.
func (a *API) oneClick(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("List-Unsubscribe") != "One-Click" {
		a.fail(w, r, apperr.Field("List-Unsubscribe", "one_click_required", "post List-Unsubscribe=One-Click"))
		return
	}
	if _, err := a.Newsletter.Unsubscribe(r.Context(), r.URL.Query().Get("t"), consent.SourceEmailLink, a.Evidence(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"status": "unsubscribed"})
}

// gif is a transparent 1x1 GIF.
var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")

// beacon records an open only when the recipient's consent covers it; the image is the
// same either way.
func (a *API) beacon(w http.ResponseWriter, r *http.Request) {
	a.Newsletter.RecordOpen(r.Context(), r.URL.Query().Get("t"))
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
	_, _ = w.Write(gif) // a failed write is a client gone
}

type campaignRequest struct {
	Purpose string `json:"purpose"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

type campaignResponse struct {
	ID         string    `json:"id"`
	Purpose    string    `json:"purpose"`
	Subject    string    `json:"subject"`
	Body       string    `json:"body"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	SentAt     time.Time `json:"sent_at,omitzero"`
	Recipients int       `json:"recipients"`
	Sent       int       `json:"sent"`
	Skipped    int       `json:"skipped"`
	Failed     int       `json:"failed"`
	// Unconfirmed were being handed to the mail server when sending stopped (a crash):
	// they may or may not have been delivered, and are not sent again.
	Unconfirmed int      `json:"unconfirmed"`
	Preview     *preview `json:"preview,omitempty"`
}

type preview struct {
	Audience int               `json:"audience"`
	Subject  string            `json:"subject"`
	Text     string            `json:"text"`
	HTML     string            `json:"html"`
	Headers  map[string]string `json:"headers"`
}

func toCampaign(c newsletter.Campaign) campaignResponse {
	return campaignResponse{ID: c.ID, Purpose: c.Purpose, Subject: c.Subject, Body: c.Body, Status: c.Status,
		CreatedAt: c.CreatedAt, SentAt: c.SentAt, Recipients: c.Recipients, Sent: c.Sent, Skipped: c.Skipped, Failed: c.Failed,
		Unconfirmed: c.Unconfirmed}
}

func (a *API) campaigns(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.Newsletter.Campaigns(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]campaignResponse, len(list))
	for i, c := range list {
		out[i] = toCampaign(c)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"campaigns": out})
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req campaignRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Newsletter.CreateCampaign(r.Context(), sess.AccountID, req.Purpose, req.Subject, req.Body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, toCampaign(c))
}

// campaign returns a campaign with a preview of its mail and the size of its audience now.
func (a *API) campaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, err := a.Newsletter.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	m, n, err := a.Newsletter.Preview(r.Context(), c.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := toCampaign(c)
	out.Preview = &preview{Audience: n, Subject: m.Subject, Text: m.Text, HTML: m.HTML, Headers: m.Headers}
	server.WriteJSON(w, http.StatusOK, out)
}

func (a *API) sendCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	c, err := a.Newsletter.StartSend(r.Context(), a.Jobs, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, toCampaign(c))
}

// importSubscribers takes a CSV body (text/csv) of subscribers with their consent
// evidence, for ?purpose= (default: the newsletter).
func (a *API) importSubscribers(w http.ResponseWriter, r *http.Request, sess account.Session) {
	purpose := r.URL.Query().Get("purpose")
	if purpose == "" {
		purpose = newsletter.Purpose
	}
	rep, err := a.Newsletter.Import(r.Context(), io.LimitReader(r.Body, 256<<20), purpose, sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if rep.Errors == nil {
		rep.Errors = []string{}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"rows": rep.Rows, "imported": rep.Imported, "existing": rep.Existing,
		"suppressed": rep.Suppressed, "invalid": rep.Invalid, "errors": rep.Errors})
}

type conflictResponse struct {
	ID        int64         `json:"id"`
	SubjectID string        `json:"subject_id"`
	Purpose   string        `json:"purpose"`
	Earlier   eventResponse `json:"earlier"`
	Later     eventResponse `json:"later"`
	At        time.Time     `json:"at"`
}

// conflicts shows staff (the DPO, support) where two sources of consent disagreed and
// which decision holds (the later).
func (a *API) conflicts(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Consent.Conflicts(r.Context(), 200)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The evidence of each decision is the member's (an address, a browser): shown, so
	// recorded for each member.
	subjects := make([]string, len(list))
	for i, c := range list {
		subjects[i] = c.SubjectID
	}
	if err := a.RecordReads(r, sess, "consent conflicts, with the evidence of the decisions", "consent conflicts review", subjects...); err != nil {
		a.fail(w, r, err)
		return
	}
	ev := func(e consent.Event) eventResponse {
		return eventResponse{ID: e.ID, Purpose: e.Purpose, Decision: string(e.Decision), Source: string(e.Source),
			PolicyVersion: e.PolicyVersion, Evidence: e.Evidence, At: e.At}
	}
	out := make([]conflictResponse, len(list))
	for i, c := range list {
		out[i] = conflictResponse{ID: c.ID, SubjectID: c.SubjectID, Purpose: c.Purpose, Earlier: ev(c.Earlier), Later: ev(c.Later), At: c.At}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"conflicts": out})
}
