package web

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/policy"
	"steward/internal/server"
)

// The privacy policy's pages: the public ones (the version in effect, every version,
// one version, a diff between two), the member's notice of a material change, and the
// DPO's console (drafts and publishing).
func (p *Pages) registerPolicy(mux server.Router) {
	mux.HandleFunc("GET /privacy/policy", p.currentPolicy)
	mux.HandleFunc("GET /privacy/policy/versions", p.policyVersions)
	mux.HandleFunc("GET /privacy/policy/diff", p.policyDiff)
	mux.HandleFunc("GET /privacy/policy/{version}", p.policyVersion)
	mux.HandleFunc("GET /account/policy", p.member(p.myPolicy))
	mux.HandleFunc("POST /account/policy", p.member(p.acceptPolicy))
	mux.HandleFunc("GET /staff/policy", p.staff(p.staffPolicies, policy.Role))
	mux.HandleFunc("GET /staff/policy/new", p.staff(p.newPolicyForm, policy.Role))
	mux.HandleFunc("POST /staff/policy/new", p.staff(p.createPolicy, policy.Role))
	mux.HandleFunc("GET /staff/policy/{version}", p.staff(p.staffPolicy, policy.Role))
	mux.HandleFunc("POST /staff/policy/{version}", p.staff(p.updatePolicy, policy.Role))
	mux.HandleFunc("POST /staff/policy/{version}/publish", p.staff(p.sensitive(p.publishPolicy), policy.Role))
}

// policyBanner is the notice on a member's pages of a material change (or business
// transfer) they have yet to read and accept.
type policyBanner struct {
	Version    string
	Transfer   bool
	Controller string
}

// policyNotice returns the banner for the logged-in member of a member page, or nil.
// An error only leaves the banner out (the policy page itself shows it).
func (p *Pages) policyNotice(r *http.Request, page string) *policyBanner {
	sess, ok := r.Context().Value(sessionKey{}).(account.Session)
	if !ok || p.o.Policy == nil || page == "account-policy" {
		return nil
	}
	v, pending, err := p.o.Policy.Pending(r.Context(), sess.AccountID)
	if err != nil {
		p.o.Log.ErrorContext(r.Context(), "policy notice", "err", err)
		return nil
	}
	if !pending {
		return nil
	}
	return &policyBanner{Version: v.Label, Transfer: v.Kind == policy.KindTransfer, Controller: v.Controller}
}

// policyRow is a version as the lists show it.
type policyRow struct {
	Label       string
	Kind        string
	Transfer    bool
	Controller  string
	Material    bool
	Summary     string
	State       string
	Published   bool
	EffectiveAt time.Time
	InEffect    bool
	Current     bool
	Applied     bool
	Mailed      int
	MailDone    bool
	Purposes    []string // names of the purposes asked again
}

func (p *Pages) policyRow(v policy.Version, current string) policyRow {
	row := policyRow{Label: v.Label, Kind: kindName(v.Kind), Transfer: v.Kind == policy.KindTransfer, Controller: v.Controller,
		Material: v.Announced(), Summary: v.Summary, State: v.State, Published: v.Published(), EffectiveAt: v.EffectiveAt,
		InEffect: v.Published() && !v.EffectiveAt.After(p.o.Now()), Current: v.Label == current, Applied: !v.AppliedAt.IsZero(),
		Mailed: v.Mailed, MailDone: v.MailDone}
	keys := v.Purposes
	if v.Published() {
		keys = p.o.Policy.Affected(v)
	} else if !v.Material {
		keys = nil
	}
	for _, k := range keys {
		if pu, ok := p.o.Consent.Register().Purpose(k); ok {
			row.Purposes = append(row.Purposes, pu.Name)
		}
	}
	return row
}

func kindName(k policy.Kind) string {
	if k == policy.KindTransfer {
		return "Business transfer"
	}
	return "Policy"
}

// policyView is one version of the policy, its text rendered.
type policyView struct {
	policyRow
	Text     template.HTML
	Previous string // the version before it, for the diff link
}

