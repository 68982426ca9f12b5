package web

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/files"
	"steward/internal/server"
)

// filesView is the member's files: what they use of their quota, the upload form, the
// files, and the log of every access to them.
type filesView struct {
	Used        size
	Quota       size
	MaxFileSize size
	Files       []fileRow
	Access      []accessRow
	Fields      []field
	Error       string
	Uploaded    bool
	Deleted     bool
}

// size is a number of bytes as a page shows it: in words, with the exact count for a
// tooltip.
type size struct {
	Bytes int64
	Words string
}

func sizeOf(n int64) size { return size{Bytes: n, Words: humanSize(n)} }

// fileRow is one file as the list shows it.
type fileRow struct {
	ID        string
	Name      string
	Size      size
	SHA256    string
	CreatedAt time.Time
}

// accessRow is one entry of the access log.
type accessRow struct {
	At     time.Time
	Action string
	File   string
	Who    string
	IP     string // only for the member's own accesses: another member's address is theirs
}

// accessLimit is how many access log entries the page shows.
const accessLimit = 50

// actionNames say the access log's actions in words.
var actionNames = map[string]string{
	files.ActionUpload:   "Uploaded",
	files.ActionDownload: "Downloaded",
	files.ActionDelete:   "Deleted",
	files.ActionDenied:   "Attempted download",
}

func uploadFields() []field {
	return []field{{Name: "file", Label: labels["file"], Type: "file", Need: "required"}}
}

// readFiles reads what the page shows of the member's files.
func (p *Pages) readFiles(r *http.Request, owner string) (filesView, error) {
	ctx := r.Context()
	list, err := p.o.Files.List(ctx, owner)
	if err != nil {
		return filesView{}, err
	}
	used, err := p.o.Files.Usage(ctx, owner)
	if err != nil {
		return filesView{}, err
	}
	log, err := p.o.Files.AccessLog(ctx, owner, accessLimit)
	if err != nil {
		return filesView{}, err
	}
	lim := p.o.Files.Limits()
	v := filesView{Used: sizeOf(used), Quota: sizeOf(lim.Quota), MaxFileSize: sizeOf(lim.MaxFileSize), Fields: uploadFields()}
	v.Fields[0].Hint = "Up to " + v.MaxFileSize.Words + " per file. Only you can download it."
	for _, f := range list {
		v.Files = append(v.Files, fileRow{ID: f.ID, Name: f.Name, Size: sizeOf(f.Size), SHA256: f.SHA256, CreatedAt: f.CreatedAt})
	}
	for _, a := range log {
		row := accessRow{At: a.At, Action: actionNames[a.Action], File: a.Name}
		if row.Action == "" {
			row.Action = a.Action
		}
		if row.File == "" {
			row.File = "a file since deleted"
		}
		switch {
		case a.ByOwner:
			row.Who, row.IP = "you", a.IP
		case a.Action == files.ActionDenied:
			row.Who = "another member (refused)"
		default:
			row.Who = "a member of staff (see Staff access)"
		}
		v.Access = append(v.Access, row)
	}
	return v, nil
}

func (p *Pages) filesPage(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v, err := p.readFiles(r, sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	v.Uploaded, v.Deleted = q.Get("uploaded") == "1", q.Get("deleted") == "1"
	p.render(w, r, http.StatusOK, "files", "Your files", true, v)
}

// upload streams the form's file into storage: the multipart body is read part by
// part, never parsed into memory or temporary files.
func (p *Pages) upload(w http.ResponseWriter, r *http.Request, sess account.Session) {
	up, err := uploadFrom(r)
	if err == nil {
		up.IP = p.o.ClientIP(r)
		_, err = p.o.Files.Upload(r.Context(), sess.AccountID, up)
	}
	if err != nil {
		v, verr := p.readFiles(r, sess.AccountID)
		if verr != nil {
			p.fail(w, r, verr)
			return
		}
		st := p.formError(w, r, v.Fields, &v.Error, uploadError(err))
		p.render(w, r, st, "files", "Your files", true, v)
		return
	}
	redirect(w, r, "/account/files?uploaded=1")
}

// uploadFrom reads the upload form's file. Only the form is accepted here: the API's
// other way in, a raw body named by ?name=, is not the page's.
func uploadFrom(r *http.Request) (files.Upload, error) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		return files.Upload{}, apperr.Field("file", "required", "is required")
	}
	return server.UploadFrom(r)
}

// uploadError words the service's errors for the form, which has one field, the file:
// what the API says of its form field or of the file's name belongs beside it.
func uploadError(err error) error {
	e, ok := apperr.As(err)
	if !ok {
		return err
	}
	switch e.Field {
	case "file":
		if e.Code == "required" {
			return &apperr.Error{Kind: e.Kind, Code: e.Code, Field: "file", Message: "is required"}
		}
	case "name":
		return &apperr.Error{Kind: e.Kind, Code: e.Code, Field: "file", Message: "name " + e.Message}
	}
	return err
}

// download sends the file as an attachment; another member's file is not found.
func (p *Pages) download(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.ServeFile(w, r, sess.AccountID, r.PathValue("id"), p.fail)
}

// deleteFile deletes one of the member's files.
// deleteFileForm asks before a file is deleted: a page of its own, with the button
// that deletes, so that no script is needed and one stray click deletes nothing.
func (p *Pages) deleteFileForm(w http.ResponseWriter, r *http.Request, sess account.Session) {
	list, err := p.o.Files.List(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, f := range list {
		if f.ID == r.PathValue("id") {
			p.render(w, r, http.StatusOK, "file-delete", "Delete "+f.Name+"?", true,
				fileRow{ID: f.ID, Name: f.Name, Size: sizeOf(f.Size), SHA256: f.SHA256, CreatedAt: f.CreatedAt})
			return
		}
	}
	p.renderNotFound(w, r) // another member's file, or none: alike
}

func (p *Pages) deleteFile(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := p.o.Files.Delete(r.Context(), sess.AccountID, r.PathValue("id"), p.o.ClientIP(r)); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/account/files?deleted=1")
}

// humanSize says a number of bytes in a few characters, in units of 1024 as most
// systems show file sizes: "512 bytes", "1.2 MB", "10 GB".
func humanSize(n int64) string {
	if n < 1024 {
		if n == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	}
	units := []string{"KB", "MB", "GB", "TB", "PB", "EB"}
	v, i := float64(n)/1024, 0
	for {
		// Round first: 1023.99 KB reads as 1 MB, not 1024 KB.
		s := strconv.FormatFloat(v, 'f', 0, 64)
		if v < 9.95 {
			s = strconv.FormatFloat(v, 'f', 1, 64)
		}
		if f, _ := strconv.ParseFloat(s, 64); f < 1024 || i == len(units)-1 {
			if len(s) > 2 && s[len(s)-2:] == ".0" {
				s = s[:len(s)-2]
			}
			return fmt.Sprintf("%s %s", s, units[i])
		}
		v /= 1024
		i++
	}
}
