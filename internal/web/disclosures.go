package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/disclosures"
	"steward/internal/server"
)

// disclosureRow is a disclosure as the staff pages show it.
type disclosureRow struct {
	ID             string
	Authority      string
	LegalBasis     string
	Categories     string
	What           string
	DisclosedAt    time.Time
	RecordedAt     time.Time
	Document       string // type and size, in words
	Withheld       bool
	WithholdReason string
	ReviewAt       time.Time
	Due            bool // the flag's review date has come
	LiftedAt       time.Time
	Members        int
	Linked         []disclosures.Linked
}

func (p *Pages) disclosureRow(d disclosures.Disclosure) disclosureRow {
	return disclosureRow{ID: d.ID, Authority: d.Authority, LegalBasis: d.LegalBasis, Categories: strings.Join(d.Categories, ", "),
		What: d.What, DisclosedAt: d.DisclosedAt, RecordedAt: d.RecordedAt,
		Document: documentWords(d.Document.ContentType, d.Document.Size), Withheld: d.Withheld(), WithholdReason: d.WithholdReason,
		ReviewAt: d.ReviewAt, Due: d.DueForReview(p.o.Now()), LiftedAt: d.LiftedAt, Members: d.Members, Linked: d.Subjects}
}

// documentWords says a document's type and size.
func documentWords(ctype string, size int64) string {
	kind := map[string]string{"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG"}[ctype]
	if size >= 1<<20 {
		return fmt.Sprintf("%s, %.1f MiB", kind, float64(size)/(1<<20))
	}
	return fmt.Sprintf("%s, %.1f KiB", kind, float64(size)/1024)
}

// staffDisclosuresView is the DPO's register of disclosures: the record form and
// every disclosure.
type staffDisclosuresView struct {
	Fields      []field // authority .. disclosed_at
	Withhold    []field // withhold_reason, review_at
	WithholdOn  bool
	Error       string
	Notice      string
	Due         int
	Disclosures []disclosureRow
}

func disclosureFields(v map[string]string, max int64) []field {
	return []field{
		{Name: "authority", Label: "Authority", Need: "required", Type: "text", Value: v["authority"], Hint: "Who asked for the data: the court, police or agency."},
		{Name: "legal_basis", Label: "Legal basis", Need: "required", Type: "textarea", Rows: 2, Value: v["legal_basis"], Hint: "The law or order the disclosure answered."},
		{Name: "document", Label: "Document received", Need: "required", Type: "file", Accept: ".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png",
			Hint: "The order or request the authority sent: a PDF, JPEG or PNG file, " + disclosures.DocumentLimit(max) + ". It is kept encrypted; each opening is recorded."},
		{Name: "members", Label: "Members concerned", Need: "required", Type: "textarea", Rows: 2, Value: v["members"], Hint: "Account ids or email addresses, one a line or separated by commas."},
		{Name: "categories", Label: "Categories of data", Need: "required", Type: "text", Value: v["categories"], Hint: "Separated by commas, e.g. contact details, login times."},
		{Name: "what", Label: "What was disclosed", Need: "required", Type: "textarea", Rows: 3, Value: v["what"], Hint: "In words the members understand: each is told it."},
		{Name: "disclosed_at", Label: "Disclosed on", Need: "required", Type: "date", Value: v["disclosed_at"]},
	}
}

func withholdFields(v map[string]string) []field {
	return []field{
		{Name: "withhold_reason", Label: "Why not yet", Need: "", Type: "textarea", Rows: 2, Value: v["withhold_reason"],
			Hint: "Required when the members are not told yet: the law or order that asks for the delay."},
		{Name: "review_at", Label: "Review on", Need: "", Type: "date", Value: v["review_at"], Hint: "The day the console shows the flag as due for review."},
	}
}

func (p *Pages) staffDisclosures(w http.ResponseWriter, r *http.Request, _ account.Session) {
	notice := map[string]string{"recorded": "The disclosure is recorded. The members concerned are told, unless you set the flag."}[r.URL.Query().Get("done")]
	p.renderStaffDisclosures(w, r, http.StatusOK, staffDisclosuresView{Notice: notice}, map[string]string{})
}

