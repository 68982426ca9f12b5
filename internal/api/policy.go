package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/policy"
	"steward/internal/server"
)

func (a *API) registerPolicy(mux server.Router) {
	mux.HandleFunc("GET /api/v1/policy", a.currentPolicy)
	mux.HandleFunc("GET /api/v1/policy/versions", a.policyVersions)
	mux.HandleFunc("GET /api/v1/policy/versions/{version}", a.policyVersion)
	mux.HandleFunc("GET /api/v1/policy/diff", a.policyDiff)
	mux.HandleFunc("GET /api/v1/me/policy", a.auth(a.myPolicy))
	mux.HandleFunc("POST /api/v1/me/policy", a.auth(a.acceptPolicy))
	mux.HandleFunc("GET /api/v1/staff/policy", a.staff(a.staffPolicies, policy.Role))
	mux.HandleFunc("POST /api/v1/staff/policy", a.staff(a.draftPolicy, policy.Role))
	mux.HandleFunc("GET /api/v1/staff/policy/{version}", a.staff(a.staffPolicy, policy.Role))
	mux.HandleFunc("PUT /api/v1/staff/policy/{version}", a.staff(a.updatePolicy, policy.Role))
	mux.HandleFunc("POST /api/v1/staff/policy/{version}/publish", a.staff(a.sensitive(a.publishPolicy), policy.Role))
}

type policyResponse struct {
	Version     string    `json:"version"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Material    bool      `json:"material"`
	Controller  string    `json:"controller,omitempty"`
	Summary     string    `json:"summary"`
	Text        string    `json:"text,omitempty"` // Markdown
	Purposes    []string  `json:"purposes"`       // asked again
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	InEffect    bool      `json:"in_effect"`
	// Staff only: when it was applied and how many members were mailed.
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	Mailed    *int       `json:"mailed,omitempty"`
	MailDone  *bool      `json:"mail_done,omitempty"`
}

func (a *API) toPolicy(v policy.Version, text, staff bool) policyResponse {
	out := policyResponse{Version: v.Label, Kind: string(v.Kind), State: v.State, Material: v.Announced(), Controller: v.Controller,
		Summary: v.Summary, Purposes: a.Policy.Affected(v), EffectiveAt: v.EffectiveAt, PublishedAt: v.PublishedAt,
		InEffect: v.Published() && !v.EffectiveAt.After(a.Now())}
	if !v.Published() {
		out.Purposes, out.Material = v.Purposes, v.Material
	}
	if out.Purposes == nil {
		out.Purposes = []string{}
	}
	if text {
		out.Text = v.Body
	}
	if staff {
		applied, mailed, done := v.AppliedAt, v.Mailed, v.MailDone
		if !applied.IsZero() {
			out.AppliedAt = &applied
		}
		out.Mailed, out.MailDone = &mailed, &done
	}
	return out
}

func (a *API) currentPolicy(w http.ResponseWriter, r *http.Request) {
	v, err := a.Policy.Current(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toPolicy(v, true, false))
}

func (a *API) policyVersions(w http.ResponseWriter, r *http.Request) {
	list, err := a.Policy.List(r.Context(), false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []policyResponse{}
	for _, v := range list {
		out = append(out, a.toPolicy(v, false, false))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (a *API) policyVersion(w http.ResponseWriter, r *http.Request) {
	v, err := a.Policy.Published(r.Context(), r.PathValue("version"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toPolicy(v, true, false))
}

type diffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
	Old  int    `json:"old,omitempty"`
	New  int    `json:"new,omitempty"`
}

func (a *API) policyDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, lines, err := a.Policy.Compare(r.Context(), q.Get("from"), q.Get("to"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]diffLine, len(lines))
	for i, l := range lines {
		out[i] = diffLine{Op: string(l.Op), Text: l.Text, Old: l.Old, New: l.New}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"from": from.Label, "to": to.Label, "lines": out})
}

type acceptanceResponse struct {
	Version string    `json:"version"`
	Source  string    `json:"source"`
	At      time.Time `json:"at"`
}

type myPolicyResponse struct {
	Current  string               `json:"current"`
	Accepted []acceptanceResponse `json:"accepted"`
	// Pending is the material change or business transfer to read and accept.
	Pending *policyResponse `json:"pending,omitempty"`
	// Reconfirm are the purposes whose consents the change asks again.
	Reconfirm []string `json:"reconfirm"`
}

func (a *API) myPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	ctx := r.Context()
	cur, err := a.Policy.Current(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := myPolicyResponse{Current: cur.Label, Accepted: []acceptanceResponse{}, Reconfirm: []string{}}
	acc, err := a.Policy.Accepted(ctx, sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, x := range acc {
		out.Accepted = append(out.Accepted, acceptanceResponse{Version: x.Version, Source: x.Source, At: x.At})
	}
	v, pending, err := a.Policy.Pending(ctx, sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if pending {
		p := a.toPolicy(v, false, false)
		out.Pending = &p
	}
	asked, err := a.Policy.Reconfirm(ctx, sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, c := range asked {
		out.Reconfirm = append(out.Reconfirm, c.Purpose.Key)
	}
	server.WriteJSON(w, http.StatusOK, out)
}

type acceptPolicyRequest struct {
	Version string          `json:"version"`
	Choices map[string]bool `json:"choices"`
}

func (a *API) acceptPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req acceptPolicyRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.Policy.Accept(r.Context(), sess.AccountID, req.Version, req.Choices, map[string]string{"ip": a.ClientIP(r)}); err != nil {
		a.fail(w, r, err)
		return
	}
	a.myPolicy(w, r, sess)
}

func (a *API) staffPolicies(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := a.Policy.List(r.Context(), true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []policyResponse{}
	for _, v := range list {
		out = append(out, a.toPolicy(v, false, true))
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"versions": out})
}

func (a *API) staffPolicy(w http.ResponseWriter, r *http.Request, _ account.Session) {
	v, err := a.Policy.Get(r.Context(), r.PathValue("version"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toPolicy(v, true, true))
}

type policyDraftRequest struct {
	Version    string   `json:"version"`
	Kind       string   `json:"kind"`
	Text       string   `json:"text"`
	Summary    string   `json:"summary"`
	Material   bool     `json:"material"`
	Controller string   `json:"controller"`
	Purposes   []string `json:"purposes"`
	Effective  string   `json:"effective"` // YYYY-MM-DD or RFC 3339; "" when published
}

func (d policyDraftRequest) draft() policy.Draft {
	return policy.Draft{Label: d.Version, Kind: policy.Kind(d.Kind), Body: d.Text, Summary: d.Summary, Material: d.Material,
		Controller: d.Controller, Purposes: d.Purposes, Effective: d.Effective}
}

func (a *API) draftPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req policyDraftRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.Policy.Create(r.Context(), policy.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}, req.draft())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusCreated, a.toPolicy(v, true, true))
}

func (a *API) updatePolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req policyDraftRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.Policy.Update(r.Context(), policy.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}, r.PathValue("version"), req.draft())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toPolicy(v, true, true))
}

func (a *API) publishPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v, err := a.Policy.Publish(r.Context(), policy.Actor{ID: sess.AccountID, IP: a.ClientIP(r)}, r.PathValue("version"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, a.toPolicy(v, true, true))
}
