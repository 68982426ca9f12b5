package api

import (
	"mime"
	"net/http"
	"strconv"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/requests"
	"steward/internal/server"
)

func (a *API) registerRequests(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/requests", a.auth(a.myRequests))
	mux.HandleFunc("POST /api/v1/me/requests", a.auth(a.exercise))
	mux.HandleFunc("GET /api/v1/me/requests/{id}", a.auth(a.myRequest))
	mux.HandleFunc("POST /api/v1/me/requests/{id}/withdraw", a.auth(a.withdrawRequest))
	mux.HandleFunc("POST /api/v1/requests", a.submitVisitor)
	mux.HandleFunc("POST /api/v1/requests/confirm", a.confirmVisitor)
	mux.HandleFunc("GET /api/v1/staff/requests", a.staff(a.staffRequests, requests.WarnRole))
	mux.HandleFunc("GET /api/v1/staff/requests/{id}", a.staff(a.staffRequest, requests.WarnRole))
	mux.HandleFunc("POST /api/v1/staff/requests/{id}/state", a.staff(a.changeRequest, requests.WarnRole))
	mux.HandleFunc("POST /api/v1/staff/requests/{id}/extension", a.staff(a.extendRequest, requests.WarnRole))
	mux.HandleFunc("POST /api/v1/staff/requests/{id}/identity", a.staff(a.verifyIdentity, requests.WarnRole))
	mux.HandleFunc("POST /api/v1/staff/requests/{id}/rectification", a.staff(a.rectify, requests.WarnRole))
	mux.HandleFunc("GET /api/v1/staff/requests/{id}/document", a.staff(a.requestDocument, requests.WarnRole))
	mux.HandleFunc("POST /api/v1/requests/download", a.requestDownload)
}

type requestResponse struct {
	ID             string            `json:"id"`
	Right          string            `json:"right"`
	State          string            `json:"state"`
	Requester      string            `json:"requester"`
	ReceivedAt     time.Time         `json:"received_at"`
	DueDate        string            `json:"due_date"`
	Overdue        bool              `json:"overdue"`
	ExtendedMonths int               `json:"extended_months"`
	Details        string            `json:"details,omitempty"`
	RequesterName  string            `json:"requester_name,omitempty"` // staff: a visitor's
	NotifyEmail    string            `json:"notify_email,omitempty"`   // staff: a visitor's
	HeldEmail      string            `json:"held_email,omitempty"`     // staff: a visitor's
	UpdatedAt      time.Time         `json:"updated_at"`
	ClosedAt       time.Time         `json:"closed_at,omitzero"`
	Links          map[string]string `json:"links,omitempty"`
	Events         []requestEvent    `json:"events,omitempty"`
	Next           []string          `json:"next_states,omitempty"` // staff: the states it may move to
	Document       *documentResponse `json:"document,omitempty"`    // staff: a visitor's identity document
}

type documentResponse struct {
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Link        string `json:"link"`
}

type requestEvent struct {
	At      time.Time `json:"at"`
	Action  string    `json:"action"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to"`
	Actor   string    `json:"actor"`
	ActorID string    `json:"actor_id,omitempty"` // staff only
	Note    string    `json:"note,omitempty"`
}

func (a *API) toRequest(req requests.Request, evs []requests.Event, staff bool) requestResponse {
	out := requestResponse{ID: req.ID, Right: req.Right, State: req.State, Requester: req.Requester, ReceivedAt: req.ReceivedAt,
		DueDate: req.DueDate.String(), Overdue: req.Overdue(requests.DateOf(a.Now())), ExtendedMonths: req.ExtendedMonths,
		Details: req.Details, UpdatedAt: req.UpdatedAt, ClosedAt: req.ClosedAt}
	switch req.Right {
	case requests.Access, requests.Portability:
		out.Links = map[string]string{"export": "/api/v1/me/export"}
	case requests.Erasure:
		out.Links = map[string]string{"erasure": "/api/v1/erasures/" + req.ID}
	}
	for _, e := range evs {
		ev := requestEvent{At: e.At, Action: e.Action, From: e.From, To: e.To, Actor: e.Actor, Note: e.Note}
		if staff {
			ev.ActorID = e.ActorID
		}
		out.Events = append(out.Events, ev)
	}
	if staff {
		out.Next = requests.Next(req.State)
		out.RequesterName, out.NotifyEmail, out.HeldEmail = req.RequesterName, req.NotifyEmail, req.HeldEmail
		if d := req.Document; d != nil {
			out.Document = &documentResponse{ContentType: d.ContentType, Size: d.Size, Link: "/api/v1/staff/requests/" + req.ID + "/document"}
		}
	}
	return out
}

