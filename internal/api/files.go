package api

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/files"
	"steward/internal/server"
)

type fileResponse struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

func toFile(f files.File) fileResponse { return fileResponse(f) }

func (a *API) registerFiles(mux server.Router) {
	mux.HandleFunc("POST /api/v1/me/files", a.auth(a.upload))
	mux.HandleFunc("GET /api/v1/me/files", a.auth(a.listFiles))
	mux.HandleFunc("GET /api/v1/me/files/{id}", a.auth(a.download))
	mux.HandleFunc("DELETE /api/v1/me/files/{id}", a.auth(a.deleteFile))
	mux.HandleFunc("GET /api/v1/me/file-access", a.auth(a.fileAccess))
}

// upload takes a raw body (name in ?name=, type in Content-Type) or a multipart form
// whose part "file" is the file; either way it streams into storage.
func (a *API) upload(w http.ResponseWriter, r *http.Request, sess account.Session) {
	up, err := server.UploadFrom(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	up.IP = a.ClientIP(r)
	f, err := a.Files.Upload(r.Context(), sess.AccountID, up)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/me/files/"+f.ID)
	server.WriteJSON(w, http.StatusCreated, toFile(f))
}

func (a *API) listFiles(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Files.List(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	used, err := a.Files.Usage(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]fileResponse, len(list))
	for i, f := range list {
		out[i] = toFile(f)
	}
	lim := a.Files.Limits()
	server.WriteJSON(w, http.StatusOK, map[string]any{"files": out, "used": used, "quota": lim.Quota, "max_file_size": lim.MaxFileSize})
}

func (a *API) download(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.ServeFile(w, r, sess.AccountID, r.PathValue("id"), a.fail)
}

func (a *API) deleteFile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.Files.Delete(r.Context(), sess.AccountID, r.PathValue("id"), a.ClientIP(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type accessResponse struct {
	At      time.Time `json:"at"`
	FileID  string    `json:"file_id"`
	Name    string    `json:"name,omitempty"`
	Action  string    `json:"action"`
	ByOwner bool      `json:"by_owner"`
	IP      string    `json:"ip,omitempty"`
}

func (a *API) fileAccess(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := a.Files.AccessLog(r.Context(), sess.AccountID, 200)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]accessResponse, len(list))
	for i, e := range list {
		out[i] = accessResponse{At: e.At, FileID: e.FileID, Name: e.Name, Action: e.Action, ByOwner: e.ByOwner}
		if e.ByOwner {
			out[i].IP = e.IP // another member's address is theirs, not the owner's
		}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"access": out})
}
