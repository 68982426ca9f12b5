package web

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"steward/internal/account"
	"steward/internal/apperr"
	pn "steward/internal/notices"
)

// errNoTask answers for a notice that is not an open task.
var errNoTask = apperr.New(apperr.NotFound, "task_not_found", "no such open task")

// noticeRole is the role that works the processors' notices, as in the API.
const noticeRole = "dpo"

// noticeStates are the list's state filter, in the order a dpo works them.
var noticeStates = []struct{ value, name string }{
	{pn.Task, "Tasks to do"},
	{pn.Pending, "Being delivered"},
	{pn.Acknowledged, "Acknowledged"},
	{pn.Done, "Done by staff"},
	{"all", "All"},
}

// noticeEvents name what a processor is told.
var noticeEvents = map[string]string{
	pn.Erasure:           "Erasure",
	pn.Rectification:     "Rectification",
	pn.Restriction:       "Restriction of processing",
	pn.RestrictionLifted: "End of the restriction",
}

// noticeStateNames name a notice's state.
var noticeStateNames = map[string]string{
	pn.Task: "task", pn.Pending: "being delivered", pn.Acknowledged: "acknowledged", pn.Done: "done",
}

// noticesView is a page of the processors' notices in one state.
type noticesView struct {
	States  []option
	State   string
	Sizes   []option
	Notices []noticeRow
	Nav     pageNav
	Notice  string
}

// noticeRow is one notice as the list and the detail show it.
type noticeRow struct {
	pn.Notice
	EventName string
	StateName string
	Service   string // what the processor does, from the register
	Country   string
	Endpoint  bool // the register gives it an endpoint
}

func (p *Pages) noticeRow(n pn.Notice) noticeRow {
	row := noticeRow{Notice: n, EventName: noticeEvents[n.Event], StateName: noticeStateNames[n.State]}
	if row.ProcessorName == "" {
		row.ProcessorName = n.Processor // no longer in the register
	}
	if pr, ok := p.o.Consent.Register().Processor(n.Processor); ok {
		row.Service, row.Country, row.Endpoint = pr.Service, pr.Country, pr.NotifyURL != ""
	}
	return row
}

func (p *Pages) processorNotices(w http.ResponseWriter, r *http.Request, _ account.Session) {
	state := r.URL.Query().Get("state")
	if !slices.ContainsFunc(noticeStates, func(s struct{ value, name string }) bool { return s.value == state }) {
		state = pn.Task // the default, and what an unknown state falls back to
	}
	pg := pagerFor(r, url.Values{"state": {state}})
	filter := state
	if state == "all" {
		filter = ""
	}
	list, total, err := p.o.Notices.Page(r.Context(), filter, pg.Offset(), pg.Size)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := noticesView{State: state, Nav: pg.nav(total)}
	if r.URL.Query().Get("done") == "1" {
		v.Notice = "The task is marked done."
	}
	for _, s := range noticeStates {
		v.States = append(v.States, option{Value: s.value, Name: s.name, Selected: s.value == state})
	}
	for _, s := range pageSizes {
		n := strconv.Itoa(s)
		v.Sizes = append(v.Sizes, option{Value: n, Name: n + " a page", Selected: s == pg.Size})
	}
	for _, n := range list {
		v.Notices = append(v.Notices, p.noticeRow(n))
	}
	p.render(w, r, http.StatusOK, "processor-notices", "Processor notices", true, v)
}

// noticeView is one notice; for an open task, what to tell the processor, opened for
// the dpo (the reading is in the audit log).
type noticeView struct {
	noticeRow
	Emails  []string
	Changes []change
}

// change is a changed field and its new value.
type change struct {
	Field string
	Value string
}

func (p *Pages) processorNotice(w http.ResponseWriter, r *http.Request, sess account.Session) {
	n, err := p.o.Notices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := noticeView{noticeRow: p.noticeRow(n)}
	if n.State == pn.Task {
		t, err := p.o.Notices.Task(r.Context(), n.ID, pn.Reader{AccountID: sess.AccountID, IP: p.o.ClientIP(r)})
		if err != nil {
			p.fail(w, r, err)
			return
		}
		v.Emails = t.Emails
		for f, val := range t.Changes {
			v.Changes = append(v.Changes, change{Field: inWords(labels, f), Value: val})
		}
		sort.Slice(v.Changes, func(i, j int) bool { return v.Changes[i].Field < v.Changes[j].Field })
	}
	p.render(w, r, http.StatusOK, "processor-notice", "Processor notice", true, v)
}

// processorNoticeDoneForm asks before marking a task done.
func (p *Pages) processorNoticeDoneForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	n, err := p.o.Notices.Get(r.Context(), r.PathValue("id"))
	if err == nil && n.State != pn.Task {
		err = errNoTask
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "processor-notice-done", "Mark the task done?", true, p.noticeRow(n))
}

func (p *Pages) processorNoticeDone(w http.ResponseWriter, r *http.Request, _ account.Session) {
	if err := p.o.Notices.Close(r.Context(), r.PathValue("id")); err != nil {
		p.fail(w, r, err)
		return
	}
	redirect(w, r, "/staff/processor-notices?done=1")
}
