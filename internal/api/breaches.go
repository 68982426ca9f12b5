package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/breaches"
	"steward/internal/server"
)

func (a *API) registerBreaches(mux server.Router) {
	mux.HandleFunc("GET /api/v1/staff/breaches", a.staff(a.staffBreaches, breaches.Role))
	mux.HandleFunc("POST /api/v1/staff/breaches", a.staff(a.recordBreach, breaches.Role))
	mux.HandleFunc("GET /api/v1/staff/breaches/{id}", a.staff(a.staffBreach, breaches.Role))
	mux.HandleFunc("POST /api/v1/staff/breaches/{id}/members", a.staff(a.selectBreachMembers, breaches.Role))
	mux.HandleFunc("POST /api/v1/staff/breaches/{id}/report", a.staff(a.reportBreach, breaches.Role))
	mux.HandleFunc("POST /api/v1/staff/breaches/{id}/notify", a.staff(a.sensitive(a.notifyBreach), breaches.Role))
}

type breachResponse struct {
	ID           string    `json:"id"`
	Description  string    `json:"description"`
	DiscoveredAt time.Time `json:"discovered_at"`
	Categories   []string  `json:"categories"`
	Consequences string    `json:"consequences"`
	Measures     string    `json:"measures"`
	RecordedAt   time.Time `json:"recorded_at"`
	RecordedBy   string    `json:"recorded_by,omitempty"`
	// The clock to the authority: its deadline, its state (open, overdue, reported,
	// reported_late) and the seconds left (negative: overdue) while not reported.
	Deadline    time.Time `json:"deadline"`
	State       string    `json:"state"`
	SecondsLeft *int64    `json:"seconds_left,omitempty"`
	ReportedAt  time.Time `json:"reported_at,omitzero"`
	Reference   string    `json:"reference,omitempty"`
	DelayReason string    `json:"delay_reason,omitempty"`
	Affected    int       `json:"affected"`
	Linked      int       `json:"linked"`
	Notified    int       `json:"notified"`
}

func (a *API) toBreach(b breaches.Breach) breachResponse {
	now := a.Now()
	out := breachResponse{ID: b.ID, Description: b.Description, DiscoveredAt: b.DiscoveredAt, Categories: b.Categories,
		Consequences: b.Consequences, Measures: b.Measures, RecordedAt: b.RecordedAt, RecordedBy: b.RecordedBy,
		Deadline: b.Deadline(), State: b.State(now), ReportedAt: b.ReportedAt, Reference: b.Reference, DelayReason: b.DelayReason,
		Affected: b.Affected, Linked: b.Linked, Notified: b.Notified}
	if b.ReportedAt.IsZero() {
		left := int64(b.Left(now) / time.Second)
		out.SecondsLeft = &left
	}
	return out
}

func (a *API) staffBreaches(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.Breaches.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []breachResponse{}
	for _, b := range list {
		out = append(out, a.toBreach(b))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"breaches": out})
}

func (a *API) breachActor(r *http.Request, sess account.Session) breaches.Actor {
	return breaches.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}
}

type breachRequest struct {
	Description  string   `json:"description"`
	DiscoveredAt string   `json:"discovered_at"`
	Categories   []string `json:"categories"`
	Consequences string   `json:"consequences"`
	Measures     string   `json:"measures"`
}

func (a *API) recordBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req breachRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	at, err := server.ParseDay("discovered_at", req.DiscoveredAt, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.Breaches.Record(r.Context(), a.breachActor(r, sess), breaches.Report{Description: req.Description, DiscoveredAt: at,
		Categories: req.Categories, Consequences: req.Consequences, Measures: req.Measures})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/staff/breaches/"+b.ID)
	server.WriteJSON(w, http.StatusCreated, a.toBreach(b))
}

func (a *API) staffBreach(w http.ResponseWriter, r *http.Request, _ account.Session) {
	b, err := a.Breaches.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toBreach(b))
}

type selectionRequest struct {
	Emails      []string `json:"emails"`
	CreatedFrom string   `json:"created_from"`
	CreatedTo   string   `json:"created_to"`
	Purpose     string   `json:"purpose"`
	Preview     bool     `json:"preview"`
}

// selectBreachMembers links the members a selection finds to the breach, or with
// preview only counts them.
func (a *API) selectBreachMembers(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req selectionRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	sel, err := breachSelection(req.Emails, req.CreatedFrom, req.CreatedTo, req.Purpose)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	got, err := a.Breaches.Select(r.Context(), a.breachActor(r, sess), r.PathValue("id"), sel, req.Preview)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"matched": got.Matched, "added": got.Added, "preview": req.Preview})
}

// breachSelection reads a selection's days: created_to is inclusive (to its end).
func breachSelection(emails []string, from, to, purpose string) (breaches.Selection, error) {
	sel := breaches.Selection{Emails: emails, Purpose: purpose}
	var err error
	if sel.CreatedFrom, err = server.ParseDay("created_from", from, false); err != nil {
		return sel, err
	}
	sel.CreatedTo, err = server.ParseDay("created_to", to, true)
	return sel, err
}

type reportRequest struct {
	ReportedAt  string `json:"reported_at"`
	Reference   string `json:"reference"`
	DelayReason string `json:"delay_reason"`
}

func (a *API) reportBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req reportRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	at, err := server.ParseDay("reported_at", req.ReportedAt, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.Breaches.ReportToAuthority(r.Context(), a.breachActor(r, sess), r.PathValue("id"), at, req.Reference, req.DelayReason)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toBreach(b))
}

func (a *API) notifyBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	n, err := a.Breaches.Notify(r.Context(), a.breachActor(r, sess), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.Breaches.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"sent": n, "breach": a.toBreach(b)})
}
