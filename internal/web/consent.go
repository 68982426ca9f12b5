package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
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
	Categories []category
	Safeguard  string
}

// category is a data category in words, with its code in Fides' taxonomy.
type category struct {
	Name, Code string
}

// categoryNames say Fides' data categories (those the data map and the register use,
// and their parents) in words.
var categoryNames = map[string]string{
	"user":                           "Personal data",
	"user.name":                      "Name",
	"user.contact":                   "Contact details",
	"user.contact.email":             "Email address",
	"user.contact.phone_number":      "Phone number",
	"user.contact.address":           "Postal address",
	"user.contact.address.country":   "Country",
	"user.unique_id":                 "Account identifier",
	"user.content":                   "What you upload or write",
	"user.device":                    "Device data",
	"user.device.ip_address":         "IP address",
	"user.device.browser":            "Browser",
	"user.authorization":             "Sign-in data",
	"user.authorization.credentials": "Password and sign-in secrets",
	"user.privacy_preferences":       "Privacy choices",
	"user.behavior":                  "How you use the service",
	"user.demographic":               "Demographic data",
	"user.demographic.date_of_birth": "Date of birth",
	"user.workplace":                 "Workplace",
	"user.job_title":                 "Job title",
	"system.operations":              "Service operation data",
}

// categoryOf says a category in words: its own name, or its nearest named parent's.
func categoryOf(code string) category {
	for c := code; c != ""; {
		if n := categoryNames[c]; n != "" {
			return category{Name: n, Code: code}
		}
		i := strings.LastIndexByte(c, '.')
		if i < 0 {
			break
		}
		c = c[:i]
	}
	return category{Name: strings.ReplaceAll(code, "_", " "), Code: code}
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
	consent.SourceRequest:       "your privacy request",
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
	version, err := p.o.Consent.PolicyVersion(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	procs, err := p.o.Processors.Current(r.Context())
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := purposesView{PolicyVersion: version}
	for _, pu := range reg.Purposes {
		row := purposeRow{Key: pu.Key, Name: pu.Name, Description: pu.Description, Basis: basisOf(pu.Basis), Sharing: pu.Sharing}
		for _, pr := range procs {
			if slices.Contains(pr.Purposes, pu.Key) {
				row.Processors = append(row.Processors, processorRef{Key: pr.Key, Name: pr.Name})
			}
		}
		v.Purposes = append(v.Purposes, row)
	}
	for _, pr := range procs {
		row := processorRow{Key: pr.Key, Name: pr.Name, Service: pr.Service, Country: pr.Country, Safeguard: pr.Safeguard}
		for _, c := range pr.Categories {
			row.Categories = append(row.Categories, categoryOf(c))
		}
		v.Processors = append(v.Processors, row)
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
	version, err := p.o.Consent.PolicyVersion(r.Context())
	if err != nil {
		return preferencesView{}, err
	}
	v := preferencesView{PolicyVersion: version, Restricted: flags.Restricted, Objected: flags.Objected}
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

// receiptView is a signed receipt in words: what was decided, when, under which policy,
// and what the signature proves.
type receiptView struct {
	ID            string
	Purpose       string
	Decision      string
	Basis         string
	Source        string
	At            time.Time
	PolicyVersion string
	Issuer        string
	KeyID         string
}

// receiptViewOf says a receipt in words.
func (p *Pages) receiptViewOf(rc consent.Receipt) receiptView {
	pu, _ := p.o.Consent.Register().Purpose(rc.Purpose)
	v := receiptView{ID: rc.ReceiptID, Purpose: rc.PurposeName, Decision: decisionOf(pu, consent.Decision(rc.Decision)),
		Source: sourceOf(consent.Source(rc.Source)), PolicyVersion: rc.PolicyVersion, Issuer: rc.Issuer, KeyID: rc.KeyID}
	if rc.LawfulBasis != "" {
		v.Basis = basisOf(consent.Basis(rc.LawfulBasis))
	}
	if v.Purpose == "" {
		v.Purpose = inWords(nil, rc.Purpose)
	}
	if t, err := time.Parse(time.RFC3339Nano, rc.Time); err == nil {
		v.At = t
	}
	return v
}

// receipt shows the signed receipt of one of the member's decisions in words, with
// its file to download; another member's is not found.
func (p *Pages) receipt(w http.ResponseWriter, r *http.Request, sess account.Session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		p.renderNotFound(w, r)
		return
	}
	sig, err := p.o.Consent.Receipt(r.Context(), sess.AccountID, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := p.receiptViewOf(sig.Receipt)
	p.render(w, r, http.StatusOK, "receipt", "Receipt: "+v.Purpose+", "+v.Decision, true, v)
}

// receiptDownload sends the signed receipt file (JSON, as an attachment).
func (p *Pages) receiptDownload(w http.ResponseWriter, r *http.Request, sess account.Session) {
	p.o.WriteReceipt(w, r, sess.AccountID, r.PathValue("id"), p.fail)
}

// verifyView is the public page that checks a receipt: the form, and the verdict.
type verifyView struct {
	Fields  []field
	Error   string
	Checked bool // a receipt was given and checked
	Valid   bool
	Problem string // why it is not valid, in words
	Receipt receiptView
	KeyID   string // the operator's key
}

func receiptFields() []field {
	return []field{
		{Name: "file", Label: "The receipt file", Type: "file", Need: "optional", Hint: "The .json file you downloaded."},
		{Name: "receipt", Label: "Or its text", Type: "textarea", Need: "optional", Rows: 6,
			Hint: "Open the file in a text editor, copy everything and paste it here."},
	}
}

func (p *Pages) verifyReceiptForm(w http.ResponseWriter, r *http.Request) {
	v := verifyView{Fields: receiptFields(), KeyID: consent.KeyID(p.o.Consent.Signer().PublicKey())}
	p.render(w, r, http.StatusOK, "receipt-verify", "Check a consent receipt", p.loggedIn(r), v)
}

// maxReceipt is the largest receipt the check reads: a receipt is well under 2 KB.
const maxReceipt = 16 << 10

// verifyReceipt checks a receipt, uploaded or pasted, against the operator's key and
// says whether it holds. It changes nothing, and needs no account: anyone a member
// shows a receipt to can check it here.
func (p *Pages) verifyReceipt(w http.ResponseWriter, r *http.Request) {
	pub := p.o.Consent.Signer().PublicKey()
	v := verifyView{Fields: receiptFields(), KeyID: consent.KeyID(pub)}
	data, err := receiptFrom(w, r)
	if err != nil {
		st := p.formError(w, r, v.Fields, &v.Error, err)
		p.render(w, r, st, "receipt-verify", "Check a consent receipt", p.loggedIn(r), v)
		return
	}
	v.Checked = true
	rc, err := consent.Verify(data, pub)
	switch {
	case err == nil:
		v.Valid, v.Receipt = true, p.receiptViewOf(rc)
	case errors.Is(err, consent.ErrBadReceipt):
		v.Problem = "The signature does not match what the receipt says: it was changed after we signed it."
	case errors.Is(err, consent.ErrOtherKey):
		v.Problem = "It was signed with another key than ours: we did not issue it."
	default:
		v.Problem = "This is not a consent receipt of ours, or it is incomplete: use the file exactly as you downloaded it."
	}
	p.render(w, r, http.StatusOK, "receipt-verify", "Check a consent receipt", p.loggedIn(r), v)
}

// receiptFrom reads the receipt from the form: the file if one was chosen, else the
// pasted text.
func receiptFrom(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxReceipt)
	var err error
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		err = r.ParseMultipartForm(maxReceipt)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, apperr.Field("receipt", "too_large", "is larger than any receipt")
		}
		return nil, apperr.New(apperr.Invalid, "form_invalid", "the form could not be read; please try again")
	}
	if r.MultipartForm != nil {
		if fh := r.MultipartForm.File["file"]; len(fh) > 0 && fh[0].Size > 0 {
			f, err := fh[0].Open()
			if err != nil {
				return nil, apperr.Field("file", "unreadable", "could not be read")
			}
			defer f.Close()
			return io.ReadAll(io.LimitReader(f, maxReceipt))
		}
	}
	if text := strings.TrimSpace(r.FormValue("receipt")); text != "" {
		return []byte(text), nil
	}
	return nil, apperr.Field("file", "required", "is required: choose the file, or paste its text below")
}
