package web

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/processors"
	"steward/internal/ropa"
)

// processorView is a processor as the pages show it.
type processorView struct {
	processors.Processor
	PurposeNames  []string
	Categories    []category
	CountryName   string
	Outside       bool   // outside the storage region
	TransferName  string // the transfer safeguard's name
	Proposed      *processorView
	ProposedAt    time.Time
	UpdatedAt     time.Time
	StateName     string
	MayApprove    bool // a change awaits approval, proposed by someone else
	ProposedByYou bool
}

var processorStateNames = map[string]string{processors.Active: "in force", processors.Pending: "awaiting approval", processors.Retired: "retired"}

func (p *Pages) processorView(pr processors.Processor) processorView {
	v := processorView{Processor: pr, CountryName: p.countryName(pr.Country), Outside: p.o.Processors.Outside(pr),
		TransferName: processors.SafeguardName(pr.Transfer), StateName: processorStateNames[pr.State]}
	for _, k := range pr.Purposes {
		name := k
		if pu, ok := p.o.Consent.Register().Purpose(k); ok {
			name = pu.Name
		}
		v.PurposeNames = append(v.PurposeNames, name)
	}
	for _, c := range pr.Categories {
		v.Categories = append(v.Categories, categoryOf(c))
	}
	return v
}

func (p *Pages) entryView(e processors.Entry, viewer string) processorView {
	v := p.processorView(e.Processor)
	v.UpdatedAt = e.UpdatedAt
	if e.Proposed != nil {
		pv := p.processorView(*e.Proposed)
		v.Proposed, v.ProposedAt = &pv, e.ProposedAt
		v.ProposedByYou = e.ProposedBy == viewer
		v.MayApprove = !v.ProposedByYou
	}
	return v
}

// regionView is the storage region as pages show it.
type regionView struct {
	Name      string
	Countries string
}

func (p *Pages) regionView() regionView {
	r := p.o.Processors.Region()
	names := make([]string, len(r.Countries))
	for i, c := range r.Countries {
		names[i] = p.countryName(c)
	}
	return regionView{Name: r.Name, Countries: strings.Join(names, ", ")}
}

// publicProcessorsView is the public list of processors.
type publicProcessorsView struct {
	Region     regionView
	Processors []processorView
}

func (p *Pages) publicProcessors(w http.ResponseWriter, r *http.Request) {
	list, err := p.o.Processors.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := publicProcessorsView{Region: p.regionView()}
	for _, pr := range list {
		v.Processors = append(v.Processors, p.processorView(pr))
	}
	p.render(w, r, http.StatusOK, "privacy-processors", "Our processors", p.loggedIn(r), v)
}

// purposeChoice is one purpose of the processor form.
type purposeChoice struct {
	Key, Name string
	Checked   bool
}

// processorForm is the add or edit form of a processor.
type processorForm struct {
	Action      string
	Fields      []field // before the purposes
	More        []field // after them
	Purposes    []purposeChoice
	PurposesErr string
	Sale        bool
	Error       string
	Submit      string
}

func (p *Pages) processorForm(pr processors.Processor, add bool) processorForm {
	f := processorForm{Action: "/staff/processors", Submit: "Add the processor", Sale: pr.Sale}
	if !add {
		f.Action, f.Submit = "/staff/processors/"+pr.Key, "Save the changes"
	}
	if add {
		f.Fields = append(f.Fields, field{Name: "key", Label: "Key", Need: "required", Type: "text", Value: pr.Key,
			Hint: "A short name for the register and the notices: lower case letters, digits and _, e.g. mail_provider. It cannot change later."})
	}
	f.Fields = append(f.Fields,
		field{Name: "name", Label: "Name", Need: "required", Type: "text", Value: pr.Name, Hint: "The company, as members know it."},
		field{Name: "service", Label: "What it does", Need: "optional", Type: "text", Value: pr.Service, Hint: "e.g. Sends the site's email on its behalf."})
	for _, pu := range p.o.Consent.Register().Purposes {
		f.Purposes = append(f.Purposes, purposeChoice{Key: pu.Key, Name: pu.Name, Checked: slices.Contains(pr.Purposes, pu.Key)})
	}
	transfer := field{Name: "transfer", Label: "Transfer safeguard", Need: "optional", Type: "select", Prompt: "None: in the region",
		Hint: "Required for a country outside the region where data is stored (" + p.o.Processors.Region().Name + ")."}
	for _, s := range processors.Safeguards {
		transfer.Options = append(transfer.Options, option{Value: s.Key, Name: s.Name, Selected: s.Key == pr.Transfer})
	}
	f.More = []field{
		{Name: "categories", Label: "Data categories", Need: "required", Type: "text", Value: strings.Join(pr.Categories, ", "),
			Hint: "The categories of data it receives, comma-separated, e.g. user.contact.email, user.name."},
		{Name: "country", Label: "Country", Need: "required", Type: "text", Value: pr.Country, Hint: "Where it processes the data: a country code, e.g. DE or US."},
		transfer,
		{Name: "safeguard", Label: "Safeguard details", Need: "optional", Type: "text", Value: pr.Safeguard,
			Hint: "e.g. Processing agreement (GDPR art. 28); EU-US Data Privacy Framework."},
		{Name: "contract", Label: "Contract reference", Need: "optional", Type: "text", Value: pr.Contract, Hint: "The processing agreement's reference."},
		{Name: "notify_url", Label: "Notices endpoint", Need: "optional", Type: "url", Value: pr.NotifyURL,
			Hint: "Where erasures, rectifications and restrictions are sent (https). Without one, staff get a task to tell it by hand."},
	}
	return f
}

