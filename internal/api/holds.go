package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/holds"
	"steward/internal/server"
)

func (a *API) registerHolds(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/holds", a.auth(a.myHolds))
	mux.HandleFunc("POST /api/v1/staff/holds", a.staff(a.placeHold, holds.Role))
	mux.HandleFunc("GET /api/v1/staff/holds", a.staff(a.staffHolds, holds.Role))
	mux.HandleFunc("GET /api/v1/staff/holds/{hold}", a.staff(a.staffHold, holds.Role))
	mux.HandleFunc("POST /api/v1/staff/holds/{hold}/release", a.staff(a.sensitive(a.releaseHold), holds.Role))
}

type heldHolder struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

type holdResponse struct {
	ID         string       `json:"id"`
	Subject    string       `json:"subject,omitempty"` // staff only
	Holders    []heldHolder `json:"holders"`
	Reason     string       `json:"reason"`
	Until      time.Time    `json:"until,omitzero"` // absent: until released
	State      string       `json:"state"`
	PlacedAt   time.Time    `json:"placed_at"`
	PlacedBy   string       `json:"placed_by,omitempty"` // staff only
	ReleasedAt time.Time    `json:"released_at,omitzero"`
	ReleasedBy string       `json:"released_by,omitempty"` // staff only
}

func (a *API) toHold(h holds.Hold, staff bool) holdResponse {
	out := holdResponse{ID: h.ID, Reason: h.Reason, Until: h.Until, State: h.State(a.Now()), PlacedAt: h.PlacedAt, ReleasedAt: h.ReleasedAt}
	for _, n := range h.Holders {
		out.Holders = append(out.Holders, heldHolder{Name: n, Description: a.Holds.Describe(n)})
	}
	if staff {
		out.Subject, out.PlacedBy, out.ReleasedBy = h.SubjectID, h.PlacedBy, h.ReleasedBy
	}
	return out
}

func (a *API) toHolds(list []holds.Hold, staff bool) []holdResponse {
	out := make([]holdResponse, len(list))
	for i, h := range list {
		out[i] = a.toHold(h, staff)
	}
	return out
}

// myHolds lists the holds in force on the member: what an erasure would keep, and why.
func (a *API) myHolds(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Holds.InForce(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"holds": a.toHolds(list, false)})
}

type placeHoldRequest struct {
	Subject string   `json:"subject"`
	Holders []string `json:"holders"`
	Reason  string   `json:"reason"`
	Until   string   `json:"until"`
}

func (a *API) placeHold(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req placeHoldRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	until, err := holds.ParseUntil(req.Until)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h, err := a.Holds.Place(r.Context(), holds.Actor{ID: sess.AccountID, IP: a.ClientIP(r)},
		holds.Placement{Subject: req.Subject, Holders: req.Holders, Reason: req.Reason, Until: until})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/staff/holds/"+h.ID)
	server.WriteJSON(w, http.StatusCreated, a.toHold(h, true))
}

func (a *API) staffHolds(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Holds.List(r.Context(), r.URL.Query().Get("subject"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.recordHolds(r, sess, list...); err != nil {
		a.fail(w, r, err)
		return
	}
	holdable := []heldHolder{}
	for _, d := range a.Holds.Holdable() {
		holdable = append(holdable, heldHolder{Name: d.Name, Description: d.Description})
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"holds": a.toHolds(list, true), "holdable": holdable})
}

func (a *API) staffHold(w http.ResponseWriter, r *http.Request, sess account.Session) {
	h, err := a.Holds.Get(r.Context(), r.PathValue("hold"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.recordHolds(r, sess, h); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toHold(h, true))
}

func (a *API) releaseHold(w http.ResponseWriter, r *http.Request, sess account.Session) {
	h, err := a.Holds.Release(r.Context(), holds.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}, r.PathValue("hold"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toHold(h, true))
}

// recordHolds records the DPO's read of the holds' members (a hold's reason is about
// its member).
func (a *API) recordHolds(r *http.Request, sess account.Session, list ...holds.Hold) error {
	subjects := make([]string, len(list))
	for i, h := range list {
		subjects[i] = h.SubjectID
	}
	return a.RecordReads(r, sess, "legal holds", "legal hold review", subjects...)
}
