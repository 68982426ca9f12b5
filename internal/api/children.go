package api

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/server"
)

// registerChildren adds the routes a guardian uses for the children whose
// registration they agreed to.
func (a *API) registerChildren(mux server.Router) {
	mux.HandleFunc("GET /api/v1/me/children", a.auth(a.children))
	mux.HandleFunc("GET /api/v1/me/children/{id}", a.auth(a.child))
	mux.HandleFunc("GET /api/v1/me/children/{id}/consents", a.auth(a.childConsents))
	mux.HandleFunc("PUT /api/v1/me/children/{id}/consents", a.auth(a.putChildConsents))
	mux.HandleFunc("GET /api/v1/me/children/{id}/export", a.auth(a.childExport))
	mux.HandleFunc("DELETE /api/v1/me/children/{id}", a.auth(a.deleteChild))
}

func (a *API) children(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Accounts.Children(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]profileResponse, len(list))
	for i, p := range list {
		out[i] = toProfile(p)
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"children": out})
}

func (a *API) child(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p, err := a.Accounts.Child(r.Context(), sess.AccountID, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toProfile(p))
}

func (a *API) childConsents(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if _, err := a.Accounts.Child(r.Context(), sess.AccountID, r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	a.consentsFor(w, r, r.PathValue("id"))
}

type putChildConsentsRequest struct {
	Choices    map[string]bool `json:"choices"`
	Restricted *bool           `json:"restricted"`
}

// putChildConsents records a guardian's choices for the child: opt-ins, withdrawals,
// and the restriction that stops the collection of the child's data.
func (a *API) putChildConsents(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req putChildConsentsRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.SaveChildChoices(r, sess.AccountID, r.PathValue("id"), req.Choices, req.Restricted); err != nil {
		a.fail(w, r, err)
		return
	}
	a.consentsFor(w, r, r.PathValue("id"))
}

func (a *API) childExport(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.WriteChildExport(w, r, sess.AccountID, r.PathValue("id"), a.fail)
}

// deleteChild erases the child's account; the guardian gives their own password.
func (a *API) deleteChild(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req deleteRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	id, err := a.EraseChild(r, sess.AccountID, r.PathValue("id"), req.Password)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/erasures/"+id)
	server.WriteJSON(w, http.StatusAccepted, erasureResponse{RequestID: id, State: "pending", StepsDone: []string{}, CreatedAt: a.Now().UTC()})
}