type contactsResponse struct {
	DPO                  string `json:"dpo"`
	EURepresentative     string `json:"eu_representative"`
	SupervisoryAuthority string `json:"supervisory_authority"`
}

func (a *API) myRequests(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Requests.List(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]requestResponse, len(list))
	for i, req := range list {
		out[i] = a.toRequest(req, nil, false)
	}
	held, err := a.Holds.InForce(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c := a.Contacts
	server.WriteJSON(w, http.StatusOK, map[string]any{"requests": out, "rights": requests.Rights, "holds": a.toHolds(held, false),
		"contacts": contactsResponse{DPO: c.DPO, EURepresentative: c.EURepresentative, SupervisoryAuthority: c.Authority}})
}

type exerciseRequest struct {
	Right      string `json:"right"`
	Details    string `json:"details"`
	Restricted *bool  `json:"restricted"`
	Purpose    string `json:"purpose"`
	Password   string `json:"password"`
}

// exercise exercises a right: 201 with the request recorded, 200 with the open request
// the same submission made before, 202 for an erasure, which runs in the background.
func (a *API) exercise(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req exerciseRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	done, err := a.Exercise(r, sess.AccountID, server.Exercise(req), consent.SourceAPI)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	switch {
	case done.ErasureID != "":
		status = http.StatusAccepted
		w.Header().Set("Location", "/api/v1/erasures/"+done.ErasureID)
	case !done.Created:
		status = http.StatusOK
	default:
		w.Header().Set("Location", "/api/v1/me/requests/"+done.Request.ID)
	}
	server.WriteJSON(w, status, a.toRequest(done.Request, nil, false))
}

func (a *API) myRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	req, evs, err := a.Requests.GetOwn(r.Context(), sess.AccountID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toRequest(req, evs, false))
}

func (a *API) withdrawRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	req, err := a.Requests.Withdraw(r.Context(), sess.AccountID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toRequest(req, nil, false))
}

// staffRequests is the DPO's queue: ?state= (a state, or open) and ?due_before=
// (YYYY-MM-DD), the soonest due first.
func (a *API) staffRequests(w http.ResponseWriter, r *http.Request, sess account.Session) {
	q := r.URL.Query()
	f := requests.Filter{State: q.Get("state")}
	if v := q.Get("due_before"); v != "" {
		d, err := requests.ParseDate(v)
		if err != nil {
			a.fail(w, r, apperr.Field("due_before", "date_invalid", "must be a date: YYYY-MM-DD"))
			return
		}
		f.DueBefore = d
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			a.fail(w, r, apperr.Field("limit", "limit_invalid", "must be a number from 1 to 200"))
			return
		}
		f.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10_000_000 {
			a.fail(w, r, apperr.Field("offset", "offset_invalid", "must be a number from 0"))
			return
		}
		f.Offset = n
	}
	total, err := a.Requests.QueueCount(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list, err := a.Requests.Queue(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sum, err := a.Requests.Due(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.RecordRequestReads(r, sess, "privacy requests queue", list...); err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]requestResponse, len(list))
	for i, req := range list {
		out[i] = a.toRequest(req, nil, true)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"requests": out, "total": total, "overdue": sum.Overdue, "due_soon": sum.Soon})
}

func (a *API) staffRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	req, evs, err := a.Requests.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.RecordRequestReads(r, sess, "privacy request", req); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toRequest(req, evs, true))
}

type changeRequest struct {
	State string `json:"state"`
	Note  string `json:"note"`
}