func (p *Pages) showPolicy(w http.ResponseWriter, r *http.Request, v policy.Version) {
	html, err := policy.HTML(v.Body)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	cur, err := p.o.Policy.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	list, err := p.o.Policy.List(r.Context(), false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	view := policyView{policyRow: p.policyRow(v, cur.Label), Text: template.HTML(html)} // goldmark without raw HTML: safe
	for i, o := range list {
		if o.Label == v.Label && i+1 < len(list) {
			view.Previous = list[i+1].Label
		}
	}
	p.render(w, r, http.StatusOK, "policy", "Privacy policy", p.loggedIn(r), view)
}

func (p *Pages) currentPolicy(w http.ResponseWriter, r *http.Request) {
	v, err := p.o.Policy.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.showPolicy(w, r, v)
}

func (p *Pages) policyVersion(w http.ResponseWriter, r *http.Request) {
	v, err := p.o.Policy.Published(r.Context(), r.PathValue("version"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.showPolicy(w, r, v)
}

// policyVersionsView lists every published version, with the form to compare two.
type policyVersionsView struct {
	Versions []policyRow
	From, To []option
}

func (p *Pages) versionOptions(list []policy.Version, selected string) []option {
	out := make([]option, 0, len(list))
	for _, v := range list {
		out = append(out, option{Value: v.Label, Name: v.Label, Selected: v.Label == selected})
	}
	return out
}

func (p *Pages) policyVersions(w http.ResponseWriter, r *http.Request) {
	list, err := p.o.Policy.List(r.Context(), false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	cur, err := p.o.Policy.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := policyVersionsView{}
	from, to := "", cur.Label
	if len(list) > 1 {
		from = list[1].Label
		to = list[0].Label
	}
	for _, x := range list {
		v.Versions = append(v.Versions, p.policyRow(x, cur.Label))
	}
	v.From, v.To = p.versionOptions(list, from), p.versionOptions(list, to)
	p.render(w, r, http.StatusOK, "policy-versions", "Versions of the privacy policy", p.loggedIn(r), v)
}

// diffView is the line diff between two versions.
type diffView struct {
	From, To         string
	Lines            []policy.Line
	Added, Removed   int
	FromOpts, ToOpts []option
}

func (p *Pages) policyDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, lines, err := p.o.Policy.Compare(r.Context(), q.Get("from"), q.Get("to"))
	if err != nil {
		if apperr.KindOf(err) == apperr.Invalid {
			// A version that does not exist: the page does not either.
			p.renderNotFound(w, r)
			return
		}
		p.fail(w, r, err)
		return
	}
	list, err := p.o.Policy.List(r.Context(), false)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := diffView{From: from.Label, To: to.Label, Lines: lines, FromOpts: p.versionOptions(list, from.Label), ToOpts: p.versionOptions(list, to.Label)}
	for _, l := range lines {
		switch l.Op {
		case policy.Added:
			v.Added++
		case policy.Removed:
			v.Removed++
		}
	}
	p.render(w, r, http.StatusOK, "policy-diff", "Changes from "+from.Label+" to "+to.Label, p.loggedIn(r), v)
}

// myPolicyView is the member's page of the policy: the version in effect, a change to
// read and accept, and the choices it asks again.
type myPolicyView struct {
	Current   policyRow
	Pending   bool
	Accepted  []policy.Acceptance
	Since     string // the last version the member accepted, for the diff
	Reconfirm []choiceBox
	Done      bool
	Error     string
}

// choiceBox is a purpose the change asks again, as a checkbox.
type choiceBox struct {
	Key, Name, Description string
}

func (p *Pages) myPolicyView(r *http.Request, sess account.Session) (myPolicyView, error) {
	ctx := r.Context()
	cur, err := p.o.Policy.Current(ctx)
	if err != nil {
		return myPolicyView{}, err
	}
	v := myPolicyView{Current: p.policyRow(cur, cur.Label), Done: r.URL.Query().Get("accepted") == "1"}
	if _, v.Pending, err = p.o.Policy.Pending(ctx, sess.AccountID); err != nil {
		return v, err
	}
	if v.Accepted, err = p.o.Policy.Accepted(ctx, sess.AccountID); err != nil {
		return v, err
	}
	for _, a := range v.Accepted {
		if a.Version != cur.Label {
			v.Since = a.Version
			break
		}
	}
	asked, err := p.o.Policy.Reconfirm(ctx, sess.AccountID)
	if err != nil {
		return v, err
	}
	for _, c := range asked {
		v.Reconfirm = append(v.Reconfirm, choiceBox{Key: c.Purpose.Key, Name: c.Purpose.Name, Description: c.Purpose.Description})
	}
	return v, nil
}

func (p *Pages) myPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v, err := p.myPolicyView(r, sess)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "account-policy", "Privacy policy", true, v)
}

func (p *Pages) acceptPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	v, err := p.myPolicyView(r, sess)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	// Every choice asked again is answered: a box ticked grants it again, one left
	// clear withdraws it.
	choices := map[string]bool{}
	ticked := r.PostForm["reconfirm"]
	for _, c := range v.Reconfirm {
		choices[c.Key] = slices.Contains(ticked, c.Key)
	}
	err = p.o.Policy.Accept(r.Context(), sess.AccountID, r.PostFormValue("version"), choices, map[string]string{"ip": p.o.ClientIP(r)})
	if err != nil {
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "account-policy", "Privacy policy", true, v)
		return
	}
	redirect(w, r, "/account/policy?accepted=1")
}

