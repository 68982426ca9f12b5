package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/disclosures"
)

// maxDisclosureField bounds each text field of a disclosure's multipart form.
const maxDisclosureField = 64 << 10

// DisclosureFrom reads a disclosure from a multipart form, as the API and the page
// send it: the fields authority, legal_basis, categories (commas or lines), what,
// disclosed_at (a day), members (account ids or emails, commas or lines), withhold
// ("on" or "true"), withhold_reason and review_at (a day), and the file document.
// The document is read into memory, at most the register's limit.
func (s *Services) DisclosureFrom(w http.ResponseWriter, r *http.Request) (disclosures.Record, map[string]string, error) {
	var rec disclosures.Record
	vals := map[string]string{}
	limit := s.Disclosures.MaxDocument()
	r.Body = http.MaxBytesReader(w, r.Body, limit+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return rec, vals, apperr.New(apperr.Invalid, "multipart_invalid", "the form cannot be read (send multipart/form-data): "+err.Error())
	}
	known := map[string]bool{"authority": true, "legal_basis": true, "categories": true, "what": true, "disclosed_at": true,
		"members": true, "withhold": true, "withhold_reason": true, "review_at": true}
	for range 32 {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return s.disclosureRecord(rec, vals)
		}
		if err != nil {
			return rec, vals, partError(err, "the form cannot be read")
		}
		name := part.FormName()
		if name == "document" {
			if part.FileName() == "" && rec.Document == nil {
				continue // the file input left empty
			}
			data, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return rec, vals, partError(err, "the document cannot be read")
			}
			if int64(len(data)) > limit {
				return rec, vals, &apperr.Error{Kind: apperr.TooLarge, Code: "document_too_large", Field: "document",
					Message: "is too large: " + disclosures.DocumentLimit(limit)}
			}
			rec.Document = &disclosures.Document{Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Body: bytes.NewReader(data)}
			continue
		}
		if !known[name] {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, maxDisclosureField+1))
		if err != nil {
			return rec, vals, partError(err, "the form cannot be read")
		}
		if len(b) > maxDisclosureField {
			return rec, vals, apperr.Field(name, "too_long", "is too long")
		}
		vals[name] = string(b)
	}
	return rec, vals, apperr.New(apperr.Invalid, "multipart_invalid", "the form has too many parts")
}

func (s *Services) disclosureRecord(rec disclosures.Record, vals map[string]string) (disclosures.Record, map[string]string, error) {
	rec.Authority, rec.LegalBasis, rec.What = vals["authority"], vals["legal_basis"], vals["what"]
	rec.Categories, rec.Members = disclosures.Categories(vals["categories"]), disclosures.Members(vals["members"])
	w := strings.TrimSpace(vals["withhold"])
	rec.Withhold = w == "on" || w == "true" || w == "1"
	rec.WithholdReason = vals["withhold_reason"]
	var err error
	if rec.DisclosedAt, err = ParseDay("disclosed_at", vals["disclosed_at"], false); err != nil {
		return rec, vals, err
	}
	if rec.Withhold {
		if rec.ReviewAt, err = ParseDay("review_at", vals["review_at"], false); err != nil {
			return rec, vals, err
		}
	}
	return rec, vals, nil
}

// ParseDay reads a day (YYYY-MM-DD, its start in UTC) or an RFC 3339 time, as the
// registers' forms and API give them; "" is the zero time. With end, a day means its
// end (the start of the next day).
func ParseDay(field, v string, end bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	if t, err := time.Parse("2006-01-02T15:04", v); err == nil { // a datetime-local input, read as UTC
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, apperr.Field(field, "date_invalid", "must be a day (YYYY-MM-DD) or an RFC 3339 time")
}

// ServeDisclosureDocument answers with a disclosure's document as an attachment;
// the opening is recorded in the audit log.
func (s *Services) ServeDisclosureDocument(w http.ResponseWriter, r *http.Request, by disclosures.Actor, fail FailFunc) {
	// Opening it is recorded: a link from another site (which a Lax session cookie
	// follows) must not open it in the DPO's name.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		fail(w, r, apperr.New(apperr.Forbidden, "cross_site", "open the document from its disclosure's page"))
		return
	}
	id := r.PathValue("id")
	info, rc, err := s.Disclosures.Document(r.Context(), by, id)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", info.ContentType)
	h.Set("Content-Disposition", ContentDisposition("disclosure-document-"+id+info.Extension()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if _, err := io.Copy(w, rc); err != nil {
		s.Log.Warn("disclosures: sending a document", "disclosure", id, "err", err)
		panic(http.ErrAbortHandler)
	}
}
