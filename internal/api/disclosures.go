package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/disclosures"
	"steward/internal/server"
)

func (a *API) registerDisclosures(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/disclosures", a.auth(a.myDisclosures))
	mux.HandleFunc("GET /api/v1/staff/disclosures", a.staff(a.staffDisclosures, disclosures.Role))
	mux.HandleFunc("POST /api/v1/staff/disclosures", a.staff(a.recordDisclosure, disclosures.Role))
	mux.HandleFunc("GET /api/v1/staff/disclosures/{id}", a.staff(a.staffDisclosure, disclosures.Role))
	mux.HandleFunc("GET /api/v1/staff/disclosures/{id}/document", a.staff(a.disclosureDocument, disclosures.Role))
	mux.HandleFunc("POST /api/v1/staff/disclosures/{id}/lift", a.staff(a.sensitive(a.liftDisclosure), disclosures.Role))
	mux.HandleFunc("POST /api/v1/staff/disclosures/{id}/postpone", a.staff(a.postponeDisclosure, disclosures.Role))
}

type linkedResponse struct {
	Subject string    `json:"subject"`
	ToldAt  time.Time `json:"told_at,omitzero"` // absent: not told yet
}

type disclosureResponse struct {
	ID             string           `json:"id"`
	Authority      string           `json:"authority"`
	LegalBasis     string           `json:"legal_basis"`
	Categories     []string         `json:"categories"`
	What           string           `json:"what"`
	DisclosedAt    time.Time        `json:"disclosed_at"`
	RecordedAt     time.Time        `json:"recorded_at"`
	RecordedBy     string           `json:"recorded_by,omitempty"`
	Document       documentResponse `json:"document"`
	Withheld       bool             `json:"withheld"`
	WithholdReason string           `json:"withhold_reason,omitempty"`
	ReviewAt       time.Time        `json:"review_at,omitzero"`
	DueForReview   bool             `json:"due_for_review"`
	LiftedAt       time.Time        `json:"lifted_at,omitzero"`
	Members        int              `json:"members"`
	Linked         []linkedResponse `json:"linked"`
}

func (a *API) toDisclosure(d disclosures.Disclosure) disclosureResponse {
	out := disclosureResponse{ID: d.ID, Authority: d.Authority, LegalBasis: d.LegalBasis, Categories: d.Categories, What: d.What,
		DisclosedAt: d.DisclosedAt, RecordedAt: d.RecordedAt, RecordedBy: d.RecordedBy,
		Document: documentResponse{ContentType: d.Document.ContentType, Size: d.Document.Size, Link: "/api/v1/staff/disclosures/" + d.ID + "/document"},
		Withheld: d.Withheld(), WithholdReason: d.WithholdReason, ReviewAt: d.ReviewAt, DueForReview: d.DueForReview(a.Now()),
		LiftedAt: d.LiftedAt, Members: d.Members, Linked: []linkedResponse{}}
	for _, l := range d.Subjects {
		out.Linked = append(out.Linked, linkedResponse{Subject: l.SubjectID, ToldAt: l.ToldAt})
	}
	return out
}

type toldResponse struct {
	ID          string    `json:"id"`
	Authority   string    `json:"authority"`
	LegalBasis  string    `json:"legal_basis"`
	Categories  []string  `json:"categories"`
	What        string    `json:"what"`
	DisclosedAt time.Time `json:"disclosed_at"`
	ToldAt      time.Time `json:"told_at"`
}

// myDisclosures lists the disclosures of the member's data they have been told of.
func (a *API) myDisclosures(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Disclosures.ForMember(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []toldResponse{}
	for _, t := range list {
		out = append(out, toldResponse{ID: t.ID, Authority: t.Authority, LegalBasis: t.LegalBasis, Categories: t.Categories, What: t.What,
			DisclosedAt: t.DisclosedAt, ToldAt: t.ToldAt})
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"disclosures": out})
}

func (a *API) staffDisclosures(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.Disclosures.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []disclosureResponse{}
	due := 0
	for _, d := range list {
		out = append(out, a.toDisclosure(d))
		if d.DueForReview(a.Now()) {
			due++
		}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"disclosures": out, "due_for_review": due})
}

func (a *API) disclosureActor(r *http.Request, sess account.Session) disclosures.Actor {
	return disclosures.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}
}

// recordDisclosure takes a multipart/form-data body (server.DisclosureFrom): the
// document is required.
func (a *API) recordDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	rec, _, err := a.DisclosureFrom(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, err := a.Disclosures.Record(r.Context(), a.disclosureActor(r, sess), rec)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/staff/disclosures/"+d.ID)
	server.WriteJSON(w, http.StatusCreated, a.toDisclosure(d))
}

func (a *API) staffDisclosure(w http.ResponseWriter, r *http.Request, _ account.Session) {
	d, err := a.Disclosures.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toDisclosure(d))
}

func (a *API) disclosureDocument(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.ServeDisclosureDocument(w, r, a.disclosureActor(r, sess), a.fail)
}

func (a *API) liftDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	d, err := a.Disclosures.Lift(r.Context(), a.disclosureActor(r, sess), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toDisclosure(d))
}

type postponeRequest struct {
	Reason   string `json:"withhold_reason"`
	ReviewAt string `json:"review_at"`
}

func (a *API) postponeDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req postponeRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	review, err := server.ParseDay("review_at", req.ReviewAt, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, err := a.Disclosures.Postpone(r.Context(), a.disclosureActor(r, sess), r.PathValue("id"), req.Reason, review)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toDisclosure(d))
}