func (a *API) changeRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var body changeRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.State == requests.Done && !a.Accounts.Recent(sess) {
		// Closing a request as done is sensitive (a.sensitive's rule; the body is read
		// to know it).
		a.fail(w, r, server.ErrReauthRequired)
		return
	}
	by := requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: a.ClientIP(r)}
	if _, err := a.WorkRequest(r, r.PathValue("id"), requests.Change(body), by); err != nil {
		a.fail(w, r, err)
		return
	}
	a.staffRequest(w, r, sess)
}

type extensionRequest struct {
	Months int    `json:"months"`
	Reason string `json:"reason"`
}

func (a *API) extendRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var body extensionRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	by := requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: a.ClientIP(r)}
	if _, err := a.Requests.Extend(r.Context(), r.PathValue("id"), body.Months, body.Reason, by); err != nil {
		a.fail(w, r, err)
		return
	}
	a.staffRequest(w, r, sess)
}

type visitorRequest struct {
	Name      string `json:"name"`
	Email     string `json:"email"`
	HeldEmail string `json:"held_email"`
	Right     string `json:"right"`
	Details   string `json:"details"`
}

// submitVisitor takes a request without a login: 202 whether or not anyone is known
// by the addresses; the notification address gets a link to confirm it.
// A multipart/form-data body carries the same fields and a copy of an identity
// document in the part named document; JSON carries none.
func (a *API) submitVisitor(w http.ResponseWriter, r *http.Request) {
	var v requests.VisitorSubmission
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		var err error
		if v, err = a.VisitorFrom(w, r); err != nil {
			a.fail(w, r, err)
			return
		}
	} else {
		var req visitorRequest
		if err := server.DecodeJSON(w, r, &req); err != nil {
			a.fail(w, r, err)
			return
		}
		v = requests.VisitorSubmission{Name: req.Name, NotifyEmail: req.Email, HeldEmail: req.HeldEmail, Right: req.Right, Details: req.Details}
	}
	if err := a.SubmitVisitorLimited(r, v); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "confirmation_sent"})
}

type confirmVisitorRequest struct {
	Token string `json:"token"`
}

// confirmVisitor confirms a request made without a login: 200 with its right, state
// and due date, which start now.
func (a *API) confirmVisitor(w http.ResponseWriter, r *http.Request) {
	var body confirmVisitorRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	req, err := a.Requests.Confirm(r.Context(), body.Token)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"id": req.ID, "right": req.Right, "state": req.State, "due_date": req.DueDate.String()})
}

type identityRequest struct {
	Verified *bool  `json:"verified"`
	Note     string `json:"note"`
}

// verifyIdentity records staff's decision on a visitor's identity: verified moves the
// request on, not verified refuses it with the note as the reason.
func (a *API) verifyIdentity(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var body identityRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.Verified == nil {
		a.fail(w, r, apperr.Field("verified", "required", "is required: true when the identity is shown, false to refuse the request"))
		return
	}
	by := requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: a.ClientIP(r)}
	if _, err := a.Requests.VerifyIdentity(r.Context(), r.PathValue("id"), *body.Verified, body.Note, by); err != nil {
		a.fail(w, r, err)
		return
	}
	a.staffRequest(w, r, sess)
}

type rectificationRequest struct {
	Name            *string `json:"name"`
	Phone           *string `json:"phone"`
	HomeAddress     *string `json:"home_address"`
	BusinessAddress *string `json:"business_address"`
	Birthdate       *string `json:"birthdate"`
	Country         *string `json:"country"`
}

// rectify applies staff's correction answering a rectification request.
func (a *API) rectify(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var body rectificationRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	by := requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: a.ClientIP(r)}
	if _, err := a.Rectify(r, r.PathValue("id"), server.Rectification(body), by); err != nil {
		a.fail(w, r, err)
		return
	}
	a.staffRequest(w, r, sess)
}

// requestDocument answers with a visitor's identity document, as an attachment.
func (a *API) requestDocument(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.ServeRequestDocument(w, r, requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: a.ClientIP(r)}, a.fail)
}

type downloadRequest struct {
	Token string `json:"token"`
}

// requestDownload uses a one-time download link: the ZIP export it delivers.
func (a *API) requestDownload(w http.ResponseWriter, r *http.Request) {
	var body downloadRequest
	if err := server.DecodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	a.WriteRequestDownload(w, r, body.Token, a.fail)
}
