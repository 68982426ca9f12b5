package api

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"time"

	"steward/internal/account"
	"steward/internal/consent"
	"steward/internal/processors"
	"steward/internal/server"
)

func (a *API) registerConsent(mux server.Router) {
	mux.HandleFunc("GET /api/v1/purposes", a.purposes)
	mux.HandleFunc("GET /api/v1/me/consents", a.auth(a.consents))
	mux.HandleFunc("PUT /api/v1/me/consents", a.auth(a.putConsents))
	mux.HandleFunc("GET /api/v1/me/consents/history", a.auth(a.consentHistory))
	mux.HandleFunc("GET /api/v1/me/consents/receipts/{id}", a.auth(a.receipt))
	mux.HandleFunc("GET /.well-known/steward-receipt-key", a.receiptKey)
}

type purposeResponse struct {
	Key          string   `json:"key"`
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	LawfulBasis  string   `json:"lawful_basis"`
	NeedsConsent bool     `json:"needs_consent"`
	Objectable   bool     `json:"objectable"`
	Marketing    bool     `json:"marketing"`
	Sharing      bool     `json:"sharing"`
	Processors   []string `json:"processors"`
}

func toPurpose(p consent.Purpose, procs []processors.Processor) purposeResponse {
	keys := []string{}
	for _, pr := range procs {
		if slices.Contains(pr.Purposes, p.Key) {
			keys = append(keys, pr.Key)
		}
	}
	return purposeResponse{Key: p.Key, Name: p.Name, Description: p.Description, LawfulBasis: string(p.Basis),
		NeedsConsent: p.NeedsConsent(), Objectable: p.Objectable(), Marketing: p.Marketing, Sharing: p.Sharing, Processors: keys}
}

type processorResponse struct {
	Key        string   `json:"key"`
	Name       string   `json:"name"`
	Service    string   `json:"service"`
	Country    string   `json:"country"`
	Categories []string `json:"categories"`
	Safeguard  string   `json:"safeguard"`
}

// purposes is the public register: every purpose with its lawful basis, and every
// processor with what it receives and where it is.
func (a *API) purposes(w http.ResponseWriter, r *http.Request) {
	reg := a.Consent.Register()
	procs, err := a.Processors.Current(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ps := make([]purposeResponse, len(reg.Purposes))
	for i, p := range reg.Purposes {
		ps[i] = toPurpose(p, procs)
	}
	prs := make([]processorResponse, len(procs))
	for i, p := range procs {
		prs[i] = processorResponse{Key: p.Key, Name: p.Name, Service: p.Service, Country: p.Country, Categories: p.Categories,
			Safeguard: p.Safeguard}
	}
	version, err := a.Consent.PolicyVersion(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"policy_version": version, "purposes": ps, "processors": prs})
}

type choiceResponse struct {
	purposeResponse
	Decision  string    `json:"decision"`
	Source    string    `json:"source,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	EventID   int64     `json:"event_id,omitempty"`
	Allowed   bool      `json:"allowed"`
	Reason    string    `json:"reason"`
	// AwaitingGuardian: a child opted in, and the purpose waits for the guardian.
	AwaitingGuardian bool `json:"awaiting_guardian,omitempty"`
	// Reconfirm: a consent given before a material change of the privacy policy that
	// asks it again; it counts as not given until granted again.
	Reconfirm bool `json:"reconfirm,omitempty"`
}

type consentsResponse struct {
	PolicyVersion string           `json:"policy_version"`
	Restricted    bool             `json:"restricted"`
	Objected      bool             `json:"objected"`
	Purposes      []choiceResponse `json:"purposes"`
}

func (a *API) consentsFor(w http.ResponseWriter, r *http.Request, subjectID string) {
	choices, flags, err := a.Consent.Choices(r.Context(), subjectID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	awaiting, err := a.Accounts.PurposesAwaitingGuardian(r.Context(), subjectID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := a.Consent.PolicyVersion(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	procs, err := a.Processors.Current(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := consentsResponse{PolicyVersion: version, Restricted: flags.Restricted, Objected: flags.Objected}
	for _, c := range choices {
		out.Purposes = append(out.Purposes, choiceResponse{purposeResponse: toPurpose(c.Purpose, procs), Decision: string(c.Decision),
			Source: string(c.Source), DecidedAt: c.At, EventID: c.EventID, Allowed: c.Verdict.Allowed, Reason: c.Verdict.Reason,
			AwaitingGuardian: slices.Contains(awaiting, c.Purpose.Key), Reconfirm: c.Reconfirm})
	}
	server.WriteJSON(w, http.StatusOK, out)
}

func (a *API) consents(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.consentsFor(w, r, sess.AccountID)
}

type putConsentsRequest struct {
	Choices    map[string]bool `json:"choices"`
	Restricted *bool           `json:"restricted"`
	Objected   *bool           `json:"objected"`
}

// putConsents records the member's choices: true opts in (or lifts an objection),
// false withdraws (or objects). Only choices that change the current state are
// recorded. Unknown purposes are refused and nothing is recorded.
func (a *API) putConsents(w http.ResponseWriter, r *http.Request, sess account.Session) {
	var req putConsentsRequest
	if err := server.DecodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.SaveChoices(r, sess.AccountID, req.Choices, req.Restricted, req.Objected, consent.SourceAPI); err != nil {
		a.fail(w, r, err)
		return
	}
	a.consentsFor(w, r, sess.AccountID)
}

type eventResponse struct {
	ID            int64             `json:"id"`
	Purpose       string            `json:"purpose"`
	Decision      string            `json:"decision"`
	Source        string            `json:"source"`
	PolicyVersion string            `json:"policy_version"`
	Evidence      map[string]string `json:"evidence"`
	At            time.Time         `json:"at"`
	ReceiptURL    string            `json:"receipt_url"`
}

func (a *API) consentHistory(w http.ResponseWriter, r *http.Request, sess account.Session) {
	events, err := a.Consent.History(r.Context(), sess.AccountID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]eventResponse, len(events))
	for i, e := range events {
		out[i] = eventResponse{ID: e.ID, Purpose: e.Purpose, Decision: string(e.Decision), Source: string(e.Source),
			PolicyVersion: e.PolicyVersion, Evidence: e.Evidence, At: e.At,
			ReceiptURL: "/api/v1/me/consents/receipts/" + strconv.FormatInt(e.ID, 10)}
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
}

func (a *API) receipt(w http.ResponseWriter, r *http.Request, sess account.Session) {
	a.WriteReceipt(w, r, sess.AccountID, r.PathValue("id"), a.fail)
}

func (a *API) receiptKey(w http.ResponseWriter, r *http.Request) {
	pub := a.Consent.Signer().PublicKey()
	server.WriteJSON(w, http.StatusOK, map[string]string{"algorithm": "Ed25519", "key_id": consent.KeyID(pub),
		"public_key": base64.StdEncoding.EncodeToString(pub)})
}