func (p *Pages) renderStaffDisclosures(w http.ResponseWriter, r *http.Request, status int, v staffDisclosuresView, vals map[string]string) {
	if v.Fields == nil {
		v.Fields, v.Withhold = disclosureFields(vals, p.o.Disclosures.MaxDocument()), withholdFields(vals)
	}
	list, err := p.o.Disclosures.List(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, d := range list {
		row := p.disclosureRow(d)
		if row.Due {
			v.Due++
		}
		v.Disclosures = append(v.Disclosures, row)
	}
	p.render(w, r, status, "staff-disclosures", "Disclosures", true, v)
}

func (p *Pages) recordDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	rec, vals, err := p.o.DisclosureFrom(w, r)
	if err == nil {
		_, err = p.o.Disclosures.Record(r.Context(), disclosures.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, rec)
	}
	if err != nil {
		v := staffDisclosuresView{Fields: disclosureFields(vals, p.o.Disclosures.MaxDocument()), Withhold: withholdFields(vals), WithholdOn: rec.Withhold}
		all := append(v.Fields, v.Withhold...)
		st := p.formError(w, r, all, &v.Error, err)
		v.Fields, v.Withhold = all[:len(v.Fields)], all[len(v.Fields):]
		p.renderStaffDisclosures(w, r, st, v, vals)
		return
	}
	redirect(w, r, "/staff/disclosures?done=recorded")
}

// staffDisclosureView is one disclosure, with the forms of its flag.
type staffDisclosureView struct {
	disclosureRow
	Notice   string
	Error    string
	Postpone []field
}

func (p *Pages) staffDisclosure(w http.ResponseWriter, r *http.Request, _ account.Session) {
	notice := map[string]string{"lifted": "The flag is lifted: the members concerned are told now.",
		"postponed": "The flag stays, with its new review date."}[r.URL.Query().Get("done")]
	p.renderStaffDisclosure(w, r, http.StatusOK, staffDisclosureView{Notice: notice}, map[string]string{})
}

func (p *Pages) renderStaffDisclosure(w http.ResponseWriter, r *http.Request, status int, v staffDisclosureView, vals map[string]string) {
	d, err := p.o.Disclosures.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.disclosureRow = p.disclosureRow(d)
	if v.Postpone == nil {
		v.Postpone = withholdFields(vals)
		for i := range v.Postpone {
			v.Postpone[i].Need = "required"
		}
	}
	p.render(w, r, status, "staff-disclosure", "Disclosure to "+d.Authority, true, v)
}

func (p *Pages) disclosureDocument(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.ServeDisclosureDocument(w, r, disclosures.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, p.fail)
}

func (p *Pages) liftDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := p.o.Disclosures.Lift(r.Context(), disclosures.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, id); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/disclosures/"+id+"?done=lifted")
}

func (p *Pages) postponeDisclosure(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	vals := map[string]string{"withhold_reason": r.PostFormValue("withhold_reason"), "review_at": r.PostFormValue("review_at")}
	review, err := server.ParseDay("review_at", vals["review_at"], false)
	if err == nil {
		_, err = p.o.Disclosures.Postpone(r.Context(), disclosures.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, id, vals["withhold_reason"], review)
	}
	if err != nil {
		if _, ok := apperr.As(err); !ok || apperr.KindOf(err) != apperr.Invalid {
			p.fail(w, r, err)
			return
		}
		v := staffDisclosureView{Postpone: withholdFields(vals)}
		for i := range v.Postpone {
			v.Postpone[i].Need = "required"
		}
		st := p.formError(w, r, v.Postpone, &v.Error, err)
		p.renderStaffDisclosure(w, r, st, v, vals)
		return
	}
	redirect(w, r, "/staff/disclosures/"+id+"?done=postponed")
}

// toldRow is a disclosure as the member it concerned reads it.
type toldRow struct {
	ID          string
	Authority   string
	LegalBasis  string
	Categories  string
	What        string
	DisclosedAt time.Time
}

func (p *Pages) toldRows(r *http.Request, accountID string) ([]toldRow, error) {
	list, err := p.o.Disclosures.ForMember(r.Context(), accountID)
	if err != nil {
		return nil, err
	}
	out := make([]toldRow, 0, len(list))
	for _, t := range list {
		out = append(out, toldRow{ID: t.ID, Authority: t.Authority, LegalBasis: t.LegalBasis, Categories: strings.Join(t.Categories, ", "),
			What: t.What, DisclosedAt: t.DisclosedAt})
	}
	return out, nil
}
