package server

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"steward/internal/apperr"
	"steward/internal/files"
)

// UploadFrom reads an upload from a request: a multipart form's "file" part, or the raw
// body named by ?name=.
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

// ServeFile answers with a file as an attachment, with Range support, never rendered by
// the browser: octet-stream, nosniff and a sandboxing CSP, the name sanitized and
// encoded per RFC 6266.
func (s *Services) ServeFile(w http.ResponseWriter, r *http.Request, actor, id string, fail FailFunc) {
	// Every GET is a download (the service folds a burst of Range requests into one
	// entry); HEAD reads nothing.
	// Each range of a multi-range request reads and decrypts its segment again: past
	// a few, the request costs the server many times the whole file (fifty thousand
	// one-byte ranges of an 8 MiB file took 4.4 s, the whole file 33 ms). Such a
	// request gets the whole file, as RFC 9110 lets a server answer any Range.
	if rg := r.Header.Get("Range"); strings.Count(rg, ",") >= MaxRanges {
		r.Header.Del("Range")
	}
	f, rs, err := s.Files.Open(r.Context(), actor, id, s.ClientIP(r), r.Method == http.MethodGet)
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
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + extValue(name)
}

// extValue percent-encodes name for an RFC 8187 ext-value: every byte but the
// attr-chars (letters, digits and !#$&+-.^_`|~) is encoded; url.PathEscape leaves
// characters such as ':' and '=' that make the header unreadable.
func extValue(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