func processorFromForm(r *http.Request) processors.Processor {
	return processors.Processor{Key: r.PostFormValue("key"), Name: r.PostFormValue("name"), Service: r.PostFormValue("service"),
		Purposes: r.PostForm["purposes"], Categories: []string{r.PostFormValue("categories")}, Country: r.PostFormValue("country"),
		Transfer: r.PostFormValue("transfer"), Safeguard: r.PostFormValue("safeguard"), Contract: r.PostFormValue("contract"),
		NotifyURL: r.PostFormValue("notify_url"), Sale: r.PostFormValue("sale") == "on"}
}

// formFailed marks the form's field at fault.
func (p *Pages) formFailed(w http.ResponseWriter, r *http.Request, f *processorForm, err error) int {
	all := append(slices.Clone(f.Fields), f.More...)
	st := p.formError(w, r, all, &f.Error, err)
	f.Fields, f.More = all[:len(f.Fields)], all[len(f.Fields):]
	if e, ok := apperr.As(err); ok && e.Field == "purposes" {
		f.PurposesErr, f.Error = sentence("Purposes", e.Message), "Please correct the field marked below."
	}
	return st
}

// staffProcessorsView is the register's page: the region, what awaits approval, every
// processor, the transfers and the add form.
type staffProcessorsView struct {
	Notice     string
	Region     regionView
	Pending    []processorView
	Processors []processorView
	Transfers  []transferView
	Form       processorForm
}

// transferView is one transfer as pages show it.
type transferView struct {
	processors.Transfer
	CountryName string
}

var processorNotices = map[string]string{
	"added":    "The processor is added to the register.",
	"proposed": "The change marks the processor as one data is sold to: it waits for the approval of another administrator or DPO.",
	"approved": "The change is approved and in force.",
	"rejected": "The change is rejected.",
	"retired":  "The processor is retired: it is sent nothing more and leaves the public list.",
	"edited":   "The changes are saved.",
}

func (p *Pages) staffProcessors(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v := staffProcessorsView{Notice: processorNotices[r.URL.Query().Get("done")], Form: p.processorForm(processors.Processor{}, true)}
	p.renderStaffProcessors(w, r, http.StatusOK, sess, v)
}

