package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/consent"
)

// purposesView is the public register: every purpose of processing with its lawful
// basis, and every processor.
type purposesView struct {
	PolicyVersion string
	Purposes      []purposeRow
	Processors    []processorRow
}

// purposeRow is one purpose as the register shows it.
type purposeRow struct {
	Key         string
	Name        string
	Description string
	Basis       string // in words
	Processors  []processorRef
	Sharing     bool // shares data with third parties, who are not processors
}

// processorRef names a processor a purpose involves.
type processorRef struct {
	Key, Name string
}

// processorRow is one processor of the register's table.
type processorRow struct {
	Key        string
	Name       string
	Service    string
	Country    string
	Categories []string
	Safeguard  string
}

// basisWords say each lawful basis as what it means for the member.
var basisWords = map[consent.Basis]string{
	consent.Consent:            "Consent — only if you opt in",
	consent.LegitimateInterest: "Legitimate interest — you may object",
	consent.Contract:           "Contract — needed for the service",
	consent.LegalObligation:    "Legal obligation",
}

func basisOf(b consent.Basis) string { return inWords(basisWords, b) }

// inWords says a key in the words of m, or, for a key m lacks, as its text with spaces
// for underscores.
func inWords[K ~string](m map[K]string, k K) string {
	if w := m[k]; w != "" {
		return w
	}
	return strings.ReplaceAll(string(k), "_", " ")
}

// sourceWords say where a decision came from.
var sourceWords = map[consent.Source]string{
	consent.SourceForm:          "the preferences form",
	consent.SourceAPI:           "the API",
	consent.SourceEmailLink:     "a link in an email",
	consent.SourceInboundEmail:  "an email you sent us",
	consent.SourceBrowserSignal: "your browser’s signal (Global Privacy Control)",
	consent.SourceImport:        "an import from an earlier system",
	consent.SourceAccountLink:   "your newsletter subscription joining your account",
	consent.SourceGuardian:      "your parent or guardian’s agreement",
}

func sourceOf(s consent.Source) string { return inWords(sourceWords, s) }

// decisionOf says a decision in words: on a purpose of legitimate interest a
// withdrawal is an objection.
func decisionOf(p consent.Purpose, d consent.Decision) string {
	switch {
	case p.Objectable() && d == consent.Withdrawn:
		return "objected"
	case p.Objectable() && d == consent.Granted:
		return "objection lifted"
	case d == consent.Granted:
		return "consent given"
	case d == consent.Withdrawn:
		return "consent withdrawn"
	case d == consent.FlagSet:
		return "asked for"
	case d == consent.FlagLifted:
		return "lifted"
	}
	return string(d)
}

// reasonOf words a verdict's reason, written about "the subject", for the member.
func reasonOf(reason string) string {
	reason = strings.ReplaceAll(reason, "the subject", "you")
	return sentence("", strings.ReplaceAll(reason, "_", " "))
}

func (p *Pages) purposes(w http.ResponseWriter, r *http.Request) {
	reg := p.o.Consent.Register()
	v := purposesView{PolicyVersion: p.o.Consent.PolicyVersion()}
	for _, pu := range reg.Purposes {
		row := purposeRow{Key: pu.Key, Name: pu.Name, Description: pu.Description, Basis: basisOf(pu.Basis), Sharing: pu.Sharing}
		for _, k := range pu.Processors {
			pr, _ := reg.Processor(k)
			row.Processors = append(row.Processors, processorRef{Key: k, Name: pr.Name})
		}
		v.Purposes = append(v.Purposes, row)
	}
	for _, pr := range reg.Processors {
		v.Processors = append(v.Processors, processorRow{Key: pr.Key, Name: pr.Name, Service: pr.Service, Country: pr.Country,
			Categories: pr.Categories, Safeguard: pr.Safeguard})
	}
	p.render(w, r, http.StatusOK, "purposes", "How we use your data", p.loggedIn(r), v)
}

// preferencesView is the member's privacy preferences: a choice for every optional
// purpose, the purposes that need none, the two global flags, and the ledger.
type preferencesView struct {
	PolicyVersion string
	Choices       []choiceRow // consent and legitimate interest: the member decides
	Needed        []choiceRow // contract and legal obligation: no choice
	Restricted    bool
	Objected      bool
	History       []historyRow
	Error         string
	Saved         bool
}

// choiceRow is one purpose with the member's current decision and what it means.
type choiceRow struct {
	Key         string
	Name        string
	Description string
	Basis       string
	Consent     bool // a box to opt in; else, when Objectable, a box to object
	Objectable  bool
	Checked     bool
	Decided     bool
	Decision    string
	Source      string
	At          time.Time
	Allowed     bool
	Reason      string
	// AwaitingGuardian: a child opted in to what waits for the guardian's agreement.
	AwaitingGuardian bool
}

