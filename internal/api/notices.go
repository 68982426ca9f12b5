package api

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/notices"
	"steward/internal/server"
)

// registerNotices adds the dpo's routes of the processors' notices: the list, an open
// task (with the address to tell the processor), and closing a task.
func (a *API) registerNotices(mux server.Router) {
	mux.HandleFunc("GET /api/v1/staff/processor-notices", a.staff(a.notices, "dpo"))
	mux.HandleFunc("GET /api/v1/staff/processor-notices/{id}", a.staff(a.noticeTask, "dpo"))
	mux.HandleFunc("POST /api/v1/staff/processor-notices/{id}/done", a.staff(a.closeNoticeTask, "dpo"))
}

func (a *API) notices(w http.ResponseWriter, r *http.Request, _ account.Session) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", notices.Pending, notices.Acknowledged, notices.Task, notices.Done:
	default:
		a.fail(w, r, apperr.Field("state", "state_invalid", "must be pending, acknowledged, task or done"))
		return
	}
	list, err := a.Notices.List(r.Context(), state, 200)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []notices.Notice{}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"notices": list})
}

func (a *API) noticeTask(w http.ResponseWriter, r *http.Request, sess account.Session) {
	t, err := a.Notices.Task(r.Context(), r.PathValue("id"), notices.Reader{AccountID: sess.AccountID, IP: a.ClientIP(r)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, t)
}

func (a *API) closeNoticeTask(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := a.Notices.Close(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