func (p *Pages) renderStaffProcessors(w http.ResponseWriter, r *http.Request, status int, sess account.Session, v staffProcessorsView) {
	list, err := p.o.Processors.List(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	transfers, err := p.o.Processors.AllTransfers(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Region = p.regionView()
	for _, e := range list {
		ev := p.entryView(e, sess.AccountID)
		if e.Proposed != nil {
			v.Pending = append(v.Pending, ev)
		}
		v.Processors = append(v.Processors, ev)
	}
	for _, t := range transfers {
		v.Transfers = append(v.Transfers, transferView{Transfer: t, CountryName: p.countryName(t.Country)})
	}
	p.render(w, r, status, "staff-processors", "Processors", true, v)
}

func (p *Pages) addProcessor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	pr := processorFromForm(r)
	e, err := p.o.Processors.Add(r.Context(), processors.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, pr)
	if err != nil {
		v := staffProcessorsView{Form: p.processorForm(pr, true)}
		st := p.formFailed(w, r, &v.Form, err)
		p.renderStaffProcessors(w, r, st, sess, v)
		return
	}
	done := "added"
	if e.Proposed != nil {
		done = "proposed"
	}
	redirect(w, r, "/staff/processors/"+url.PathEscape(e.Key)+"?done="+done)
}

// staffProcessorView is one processor's page: its facts, the edit form, what awaits
// approval, and its history.
type staffProcessorView struct {
	Notice    string
	Processor processorView
	Form      processorForm
	History   []registerChange
}

// registerChange is one change of the register.
type registerChange struct {
	Action  string
	By      string
	At      time.Time
	Changes []string // "field: old → new"
}

func (p *Pages) staffProcessor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	e, err := p.o.Processors.Get(r.Context(), r.PathValue("key"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := staffProcessorView{Notice: processorNotices[r.URL.Query().Get("done")], Form: p.processorForm(e.Processor, false)}
	p.renderStaffProcessor(w, r, http.StatusOK, sess, e, v)
}

func (p *Pages) renderStaffProcessor(w http.ResponseWriter, r *http.Request, status int, sess account.Session, e processors.Entry, v staffProcessorView) {
	hist, err := p.o.Processors.History(r.Context(), e.Key)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Processor = p.entryView(e, sess.AccountID)
	for _, c := range hist {
		row := registerChange{Action: c.Action, By: c.By, At: c.At}
		row.Changes = diffProcessors(c.Old, c.New)
		v.History = append(v.History, row)
	}
	p.render(w, r, status, "staff-processor", e.Name, true, v)
}

// diffProcessors words what a change changed.
func diffProcessors(o, n *processors.Processor) []string {
	if o == nil || n == nil {
		return nil
	}
	var out []string
	add := func(name, a, b string) {
		if a != b {
			out = append(out, name+": "+orDash(a)+" → "+orDash(b))
		}
	}
	add("name", o.Name, n.Name)
	add("service", o.Service, n.Service)
	add("purposes", strings.Join(o.Purposes, ", "), strings.Join(n.Purposes, ", "))
	add("categories", strings.Join(o.Categories, ", "), strings.Join(n.Categories, ", "))
	add("country", o.Country, n.Country)
	add("transfer safeguard", o.Transfer, n.Transfer)
	add("safeguard details", o.Safeguard, n.Safeguard)
	add("contract", o.Contract, n.Contract)
	add("notices endpoint", o.NotifyURL, n.NotifyURL)
	add("sale", yesNo(o.Sale), yesNo(n.Sale))
	add("state", o.State, n.State)
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (p *Pages) editProcessor(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	key := r.PathValue("key")
	pr := processorFromForm(r)
	e, err := p.o.Processors.Edit(r.Context(), processors.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, key, pr)
	if err != nil {
		cur, gerr := p.o.Processors.Get(r.Context(), key)
		if gerr != nil {
			p.fail(w, r, gerr)
			return
		}
		pr.Key = key
		v := staffProcessorView{Form: p.processorForm(pr, false)}
		st := p.formFailed(w, r, &v.Form, err)
		p.renderStaffProcessor(w, r, st, sess, cur, v)
		return
	}
	done := "edited"
	if e.Proposed != nil {
		done = "proposed"
	}
	redirect(w, r, "/staff/processors/"+url.PathEscape(key)+"?done="+done)
}

// processorAction retires a processor, or approves or rejects the change that awaits
// approval.
func (p *Pages) processorAction(action string) func(http.ResponseWriter, *http.Request, account.Session) {
	return func(w http.ResponseWriter, r *http.Request, sess account.Session) {
		if err := parseForm(w, r); err != nil {
			p.fail(w, r, err)
			return
		}
		by, key := processors.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, r.PathValue("key")
		var err error
		switch action {
		case "retired":
			_, err = p.o.Processors.Retire(r.Context(), by, key)
		case "approved":
			_, err = p.o.Processors.Approve(r.Context(), by, key)
		case "rejected":
			_, err = p.o.Processors.Reject(r.Context(), by, key)
		}
		if err != nil {
			p.fail(w, r, err)
			return
		}
		redirect(w, r, "/staff/processors/"+url.PathEscape(key)+"?done="+action)
	}
}

// ropaView is the records of processing page.
type ropaView struct {
	Record  ropa.Record
	Formats []ropaFormat
}

type ropaFormat struct{ Name, Href, Label string }

func (p *Pages) staffROPA(w http.ResponseWriter, r *http.Request, _ account.Session) {
	rec, err := p.o.Records.Build(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := ropaView{Record: rec, Formats: []ropaFormat{{"markdown", "/staff/ropa/markdown", "Markdown"}, {"csv", "/staff/ropa/csv", "CSV"},
		{"json", "/staff/ropa/json", "JSON"}}}
	p.render(w, r, http.StatusOK, "staff-ropa", "Records of processing", true, v)
}

// staffROPADownload sends the record as a file in a format.
func (p *Pages) staffROPADownload(w http.ResponseWriter, r *http.Request, _ account.Session) {
	format := r.PathValue("format")
	if err := ropa.CheckFormat(format); err != nil {
		p.fail(w, r, apperr.New(apperr.NotFound, "format_unknown", "no such format"))
		return
	}
	rec, err := p.o.Records.Build(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var b bytes.Buffer
	if err := rec.Write(&b, format); err != nil {
		p.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ropa.ContentType(format))
	w.Header().Set("Content-Disposition", `attachment; filename="records-of-processing.`+ropa.Extension(format)+`"`)
	_, _ = w.Write(b.Bytes()) // a client gone: nothing to tell it
}