// historyRow is one event of the ledger.
type historyRow struct {
	ID            int64
	At            time.Time
	Purpose       string
	Decision      string
	Source        string
	PolicyVersion string
}

// readPreferences reads what the preferences page shows.
func (p *Pages) readPreferences(r *http.Request, subjectID string) (preferencesView, error) {
	choices, flags, err := p.o.Consent.Choices(r.Context(), subjectID)
	if err != nil {
		return preferencesView{}, err
	}
	events, err := p.o.Consent.History(r.Context(), subjectID)
	if err != nil {
		return preferencesView{}, err
	}
	awaiting, err := p.o.Accounts.PurposesAwaitingGuardian(r.Context(), subjectID)
	if err != nil {
		return preferencesView{}, err
	}
	v := preferencesView{PolicyVersion: p.o.Consent.PolicyVersion(), Restricted: flags.Restricted, Objected: flags.Objected}
	for _, c := range choices {
		pu := c.Purpose
		row := choiceRow{Key: pu.Key, Name: pu.Name, Description: pu.Description, Basis: basisOf(pu.Basis),
			Consent: pu.NeedsConsent(), Objectable: pu.Objectable(), Decided: c.Decision != "",
			Decision: decisionOf(pu, c.Decision), Source: sourceOf(c.Source), At: c.At,
			Allowed: c.Verdict.Allowed, Reason: reasonOf(c.Verdict.Reason), AwaitingGuardian: slices.Contains(awaiting, pu.Key)}
		switch {
		case row.Consent:
			row.Checked = c.Decision == consent.Granted
			v.Choices = append(v.Choices, row)
		case row.Objectable:
			row.Checked = c.Decision == consent.Withdrawn
			v.Choices = append(v.Choices, row)
		default:
			v.Needed = append(v.Needed, row)
		}
	}
	reg := p.o.Consent.Register()
	for _, e := range events {
		name := e.Purpose
		pu, ok := reg.Purpose(e.Purpose)
		if ok {
			name = pu.Name
		} else if consent.IsFlag(e.Purpose) {
			name = consent.FlagName(e.Purpose)
		}
		v.History = append(v.History, historyRow{ID: e.ID, At: e.At, Purpose: name, Decision: decisionOf(pu, e.Decision),
			Source: sourceOf(e.Source), PolicyVersion: e.PolicyVersion})
	}
	return v, nil
}

func (p *Pages) preferences(w http.ResponseWriter, r *http.Request, sess account.Session) {
	v, err := p.readPreferences(r, sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Saved = r.URL.Query().Get("saved") == "1"
	p.render(w, r, http.StatusOK, "preferences", "Privacy preferences", true, v)
}

// savePreferences records the form. A checkbox sends nothing when unticked, so the
// form's answer is complete for every purpose it shows: each purpose on consent is
// granted when its box is ticked and withdrawn when not; each on legitimate interest is
// objected to when its box is ticked. Only registered purposes are read: anything else
// in the form is ignored. SaveChoices records only what changes.
func (p *Pages) savePreferences(w http.ResponseWriter, r *http.Request, sess account.Session) {
	if err := parseForm(w, r); err != nil {
		p.fail(w, r, err)
		return
	}
	current, _, err := p.o.Consent.Choices(r.Context(), sess.AccountID)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	ticked := func(name string) bool {
		_, ok := r.PostForm[name]
		return ok
	}
	choices := map[string]bool{}
	for _, c := range current {
		key := c.Purpose.Key
		switch {
		case c.Purpose.NeedsConsent():
			choices[key] = ticked("consent_" + key)
		case c.Purpose.Objectable():
			choices[key] = !ticked("object_" + key)
		}
	}
	// The flags are set as ticked (the service writes them only when they change).
	restricted, objected := ticked("restricted"), ticked("objected")
	err = p.o.SaveChoices(r, sess.AccountID, choices, &restricted, &objected, consent.SourceForm)
	if err != nil {
		v, verr := p.readPreferences(r, sess.AccountID)
		if verr != nil {
			p.fail(w, r, verr)
			return
		}
		st := p.formError(w, r, nil, &v.Error, err)
		p.render(w, r, st, "preferences", "Privacy preferences", true, v)
		return
	}
	redirect(w, r, "/account/preferences?saved=1")
}

// receipt downloads the signed receipt of one of the member's decisions; another
// member's is not found.
func (p *Pages) receipt(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.WriteReceipt(w, r, sess.AccountID, r.PathValue("id"), p.fail)
}
