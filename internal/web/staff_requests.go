package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/requests"
	"steward/internal/server"
)

// staffRequestsView is the DPO's queue: the warning of requests due soon or overdue,
// the filters, and the requests, the soonest due first.
type staffRequestsView struct {
	Overdue   int
	Soon      int
	Within    int
	State     []option
	DueBefore string
	Requests  []requestRow
	Error     string
	Nav       pageNav
}

// stateOptions are the queue's state filter, current selected.
func stateOptions(current string) []option {
	out := []option{{Value: requests.StateOpen, Name: "Open", Selected: current == requests.StateOpen}}
	for _, s := range requests.States {
		out = append(out, option{Value: s, Name: stateNames[s], Selected: current == s})
	}
	return out
}

func (p *Pages) staffRequests(w http.ResponseWriter, r *http.Request, _ account.Session) {
	q := r.URL.Query()
	v := staffRequestsView{Within: requests.WarnWithin, DueBefore: q.Get("due_before")}
	state := q.Get("state")
	if _, ok := q["state"]; !ok {
		state = requests.StateOpen
	}
	v.State = stateOptions(state)
	f := requests.Filter{State: state}
	status := http.StatusOK
	if v.DueBefore != "" {
		d, err := requests.ParseDate(v.DueBefore)
		if err != nil {
			status, v.Error = http.StatusBadRequest, "Due before must be a date such as 2027-02-28."
		}
		f.DueBefore = d
	}
	sum, err := p.o.Requests.Due(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Overdue, v.Soon = sum.Overdue, sum.Soon
	if v.Error == "" {
		pg := pagerFor(r, url.Values{"state": {state}, "due_before": {v.DueBefore}})
		f.Offset, f.Limit = pg.Offset(), pg.Size
		total, err := p.o.Requests.QueueCount(r.Context(), f)
		var list []requests.Request
		if err == nil {
			list, err = p.o.Requests.Queue(r.Context(), f)
		}
		if apperr.KindOf(err) == apperr.Invalid {
			status, v.Error = http.StatusBadRequest, "Choose a state from the list."
		} else if err != nil {
			p.fail(w, r, err)
			return
		}
		v.Nav = pg.nav(total)
		if err := p.o.RecordRequestReads(r, staffSession(r), "privacy requests queue", list...); err != nil {
			p.fail(w, r, err)
			return
		}
		for _, req := range list {
			v.Requests = append(v.Requests, p.requestRow(req))
		}
	}
	p.render(w, r, status, "staff-requests", "Privacy requests", true, v)
}

// staffRequestView is one request with its history and what staff can do to it.
type staffRequestView struct {
	requestRow
	RightKey  string
	Received  string
	Events    []eventRow
	Next      []option
	CanExtend bool
	Fields    []field // the change of state
	Extend    []field
	Error     string
	ExtendErr string
	Notice    string
	// A visitor's identity: the document sent, if any, and whether staff still have
	// to decide on it.
	Document    string // "PDF, 1.2 MB"; "" when none is held
	CheckID     bool
	Verified    bool
	Identity    []field
	IdentityErr string
	// A rectification request, open and about an account: the correction's fields.
	Correct    []field
	CorrectErr string
}

// eventRow is one change of a request.
type eventRow struct {
	At    time.Time
	What  string
	Actor string
	Note  string
}

func (p *Pages) staffRequest(w http.ResponseWriter, r *http.Request, _ account.Session) {
	notice := map[string]string{"changed": "The request is updated.", "extended": "The due date is extended; the requester is told why.",
		"verified":  "The identity is marked verified; the request is in progress.",
		"corrected": "The correction is made; the processors that hold a changed field are told. Close the request as done to answer the requester."}[r.URL.Query().Get("done")]
	p.renderStaffRequest(w, r, http.StatusOK, staffRequestView{Notice: notice}, "", "", "")
}

func (p *Pages) renderStaffRequest(w http.ResponseWriter, r *http.Request, status int, v staffRequestView, state, note, reason string) {
	p.renderStaffRequestID(w, r, status, v, state, note, reason, "")
}

func (p *Pages) renderStaffRequestID(w http.ResponseWriter, r *http.Request, status int, v staffRequestView, state, note, reason, idNote string) {
	req, evs, err := p.o.Requests.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.o.RecordRequestReads(r, staffSession(r), "privacy request", req); err != nil {
		p.fail(w, r, err)
		return
	}
	v.requestRow, v.RightKey, v.Received = p.requestRow(req), req.Right, requests.DateOf(req.ReceivedAt).Long()
	v.Events = eventRows(evs)
	next := field{Name: "state", Label: "New state", Need: "required", Type: "select", Prompt: "Choose a state"}
	for _, s := range requests.Next(req.State) {
		next.Options = append(next.Options, option{Value: s, Name: stateNames[s], Selected: s == state})
	}
	if len(next.Options) > 0 {
		v.Fields = []field{next, {Name: "note", Label: labels["note"], Need: "optional", Type: "textarea", Rows: 4, Value: note,
			Hint: "Why. A refusal needs its reasons, and an answer to a complaint or an inquiry is the note: both are mailed to the requester."}}
	}
	v.CanExtend = req.Open() && req.State != requests.Unconfirmed && req.ExtendedMonths < requests.MaxExtension &&
		requests.DateOf(p.o.Now()) <= requests.DueDate(req.ReceivedAt, 0)
	if v.CanExtend {
		months := field{Name: "months", Label: "Extend by", Need: "required", Type: "select"}
		for n := 1; n <= requests.MaxExtension-req.ExtendedMonths; n++ {
			months.Options = append(months.Options, option{Value: strconv.Itoa(n), Name: strconv.Itoa(n) + " month" + map[bool]string{true: "s"}[n > 1]})
		}
		v.Extend = []field{months, {Name: "reason", Label: labels["reason"], Need: "required", Type: "textarea", Rows: 3, Value: reason,
			Hint: "Mailed to the requester. The law allows an extension where a request is complex or requests are many."}}
	}
	if d := req.Document; d != nil {
		v.Document = strings.ToUpper(strings.TrimPrefix(d.Extension(), ".")) + ", " + humanSize(d.Size)
	}
	for _, e := range evs {
		v.Verified = v.Verified || e.Action == requests.ActionIdentity
	}
	v.CheckID = req.Requester == requests.Visitor && req.Open() && req.State != requests.Unconfirmed && !v.Verified
	if v.CheckID {
		v.Identity = []field{{Name: "id_note", Label: "Note", Need: "optional", Type: "textarea", Rows: 3, Value: idNote,
			Hint: "How the identity was checked; for a refusal, the reason, which is mailed to the requester."}}
	}
	if req.Right == requests.Rectification && req.Open() && req.State != requests.Unconfirmed && (req.Requester == requests.Member || v.Verified) {
		v.Correct = correctionFields(r)
	}
	p.render(w, r, status, "staff-request", "Request: "+v.Right, true, v)
}

// correctionFields are the fields of a correction answering a rectification: empty
// ones stay as they are (the member's data is not shown here: the request says what
// is wrong).
func correctionFields(r *http.Request) []field {
	f := r.PostFormValue
	hint := "Empty: unchanged."
	return []field{
		{Name: "c_name", Label: "Name", Need: "optional", Type: "text", Value: f("c_name"), Hint: hint},
		{Name: "c_phone", Label: "Phone", Need: "optional", Type: "text", Value: f("c_phone"), Hint: hint},
		{Name: "c_home_address", Label: "Home address", Need: "optional", Type: "textarea", Rows: 2, Value: f("c_home_address"), Hint: hint},
		{Name: "c_business_address", Label: "Business address", Need: "optional", Type: "textarea", Rows: 2, Value: f("c_business_address"), Hint: hint},
		{Name: "c_birthdate", Label: "Birthdate", Need: "optional", Type: "date", Value: f("c_birthdate"), Hint: hint + " A child's birthdate may change here, on evidence."},
		{Name: "c_country", Label: "Country (two letters)", Need: "optional", Type: "text", Value: f("c_country"), Hint: hint},
	}
}

// rectify applies the correction of a rectification request.
func (p *Pages) rectify(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	opt := func(k string) *string {
		if v := strings.TrimSpace(r.PostFormValue(k)); v != "" {
			return &v
		}
		return nil
	}
	c := server.Rectification{Name: opt("c_name"), Phone: opt("c_phone"), HomeAddress: opt("c_home_address"),
		BusinessAddress: opt("c_business_address"), Birthdate: opt("c_birthdate"), Country: opt("c_country")}
	if _, err := p.o.Rectify(r, r.PathValue("id"), c, p.staffActor(r, sess)); err != nil {
		if apperr.KindOf(err) == apperr.NotFound {
			p.fail(w, r, err)
			return
		}
		d := server.Public(p.o.Log, r, err)
		v := staffRequestView{CorrectErr: d.Message}
		if d.Field != "" {
			v.CorrectErr = sentence(labels[d.Field], d.Message)
			if labels[d.Field] == "" {
				v.CorrectErr = sentence(capitalized(strings.ReplaceAll(d.Field, "_", " ")), d.Message)
			}
		}
		p.renderStaffRequestID(w, r, status(w, err), v, "", "", "", "")
		return
	}
	redirect(w, r, "/staff/requests/"+url.PathEscape(r.PathValue("id"))+"?done=corrected")
}

// eventRows are a request's changes as people read them.
func eventRows(evs []requests.Event) []eventRow {
	out := make([]eventRow, 0, len(evs))
	for _, e := range evs {
		what := "Received"
		switch e.Action {
		case requests.ActionState:
			what = capitalized(stateNames[e.To])
			if e.From != "" {
				what = capitalized(stateNames[e.From]) + " → " + stateNames[e.To]
			}
		case requests.ActionExtended:
			what = "Due date extended"
		case requests.ActionIdentity:
			what = "Identity verified"
		case requests.ActionDocument:
			what = "Identity document viewed"
		case requests.ActionLinkSent:
			what = "Download link sent"
		case requests.ActionNoData:
			what = "Answered: no data held"
		case requests.ActionDownloaded:
			what = "Data downloaded"
		case requests.ActionRectified:
			what = "Data corrected"
		}
		out = append(out, eventRow{At: e.At, What: what, Actor: e.Actor, Note: e.Note})
	}
	return out
}

func (p *Pages) staffActor(r *http.Request, sess account.Session) requests.Actor {
	return requests.Actor{Kind: requests.ByStaff, ID: sess.AccountID, IP: p.o.ClientIP(r)}
}

func (p *Pages) changeRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	if r.PostFormValue("state") == requests.Done && !p.o.Accounts.Recent(sess) {
		p.sensitive(p.changeRequest)(w, r, sess) // closing as done asks who it is first
		return
	}
	state, note := r.PostFormValue("state"), r.PostFormValue("note")
	if _, err := p.o.WorkRequest(r, r.PathValue("id"), requests.Change{State: state, Note: note}, p.staffActor(r, sess)); err != nil {
		if apperr.KindOf(err) == apperr.NotFound {
			p.fail(w, r, err)
			return
		}
		var v staffRequestView
		st := p.formError(w, r, nil, &v.Error, err)
		p.renderStaffRequest(w, r, st, v, state, note, "")
		return
	}
	redirect(w, r, "/staff/requests/"+url.PathEscape(r.PathValue("id"))+"?done=changed")
}

