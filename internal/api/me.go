package api

import (
	"net/http"
	"slices"
	"time"

	"steward/internal/account"
	"steward/internal/server"
)

type profileResponse struct {
	ID                string          `json:"id"`
	Email             string          `json:"email"`
	PendingEmail      string          `json:"pending_email,omitempty"`
	EmailVerified     bool            `json:"email_verified"`
	Status            string          `json:"status"`
	Name              string          `json:"name"`
	Phone             string          `json:"phone"`
	HomeAddress       string          `json:"home_address"`
	BusinessAddress   string          `json:"business_address"`
	Birthdate         string          `json:"birthdate"`
	Country           string          `json:"country"`
	GuardianEmail     string          `json:"guardian_email,omitempty"`
	GuardianConfirmed bool            `json:"guardian_confirmed,omitempty"`
	Public            map[string]bool `json:"public"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
}

func toProfile(p account.Profile) profileResponse {
	return profileResponse{
		ID: p.ID, Email: p.Email, PendingEmail: p.PendingEmail, EmailVerified: p.EmailVerified, Status: string(p.Status),
		Name: p.Name, Phone: p.Phone, HomeAddress: p.HomeAddress, BusinessAddress: p.BusinessAddress,
		Birthdate: p.Birthdate, Country: p.Country, GuardianEmail: p.GuardianEmail, GuardianConfirmed: p.GuardianConfirmed,
		Public: p.Public, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// AppendJSON writes the profile as encoding/json would (TestProfileAppendJSON compares
// the two): GET /api/v1/me is the route every page and client calls most.
func (p profileResponse) AppendJSON(b []byte) []byte {
	str := func(name, v string) {
		b = append(b, name...)
		b = server.AppendJSONString(b, v)
	}
	str(`{"id":`, p.ID)
	str(`,"email":`, p.Email)
	if p.PendingEmail != "" {
		str(`,"pending_email":`, p.PendingEmail)
	}
	b = server.AppendJSONBool(append(b, `,"email_verified":`...), p.EmailVerified)
	str(`,"status":`, p.Status)
	str(`,"name":`, p.Name)
	str(`,"phone":`, p.Phone)
	str(`,"home_address":`, p.HomeAddress)
	str(`,"business_address":`, p.BusinessAddress)
	str(`,"birthdate":`, p.Birthdate)
	str(`,"country":`, p.Country)
	if p.GuardianEmail != "" {
		str(`,"guardian_email":`, p.GuardianEmail)
	}
	if p.GuardianConfirmed {
		b = append(b, `,"guardian_confirmed":true`...)
	}
	b = append(b, `,"public":`...)
	if p.Public == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(p.Public))
		for k := range p.Public {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = server.AppendJSONBool(append(server.AppendJSONString(b, k), ':'), p.Public[k])
		}
		b = append(b, '}')
	}
	b = server.AppendJSONTime(append(b, `,"created_at":`...), p.CreatedAt)
	b = server.AppendJSONTime(append(b, `,"updated_at":`...), p.UpdatedAt)
	return append(b, '}')
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	_, p, err := a.Accounts.SessionProfile(r.Context(), server.Token(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
		a.fail(w, r, err)
		return
	}
	if err := a.GPC(r, p.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toProfile(p))
}

type patchRequest struct {
	Email           *string         `json:"email"`
	Name            *string         `json:"name"`
	Phone           *string         `json:"phone"`
	HomeAddress     *string         `json:"home_address"`
	BusinessAddress *string         `json:"business_address"`
	Birthdate       *string         `json:"birthdate"`
	Country         *string         `json:"country"`
	Public          map[string]bool `json:"public"`
	CurrentPassword string          `json:"current_password"`
	RequestID       string          `json:"-"` // a member's own change answers no request
	Staff           bool            `json:"-"` // a member is not staff answering a request
}

func (a *API) updateMe(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req patchRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.CurrentPassword != "" {
		if err := a.Limits.PasswordCheck(r.Context(), sess.AccountID); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	p, err := a.Accounts.Update(r.Context(), sess.AccountID, account.Patch(req), a.Meta(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toProfile(p))
}

type deleteRequest struct {
	Password string `json:"password"`
}

type erasureResponse struct {
	RequestID   string    `json:"request_id"`
	State       string    `json:"state"`
	StepsDone   []string  `json:"steps_done"`
	CreatedAt   time.Time `json:"created_at"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Kept is what legal holds keep while the request is holding: what, why and until
	// when (P-ERASE-2).
	Kept []holdResponse `json:"kept,omitempty"`
}

func (a *API) deleteMe(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req deleteRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Limits.PasswordCheck(r.Context(), sess.AccountID); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Accounts.CheckPassword(r.Context(), sess.AccountID, "password", req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	subj, err := a.Accounts.Subject(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	id, err := a.Rights.RequestErasure(r.Context(), subj, "member")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/erasures/"+id)
	server.WriteJSON(w, http.StatusAccepted, erasureResponse{RequestID: id, State: "pending", StepsDone: []string{}, CreatedAt: a.Now().UTC()})
}

// erasure shows the state of an erasure request to whoever holds its random id (the
// member has no session any more to ask with): no personal data but, while legal holds
// keep some, what they keep, their reasons and until when, which the member is told.
func (a *API) erasure(w http.ResponseWriter, r *http.Request) {
	req, err := a.Rights.Request(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	steps := req.StepsDone
	if steps == nil {
		steps = []string{}
	}
	kept, err := a.ErasureHolds(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, erasureResponse{RequestID: req.ID, State: req.State, StepsDone: steps,
		CreatedAt: req.CreatedAt, CompletedAt: req.CompletedAt, Kept: a.toHolds(kept, false)})
}

func (a *API) export(w http.ResponseWriter, r *http.Request, sess account.Session) {
	subj, err := a.Accounts.Subject(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.WriteExport(w, r, subj, a.fail)
}

type activityEntry struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	IP     string    `json:"ip"`
	Detail string    `json:"detail,omitempty"`
}

func (a *API) activity(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Accounts.Activity(r.Context(), sess.AccountID, 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]activityEntry, len(list))
	for i, e := range list {
		out[i] = activityEntry(e)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
}

type publicResponse struct {
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

func (a *API) publicProfile(w http.ResponseWriter, r *http.Request) {
	p, err := a.PublicProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := publicResponse{ID: p.ID, Fields: map[string]string{}}
	for _, f := range p.Fields {
		out.Fields[f.Name] = f.Value
	}
	server.WriteJSON(w, http.StatusOK, out)
}
