package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/breaches"
	"steward/internal/server"
)

// breachRow is a breach as the staff pages show it.
type breachRow struct {
	ID           string
	Description  string
	DiscoveredAt time.Time
	Categories   string
	Consequences string
	Measures     string
	RecordedAt   time.Time
	Deadline     time.Time
	State        string // as people read it
	Overdue      bool
	Reported     bool
	Clock        string // the time left, or overdue by
	ReportedAt   time.Time
	Reference    string
	DelayReason  string
	Affected     int
	Linked       int
	Notified     int
	Pending      int // linked members not notified yet
}

var breachStateNames = map[string]string{breaches.Open: "to report", breaches.Overdue: "overdue",
	breaches.Reported: "reported", breaches.ReportedLate: "reported late"}

// span says a duration in hours and minutes.
func span(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	if h == 0 {
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

func (p *Pages) breachRow(b breaches.Breach) breachRow {
	now := p.o.Now()
	st := b.State(now)
	row := breachRow{ID: b.ID, Description: b.Description, DiscoveredAt: b.DiscoveredAt, Categories: strings.Join(b.Categories, ", "),
		Consequences: b.Consequences, Measures: b.Measures, RecordedAt: b.RecordedAt, Deadline: b.Deadline(), State: breachStateNames[st],
		Overdue: st == breaches.Overdue, Reported: !b.ReportedAt.IsZero(), ReportedAt: b.ReportedAt, Reference: b.Reference,
		DelayReason: b.DelayReason, Affected: b.Affected, Linked: b.Linked, Notified: b.Notified, Pending: b.Linked - b.Notified}
	switch st {
	case breaches.Open:
		row.Clock = span(b.Left(now)) + " left"
	case breaches.Overdue:
		row.Clock = "overdue by " + span(-b.Left(now))
	}
	return row
}

// staffBreachesView is the DPO's register of breaches: the record form and every breach.
type staffBreachesView struct {
	Fields   []field
	Error    string
	Notice   string
	Breaches []breachRow
}

func breachFields(v map[string]string) []field {
	return []field{
		{Name: "description", Label: "What happened", Need: "required", Type: "textarea", Rows: 3, Value: v["description"],
			Hint: "Describe the incident, not a member: name no one here."},
		{Name: "discovered_at", Label: "Discovered at (UTC)", Need: "required", Type: "datetime-local", Value: v["discovered_at"],
			Hint: "The 72 hours to report it to the supervisory authority run from then."},
		{Name: "categories", Label: "Categories of data", Need: "required", Type: "text", Value: v["categories"], Hint: "Separated by commas."},
		{Name: "consequences", Label: "Likely consequences", Need: "required", Type: "textarea", Rows: 2, Value: v["consequences"]},
		{Name: "measures", Label: "Measures", Need: "required", Type: "textarea", Rows: 2, Value: v["measures"],
			Hint: "Taken or proposed, and what the members can do: the notice tells them."},
	}
}

func (p *Pages) staffBreaches(w http.ResponseWriter, r *http.Request, _ account.Session) {
	p.renderStaffBreaches(w, r, http.StatusOK, staffBreachesView{}, map[string]string{})
}

func (p *Pages) renderStaffBreaches(w http.ResponseWriter, r *http.Request, status int, v staffBreachesView, vals map[string]string) {
	if v.Fields == nil {
		v.Fields = breachFields(vals)
	}
	list, err := p.o.Breaches.List(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, b := range list {
		v.Breaches = append(v.Breaches, p.breachRow(b))
	}
	p.render(w, r, status, "staff-breaches", "Breaches", true, v)
}

func (p *Pages) breachActor(r *http.Request, sess account.Session) breaches.Actor {
	return breaches.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}
}

func (p *Pages) recordBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	vals := map[string]string{}
	for _, f := range breachFields(nil) {
		vals[f.Name] = r.PostFormValue(f.Name)
	}
	at, err := server.ParseDay("discovered_at", vals["discovered_at"], false)
	var b breaches.Breach
	if err == nil {
		b, err = p.o.Breaches.Record(r.Context(), p.breachActor(r, sess), breaches.Report{Description: vals["description"], DiscoveredAt: at,
			Categories: breaches.List(vals["categories"]), Consequences: vals["consequences"], Measures: vals["measures"]})
	}
	if err != nil {
		v := staffBreachesView{Fields: breachFields(vals)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.renderStaffBreaches(w, r, st, v, vals)
		return
	}
	redirect(w, r, "/staff/breaches/"+b.ID+"?done=recorded")
}

// staffBreachView is one breach: its clock, the selection of members, the report to
// the authority and the notice.
type staffBreachView struct {
	breachRow
	Notice      string
	Select      []field
	SelectErr   string
	Report      []field
	ReportErr   string
	SelectedNow string // the outcome of a preview
}

func selectFields(v map[string]string, purposes []option) []field {
	pf := field{Name: "purpose", Label: "Purpose", Need: "optional", Type: "select", Prompt: "Any purpose",
		Hint: "Only the members this purpose applies to now (they consented, or did not object)."}
	for _, o := range purposes {
		o.Selected = o.Value == v["purpose"]
		pf.Options = append(pf.Options, o)
	}
	return []field{
		{Name: "emails", Label: "Members", Need: "optional", Type: "textarea", Rows: 3, Value: v["emails"],
			Hint: "Either a list of account ids or email addresses, one a line ..."},
		{Name: "created_from", Label: "Created from", Need: "optional", Type: "date", Value: v["created_from"], Hint: "... or a query: the active members created in this period,"},
		{Name: "created_to", Label: "Created until", Need: "optional", Type: "date", Value: v["created_to"], Hint: "the last day included,"},
		pf,
	}
}

func reportFields(v map[string]string) []field {
	return []field{
		{Name: "reference", Label: "Authority's reference", Need: "required", Type: "text", Value: v["reference"]},
		{Name: "reported_at", Label: "Reported at (UTC)", Need: "optional", Type: "datetime-local", Value: v["reported_at"], Hint: "Empty: now."},
		{Name: "delay_reason", Label: "Reasons for the delay", Need: "optional", Type: "textarea", Rows: 2, Value: v["delay_reason"],
			Hint: "Required for a report after the 72 hours (GDPR art. 33(1))."},
	}
}

func (p *Pages) purposeOptions() []option {
	var out []option
	for _, pu := range p.o.Consent.Register().Purposes {
		out = append(out, option{Value: pu.Key, Name: pu.Name})
	}
	return out
}

func (p *Pages) staffBreach(w http.ResponseWriter, r *http.Request, _ account.Session) {
	q := r.URL.Query()
	v := staffBreachView{}
	switch q.Get("done") {
	case "recorded":
		v.Notice = "The breach is recorded. Report it to the supervisory authority before the deadline, and select the members it affects."
	case "selected":
		v.Notice = fmt.Sprintf("The selection found %s member(s); %s were not linked to the breach before and are now.", q.Get("matched"), q.Get("added"))
	case "reported":
		v.Notice = "The report to the authority is recorded."
	case "notified":
		v.Notice = fmt.Sprintf("The notice is on its way to %s member(s). Sending again mails only those not notified yet.", q.Get("sent"))
	}
	p.renderStaffBreach(w, r, http.StatusOK, v, map[string]string{})
}

func (p *Pages) renderStaffBreach(w http.ResponseWriter, r *http.Request, status int, v staffBreachView, vals map[string]string) {
	b, err := p.o.Breaches.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.breachRow = p.breachRow(b)
	if v.Select == nil {
		v.Select = selectFields(vals, p.purposeOptions())
	}
	if v.Report == nil {
		v.Report = reportFields(vals)
	}
	p.render(w, r, status, "staff-breach", "Breach", true, v)
}

func (p *Pages) selectBreachMembers(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	vals := map[string]string{}
	for _, n := range []string{"emails", "created_from", "created_to", "purpose"} {
		vals[n] = r.PostFormValue(n)
	}
	preview := r.PostFormValue("action") == "preview"
	sel := breaches.Selection{Emails: breaches.List(strings.ReplaceAll(vals["emails"], " ", "\n")), Purpose: vals["purpose"]}
	var err error
	var got breaches.Selected
	if sel.CreatedFrom, err = server.ParseDay("created_from", vals["created_from"], false); err == nil {
		if sel.CreatedTo, err = server.ParseDay("created_to", vals["created_to"], true); err == nil {
			got, err = p.o.Breaches.Select(r.Context(), p.breachActor(r, sess), r.PathValue("id"), sel, preview)
		}
	}
	if err != nil && apperr.KindOf(err) != apperr.Invalid {
		p.fail(w, r, err)
		return
	}
	if err != nil || preview {
		v := staffBreachView{Select: selectFields(vals, p.purposeOptions())}
		st := http.StatusOK
		if err != nil {
			st = p.formError(w, r, v.Select, &v.SelectErr, err)
		} else {
			v.SelectedNow = fmt.Sprintf("This selection finds %d member(s). Nothing is changed until you add them.", got.Matched)
		}
		p.renderStaffBreach(w, r, st, v, vals)
		return
	}
	redirect(w, r, "/staff/breaches/"+r.PathValue("id")+"?"+url.Values{"done": {"selected"},
		"matched": {strconv.Itoa(got.Matched)}, "added": {strconv.Itoa(got.Added)}}.Encode())
}

func (p *Pages) reportBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	vals := map[string]string{}
	for _, n := range []string{"reference", "reported_at", "delay_reason"} {
		vals[n] = r.PostFormValue(n)
	}
	at, err := server.ParseDay("reported_at", vals["reported_at"], false)
	if err == nil {
		_, err = p.o.Breaches.ReportToAuthority(r.Context(), p.breachActor(r, sess), r.PathValue("id"), at, vals["reference"], vals["delay_reason"])
	}
	if err != nil && apperr.KindOf(err) != apperr.Invalid {
		p.fail(w, r, err)
		return
	}
	if err != nil {
		v := staffBreachView{Report: reportFields(vals)}
		st := p.formError(w, r, v.Report, &v.ReportErr, err)
		p.renderStaffBreach(w, r, st, v, vals)
		return
	}
	redirect(w, r, "/staff/breaches/"+r.PathValue("id")+"?done=reported")
}

func (p *Pages) notifyBreach(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	n, err := p.o.Breaches.Notify(r.Context(), p.breachActor(r, sess), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/breaches/"+r.PathValue("id")+"?done=notified&sent="+strconv.Itoa(n))
}