// staffPoliciesView lists every version, drafts first.
type staffPoliciesView struct {
	Versions []policyRow
}

func (p *Pages) staffPolicies(w http.ResponseWriter, r *http.Request, _ account.Session) {
	list, err := p.o.Policy.List(r.Context(), true)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	cur, err := p.o.Policy.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := staffPoliciesView{}
	for _, x := range list {
		v.Versions = append(v.Versions, p.policyRow(x, cur.Label))
	}
	p.render(w, r, http.StatusOK, "staff-policies", "Privacy policy", true, v)
}

// staffPolicyView is the form of a draft, or a published version shown read-only.
type staffPolicyView struct {
	New      bool
	Row      policyRow
	Fields   []field
	Purposes []purposeBox
	Material bool
	Error    string
	Notice   string
}

// purposeBox is a purpose on consent the draft may ask again.
type purposeBox struct {
	Key, Name string
	Checked   bool
}

func (p *Pages) policyFields(d policy.Draft, isNew bool) ([]field, []purposeBox) {
	eff := d.Effective
	kind := field{Name: "kind", Label: "Kind", Need: "required", Type: "select", Options: []option{
		{Value: string(policy.KindPolicy), Name: "A new version of the policy", Selected: d.Kind != policy.KindTransfer},
		{Value: string(policy.KindTransfer), Name: "A business transfer (a new controller)", Selected: d.Kind == policy.KindTransfer},
	}, Hint: "A business transfer is always announced to every member, like a material change."}
	fields := []field{}
	if isNew {
		fields = append(fields, field{Name: "label", Label: "Version", Need: "required", Type: "text", Value: d.Label,
			Hint: "A short label such as 2026.1: letters, digits, '.', '_' or '-'. It cannot be changed later."})
	}
	fields = append(fields, kind,
		field{Name: "controller", Label: "New controller", Need: "optional", Type: "text", Value: d.Controller,
			Hint: "On a business transfer only: the name of the company that takes over the data."},
		field{Name: "effective", Label: "Effective date", Need: "optional", Type: "date", Value: eff,
			Hint: "The day it takes effect (from its start, UTC). Empty: when you publish it."},
		field{Name: "summary", Label: "Summary of changes", Need: "required", Type: "textarea", Rows: 4, Value: d.Summary,
			Hint: "What changes, in a few plain sentences. Members read it in the notice and the mail."},
		field{Name: "body", Label: "Text of the policy", Need: "required", Type: "textarea", Rows: 18, Value: d.Body,
			Hint: "In Markdown. Raw HTML is left out."},
	)
	var boxes []purposeBox
	for _, pu := range p.o.Consent.Register().Purposes {
		if pu.NeedsConsent() {
			boxes = append(boxes, purposeBox{Key: pu.Key, Name: pu.Name, Checked: slices.Contains(d.Purposes, pu.Key)})
		}
	}
	return fields, boxes
}

