package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
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

func (a *API) registerFiles(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/me/files", a.auth(a.upload))
	mux.HandleFunc("GET /api/v1/me/files", a.auth(a.listFiles))
	mux.HandleFunc("GET /api/v1/me/files/{id}", a.auth(a.download))
	mux.HandleFunc("DELETE /api/v1/me/files/{id}", a.auth(a.deleteFile))
	mux.HandleFunc("GET /api/v1/me/file-access", a.auth(a.fileAccess))
}

// upload takes a raw body (name in ?name=, type in Content-Type) or a multipart form
// whose part "file" is the file; either way it streams into storage.
func (a *API) upload(w http.ResponseWriter, r *http.Request, sess account.Session) {
	up, err := UploadFrom(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	up.IP = server.ClientIP(r, a.TrustProxy)
	f, err := a.Files.Upload(r.Context(), sess.AccountID, up)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/me/files/"+f.ID)
	server.WriteJSON(w, http.StatusCreated, toFile(f))
}

// UploadFrom reads an upload from a request: a multipart form's "file" part, or the raw
// body named by ?name=. The web page uses it too.
func UploadFrom(r *http.Request) (files.Upload, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		name := r.URL.Query().Get("name")
		if name == "" {
			return files.Upload{}, apperr.Field("name", "required", "is required: give the file name as ?name=")
		}
		return files.Upload{Name: name, ContentType: r.Header.Get("Content-Type"), Size: r.ContentLength, Body: r.Body}, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return files.Upload{}, apperr.New(apperr.Invalid, "multipart_invalid", "the multipart body cannot be read: "+err.Error())
	}
	for range 16 {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files.Upload{}, apperr.New(apperr.Invalid, "multipart_invalid", "the multipart body cannot be read: "+err.Error())
		}
		if part.FormName() == "file" && part.FileName() != "" {
			return files.Upload{Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Size: -1, Body: part}, nil
		}
	}
	return files.Upload{}, apperr.Field("file", "required", "is required: send the file in a form field named file")
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
	ServeFile(w, r, a.Files, sess.AccountID, r.PathValue("id"), server.ClientIP(r, a.TrustProxy), a.fail)
}

// ServeFile answers with a file as an attachment, with Range support, never rendered by
// the browser: octet-stream, nosniff and a sandboxing CSP, the name sanitized and
// encoded per RFC 6266. The web page uses it too.
func ServeFile(w http.ResponseWriter, r *http.Request, fs *files.Service, actor, id, ip string,
	fail func(http.ResponseWriter, *http.Request, error)) {
	// Every GET is a download (the service folds a burst of Range requests into one
	// entry); HEAD reads nothing.
	// Each range of a multi-range request reads and decrypts its segment again: past
	// a few, the request costs the server many times the whole file (fifty thousand
	// one-byte ranges of an 8 MiB file took 4.4 s, the whole file 33 ms). Such a
	// request gets the whole file, as RFC 9110 lets a server answer any Range.
	if rg := r.Header.Get("Range"); strings.Count(rg, ",") >= MaxRanges {
		r.Header.Del("Range")
	}
	f, rs, err := fs.Open(r.Context(), actor, id, ip, r.Method == http.MethodGet)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rs.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", ContentDisposition(f.Name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("X-Content-SHA256", f.SHA256)
	http.ServeContent(w, r, "", f.CreatedAt, rs)
}

// MaxRanges is the most ranges a download request is answered with; more get the
// whole file.
const MaxRanges = 16

// ContentDisposition names an attachment safely: an ASCII fallback and the UTF-8 name.
func ContentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + url.PathEscape(name)
}

func (a *API) deleteFile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := a.Files.Delete(r.Context(), sess.AccountID, r.PathValue("id"), server.ClientIP(r, a.TrustProxy)); err != nil {
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
