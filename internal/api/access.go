package api

import (
	"net/http"
	"time"

	"steward/internal/access"
	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/server"
)

func (a *API) registerAccess(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/staff-access", a.auth(a.myStaffAccess))
	mux.HandleFunc("POST /api/v1/me/staff-access/{id}/decision", a.auth(a.decideMyGrant))
	mux.HandleFunc("POST /api/v1/me/staff-access/{id}/revoke", a.auth(a.revokeMyGrant))
	mux.HandleFunc("GET /api/v1/staff/members/{id}", a.staff(a.staffMember, server.MemberViewRoles...))
	mux.HandleFunc("GET /api/v1/staff/members/{id}/files/{file}", a.staff(a.staffMemberFile, server.MemberViewRoles...))
	mux.HandleFunc("GET /api/v1/staff/grants", a.staff(a.staffGrants, server.GrantRoles...))
	mux.HandleFunc("POST /api/v1/staff/grants", a.staff(a.requestGrant, access.RoleSupport))
	mux.HandleFunc("POST /api/v1/staff/grants/{id}/decision", a.staff(a.decideGrant, access.RoleDPO))
	mux.HandleFunc("POST /api/v1/staff/grants/{id}/revoke", a.staff(a.revokeGrant, server.GrantRoles...))
}

type grantResponse struct {
	ID          string    `json:"id"`
	Member      string    `json:"member,omitempty"` // staff: the member's account id
	Staff       string    `json:"staff"`            // the staff member's name
	Scopes      []string  `json:"scopes"`
	Reason      string    `json:"reason"`
	Hours       int       `json:"hours"`
	State       string    `json:"state"`
	RequestedAt time.Time `json:"requested_at"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
}

func (a *API) toGrant(g access.Grant, staff bool) grantResponse {
	out := grantResponse{ID: g.ID, Staff: "support: " + g.StaffName, Scopes: g.Scopes, Reason: g.Reason, Hours: int(g.Duration / time.Hour),
		State: g.State(a.Now()), RequestedAt: g.RequestedAt, DecidedAt: g.DecidedAt, ExpiresAt: g.ExpiresAt, RevokedAt: g.RevokedAt}
	if staff {
		out.Member = g.SubjectID
	}
	return out
}

func (a *API) toGrants(list []access.Grant, staff bool) []grantResponse {
	out := make([]grantResponse, len(list))
	for i, g := range list {
		out[i] = a.toGrant(g, staff)
	}
	return out
}

type readResponse struct {
	At   time.Time `json:"at"`
	Role string    `json:"role"`
	Name string    `json:"name"`
	What string    `json:"what"`
	Why  string    `json:"why"`
}

// myStaffAccess is the member's "who accessed my data": every staff read of it, and
// the grants support asked for (pending ones to approve or refuse).
func (a *API) myStaffAccess(w http.ResponseWriter, r *http.Request, sess account.Session) {
	reads, err := a.Access.Reads(r.Context(), sess.AccountID, 200)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	grants, err := a.Access.OfMember(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]readResponse, len(reads))
	for i, rd := range reads {
		out[i] = readResponse{At: rd.At, Role: rd.Role, Name: rd.Name, What: rd.What, Why: rd.Why}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"reads": out, "grants": a.toGrants(grants, false),
		"member_approves": a.Access.MemberApproves()})
}

type decisionRequest struct {
	Approve *bool `json:"approve"`
}

func (a *API) decision(w http.ResponseWriter, r *http.Request) (bool, bool) {
	var req decisionRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return false, false
	}
	if req.Approve == nil {
		a.fail(w, r, apperr.Field("approve", "required", "is required: true to approve, false to refuse"))
		return false, false
	}
	return *req.Approve, true
}

func (a *API) decideMyGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	approve, ok := a.decision(w, r)
	if !ok {
		return
	}
	g, err := a.Access.Decide(r.Context(), access.Decider{MemberID: sess.AccountID}, r.PathValue("id"), approve)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toGrant(g, false))
}

func (a *API) revokeMyGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	g, err := a.Access.Revoke(r.Context(), access.Viewer{ID: sess.AccountID, IP: a.ClientIP(r)}, r.PathValue("id"), false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toGrant(g, false))
}

type staffMemberResponse struct {
	ID       string            `json:"id"`
	Shown    []string          `json:"shown"`
	Why      string            `json:"why"`
	Profile  *profileResponse  `json:"profile,omitempty"`
	Consents []staffChoice     `json:"consents,omitempty"`
	Flags    map[string]bool   `json:"flags,omitempty"`
	Requests []requestResponse `json:"requests,omitempty"`
	Files    []fileResponse    `json:"files,omitempty"`
}

type staffChoice struct {
	Purpose  string    `json:"purpose"`
	Decision string    `json:"decision"`
	Source   string    `json:"source,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// staffMember is the staff member-view: what the viewer may read of the member, each
// read recorded for the member. Support without a live grant: 403.
func (a *API) staffMember(w http.ResponseWriter, r *http.Request, sess account.Session) {
	m, err := a.StaffMember(r, sess, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := staffMemberResponse{ID: m.ID, Shown: m.Shown, Why: m.Why}
	if m.Has(access.ScopeProfile) {
		p := toProfile(m.Profile)
		out.Profile = &p
	}
	if m.Has(access.ScopeConsents) {
		out.Consents = []staffChoice{}
		for _, c := range m.Choices {
			out.Consents = append(out.Consents, staffChoice{Purpose: c.Purpose.Key, Decision: string(c.Decision), Source: string(c.Source), At: c.At})
		}
		out.Flags = map[string]bool{"restricted": m.Flags.Restricted, "objected": m.Flags.Objected}
	}
	if m.Has(access.ScopeRequests) {
		out.Requests = []requestResponse{}
		for _, req := range m.Requests {
			out.Requests = append(out.Requests, a.toRequest(req, nil, false))
		}
	}
	if m.Has(access.ScopeFiles) {
		out.Files = []fileResponse{}
		for _, f := range m.Files {
			out.Files = append(out.Files, toFile(f))
		}
	}
	server.WriteJSON(w, http.StatusOK, out)
}

func (a *API) staffMemberFile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.ServeStaffFile(w, r, sess, r.PathValue("id"), r.PathValue("file"), a.fail)
}

// staffGrants lists the grants the staff member asked for, and for a DPO (when DPOs
// approve) the grants waiting for a decision.
func (a *API) staffGrants(w http.ResponseWriter, r *http.Request, sess account.Session) {
	mine, err := a.Access.OfStaff(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := map[string]any{"grants": a.toGrants(mine, true), "approver": a.Access.Approver()}
	dpo, err := a.Staff.HasAny(r.Context(), sess.AccountID, access.RoleDPO)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if dpo && a.Access.DPOApproves() {
		pending, err := a.Access.Pending(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out["pending"] = a.toGrants(pending, true)
	}
	server.WriteJSON(w, http.StatusOK, out)
}

type grantRequest struct {
	Member string   `json:"member"`
	Scopes []string `json:"scopes"`
	Reason string   `json:"reason"`
	Hours  int      `json:"hours"`
}

func (a *API) requestGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req grantRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.Viewer(r, sess)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := a.Access.Request(r.Context(), v, access.Ask{Subject: req.Member, Scopes: req.Scopes, Reason: req.Reason,
		Duration: time.Duration(req.Hours) * time.Hour})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/staff/grants/"+g.ID)
	server.WriteJSON(w, http.StatusCreated, a.toGrant(g, true))
}

func (a *API) decideGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	approve, ok := a.decision(w, r)
	if !ok {
		return
	}
	v, err := a.Viewer(r, sess)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := a.Access.Decide(r.Context(), access.Decider{DPO: v}, r.PathValue("id"), approve)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toGrant(g, true))
}

func (a *API) revokeGrant(w http.ResponseWriter, r *http.Request, sess account.Session) {
	dpo, err := a.Staff.HasAny(r.Context(), sess.AccountID, access.RoleDPO)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	g, err := a.Access.Revoke(r.Context(), access.Viewer{ID: sess.AccountID, IP: a.ClientIP(r)}, r.PathValue("id"), dpo)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toGrant(g, true))
}