func draftOf(r *http.Request) policy.Draft {
	f := r.PostFormValue
	return policy.Draft{Label: f("label"), Kind: policy.Kind(f("kind")), Body: f("body"), Summary: f("summary"), Material: f("material") == "on",
		Controller: f("controller"), Purposes: r.PostForm["purposes"], Effective: f("effective")}
}

func (p *Pages) newPolicyForm(w http.ResponseWriter, r *http.Request, _ account.Session) {
	d := policy.Draft{}
	// The new version starts from the text in effect.
	if cur, err := p.o.Policy.Current(r.Context()); err == nil {
		d.Body = cur.Body
	}
	fields, boxes := p.policyFields(d, true)
	p.render(w, r, http.StatusOK, "staff-policy", "New version of the policy", true, staffPolicyView{New: true, Fields: fields, Purposes: boxes})
}

func (p *Pages) createPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	d := draftOf(r)
	v, err := p.o.Policy.Create(r.Context(), policy.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, d)
	if err != nil {
		fields, boxes := p.policyFields(d, true)
		view := staffPolicyView{New: true, Fields: fields, Purposes: boxes, Material: d.Material}
		st := p.formError(w, r, view.Fields, &view.Error, err)
		p.render(w, r, st, "staff-policy", "New version of the policy", true, view)
		return
	}
	redirect(w, r, "/staff/policy/"+url.PathEscape(v.Label)+"?saved=1")
}

func (p *Pages) staffPolicyPage(w http.ResponseWriter, r *http.Request, v policy.Version, d *policy.Draft, err error) {
	cur, cerr := p.o.Policy.Current(r.Context())
	if cerr != nil {
		p.fail(w, r, cerr)
		return
	}
	view := staffPolicyView{Row: p.policyRow(v, cur.Label), Material: v.Material}
	if !v.Published() {
		draft := policy.Draft{Label: v.Label, Kind: v.Kind, Body: v.Body, Summary: v.Summary, Material: v.Material,
			Controller: v.Controller, Purposes: v.Purposes}
		if !v.EffectiveAt.IsZero() {
			draft.Effective = v.EffectiveAt.UTC().Format(time.DateOnly)
		}
		if d != nil {
			draft = *d
			view.Material = d.Material
		}
		view.Fields, view.Purposes = p.policyFields(draft, false)
	}
	st := http.StatusOK
	if err != nil {
		st = p.formError(w, r, view.Fields, &view.Error, err)
	}
	q := r.URL.Query()
	switch {
	case q.Get("saved") == "1":
		view.Notice = "The draft is saved. Members see nothing of it until you publish it."
	case q.Get("published") == "1":
		view.Notice = "The version is published."
		if view.Row.Material {
			view.Notice += " Once in effect, members are told at their next visit and by mail, and the choices it names are asked again."
		}
	}
	p.render(w, r, st, "staff-policy", "Version "+v.Label, true, view)
}

func (p *Pages) staffPolicy(w http.ResponseWriter, r *http.Request, _ account.Session) {
	v, err := p.o.Policy.Get(r.Context(), r.PathValue("version"))
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.staffPolicyPage(w, r, v, nil, nil)
}

func (p *Pages) updatePolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	label := r.PathValue("version")
	d := draftOf(r)
	d.Label = label
	if _, err := p.o.Policy.Update(r.Context(), policy.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, label, d); err != nil {
		v, gerr := p.o.Policy.Get(r.Context(), label)
		if gerr != nil || v.Published() {
			p.fail(w, r, err)
			return
		}
		p.staffPolicyPage(w, r, v, &d, err)
		return
	}
	redirect(w, r, "/staff/policy/"+url.PathEscape(label)+"?saved=1")
}

func (p *Pages) publishPolicy(w http.ResponseWriter, r *http.Request, sess account.Session) {
	label := r.PathValue("version")
	if _, err := p.o.Policy.Publish(r.Context(), policy.Actor{ID: sess.AccountID, IP: p.o.ClientIP(r)}, label); err != nil {
		v, gerr := p.o.Policy.Get(r.Context(), label)
		if gerr != nil || v.Published() {
			p.fail(w, r, err)
			return
		}
		p.staffPolicyPage(w, r, v, nil, err)
		return
	}
	redirect(w, r, "/staff/policy/"+url.PathEscape(label)+"?published=1")
}
