package api

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/newsletter"
	"steward/internal/server"
)

// campaignPatch changes a draft: the fields given replace the draft's.
type campaignPatch struct {
	Purpose *string `json:"purpose"`
	Subject *string `json:"subject"`
	Body    *string `json:"body"`
}

// updateCampaign changes a draft; a campaign being sent or sent is a conflict (409).
func (a *API) updateCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	var req campaignPatch
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.Newsletter.UpdateCampaign(r.Context(), r.PathValue("id"), newsletter.CampaignEdit(req))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, toCampaign(c))
}

// deleteCampaign deletes a draft; a campaign being sent or sent is a conflict (409).
func (a *API) deleteCampaign(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := a.Newsletter.DeleteCampaign(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// testCampaign sends the campaign as a test to the caller's own confirmed address.
func (a *API) testCampaign(w http.ResponseWriter, r *http.Request, sess account.Session) {
	m, err := a.SendTestLimited(r, sess, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"to": m.To, "subject": m.Subject})
}