func (p *Pages) extendRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	months, _ := strconv.Atoi(r.PostFormValue("months")) // 0 is refused with the field named
	reason := r.PostFormValue("reason")
	if _, err := p.o.Requests.Extend(r.Context(), r.PathValue("id"), months, reason, p.staffActor(r, sess)); err != nil {
		if apperr.KindOf(err) == apperr.NotFound {
			p.fail(w, r, err)
			return
		}
		var v staffRequestView
		st := p.formError(w, r, nil, &v.ExtendErr, err)
		p.renderStaffRequest(w, r, st, v, "", "", reason)
		return
	}
	redirect(w, r, "/staff/requests/"+url.PathEscape(r.PathValue("id"))+"?done=extended")
}

// verifyIdentity records the decision on a visitor's identity: verified, or refused
// with the note as the reason.
func (p *Pages) verifyIdentity(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	decision, note := r.PostFormValue("decision"), r.PostFormValue("id_note")
	var err error
	switch decision {
	case "verified", "refused":
		_, err = p.o.Requests.VerifyIdentity(r.Context(), r.PathValue("id"), decision == "verified", note, p.staffActor(r, sess))
	default:
		err = apperr.Field("decision", "required", "is required: verified or refused")
	}
	if err != nil {
		if apperr.KindOf(err) == apperr.NotFound {
			p.fail(w, r, err)
			return
		}
		var v staffRequestView
		d := server.Public(p.o.Log, r, err)
		v.IdentityErr = sentence(labels[d.Field], d.Message)
		if d.Field == "note" {
			v.IdentityErr = sentence("Note", d.Message)
		}
		p.renderStaffRequestID(w, r, status(w, err), v, "", "", "", note)
		return
	}
	done := "verified"
	if decision == "refused" {
		done = "changed"
	}
	redirect(w, r, "/staff/requests/"+url.PathEscape(r.PathValue("id"))+"?done="+done)
}

// requestDocument sends a visitor's identity document as an attachment.
func (p *Pages) requestDocument(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.ServeRequestDocument(w, r, p.staffActor(r, sess), p.fail)
}
