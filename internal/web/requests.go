package web

import (
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/consent"
	"steward/internal/requests"
	"steward/internal/server"
)

// requestsView is the privacy center: every right and where to exercise it, the
// form for what needs a person, the member's requests, and whom to contact.
type requestsView struct {
	Fields    []field
	Error     string
	Notice    string
	Requests  []requestRow
	Contacts  server.Contacts
	ExportURL string
	Holds     []holdRow // the legal holds in force on the member
	// Disclosures of the member's data to authorities they have been told of.
	Disclosures []toldRow
}

// requestRow is one request in the member's history or the staff queue.
type requestRow struct {
	ID         string
	Right      string // as people read it, capitalized (a title)
	State      string // as people read it
	Closed     bool
	Overdue    bool
	ReceivedAt time.Time
	Due        string
	Extended   int
	Details    string
	Requester  string
	// A visitor's, for staff: their name, where to answer them, and the address they
	// say their data is held under.
	Name, Notify, Held string
}

// stateNames are the states as people read them.
var stateNames = map[string]string{
	requests.Unconfirmed: "waiting for the address to be confirmed", requests.Received: "received",
	requests.Verifying: "checking identity", requests.InProgress: "in progress", requests.Done: "done",
	requests.Refused: "refused", requests.Withdrawn: "withdrawn",
}

func (p *Pages) requestRow(req requests.Request) requestRow {
	return requestRow{ID: req.ID, Right: capitalized(requests.RightName(req.Right)), State: stateNames[req.State], Closed: !req.Open(),
		Overdue: req.Overdue(requests.DateOf(p.o.Now())), ReceivedAt: req.ReceivedAt, Due: req.DueDate.Long(),
		Extended: req.ExtendedMonths, Details: req.Details, Requester: req.Requester,
		Name: req.RequesterName, Notify: req.NotifyEmail, Held: req.HeldEmail}
}

// requestFields lays out the form of a request for staff: rectification of what the
// profile cannot change, a complaint or an inquiry.
func requestFields(right, details string) []field {
	rf := field{Name: "right", Label: labels["right"], Need: "required", Type: "select", Prompt: "Choose what you ask"}
	for _, o := range []option{{Value: requests.Rectification, Name: "Correct data I cannot change in my profile"},
		{Value: requests.Complaint, Name: "Make a complaint"}, {Value: requests.Inquiry, Name: "Ask a question about my data"}} {
		o.Selected = o.Value == right
		rf.Options = append(rf.Options, o)
	}
	return []field{rf, {Name: "details", Label: labels["details"], Need: "required", Type: "textarea", Rows: 6, Value: details,
		Hint: "For a correction: what is wrong and what it should say. At most 10,000 characters."}}
}

var requestNotices = map[string]string{
	"sent":      "Your request is sent. We mailed you its due date.",
	"same":      "You sent this request already; it is still open.",
	"withdrawn": "Your request is withdrawn.",
	"access":    "Your copy is ready: download it below.",
}

func (p *Pages) requestsPage(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.renderRequests(w, r, sess, http.StatusOK, requestsView{Fields: requestFields("", ""), Notice: requestNotices[r.URL.Query().Get("notice")]})
}

func (p *Pages) renderRequests(w http.ResponseWriter, r *http.Request, sess account.Session, status int, v requestsView) {
	held, err := p.o.Holds.InForce(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Holds = p.holdRows(held, false)
	if v.Disclosures, err = p.toldRows(r, sess.AccountID); err != nil {
		p.fail(w, r, err)
		return
	}
	list, err := p.o.Requests.List(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, req := range list {
		v.Requests = append(v.Requests, p.requestRow(req))
	}
	v.Contacts, v.ExportURL = p.o.Contacts, "/account/export"
	p.render(w, r, status, "requests", "Privacy requests", true, v)
}

// sendRequest records a request from the privacy center: a copy of the data (done at
// once: the page then offers the download), or a request for staff.
func (p *Pages) sendRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	right, details := r.PostFormValue("right"), r.PostFormValue("details")
	if right != requests.Access && !requests.NeedsDetails(right) && right != "" {
		// The other rights have their own pages; the form offers none of them.
		right = "unknown"
	}
	done, err := p.o.Exercise(r, sess.AccountID, server.Exercise{Right: right, Details: details}, consent.SourceForm)
	if err != nil {
		v := requestsView{Fields: requestFields(right, details)}
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.renderRequests(w, r, sess, st, v)
		return
	}
	notice := "sent"
	switch {
	case right == requests.Access:
		notice = "access"
	case !done.Created:
		notice = "same"
	}
	redirect(w, r, "/account/requests?notice="+notice)
}

func (p *Pages) withdrawRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if _, err := p.o.Requests.Withdraw(r.Context(), sess.AccountID, r.PathValue("id")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/account/requests?notice=withdrawn")
}

// myRequestView is one of the member's requests with its history.
type myRequestView struct {
	requestRow
	Events []eventRow
}

// myRequest shows one of the member's requests and every change of it, with staff's
// notes (an answer, the reason of an extension or a refusal); another member's
// request is not found.
func (p *Pages) myRequest(w http.ResponseWriter, r *http.Request, sess account.Session) {
	req, evs, err := p.o.Requests.GetOwn(r.Context(), sess.AccountID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := myRequestView{requestRow: p.requestRow(req), Events: eventRows(evs)}
	p.render(w, r, http.StatusOK, "request", v.Right, true, v)
}
