package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"steward/internal/access"
	"steward/internal/account"
	"steward/internal/analytics"
	"steward/internal/apperr"
	"steward/internal/breaches"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/disclosures"
	"steward/internal/files"
	"steward/internal/governance"
	"steward/internal/holds"
	"steward/internal/newsletter"
	"steward/internal/notices"
	"steward/internal/policy"
	"steward/internal/processors"
	"steward/internal/ratelimit"
	"steward/internal/requests"
	"steward/internal/retention"
	"steward/internal/rights"
	"steward/internal/ropa"
	"steward/internal/store"
	"steward/internal/text"
)

// Services are what the pages and the API share: the capabilities they call, the rate
// limits of the flows both offer, and how to read a request. Both take one Services,
// and the flows they have in common are its methods, so neither imports the other.
type Services struct {
	Accounts   *account.Service
	Rights     *rights.Service
	Files      *files.Service
	Consent    *consent.Service
	Newsletter *newsletter.Service
	Notices    *notices.Service
	Staff      *governance.Staff
	Requests   *requests.Service
	Holds      *holds.Service
	Retention  *retention.Service
	Policy     *policy.Service
	// The registers of disclosures to authorities and of personal data breaches.
	Disclosures *disclosures.Service
	Breaches    *breaches.Service
	Processors  *processors.Service
	// Records build the records of processing activities.
	Records ropa.Sources
	// Access checks staff reads of member data against grants, and records them.
	Access *access.Service
	// Analytics records beacons (nil: statistics are off); BeaconLimit limits them per
	// address, in this node's memory (nil: no limit).
	Analytics   *analytics.Service
	BeaconLimit *ratelimit.Local
	// Audit and DB serve the auditor's reading of the audit log.
	Audit *governance.Audit
	DB    *store.DB
	// Contacts are named in the privacy center.
	Contacts Contacts
	// Jobs (the app's queue) sends campaigns.
	Jobs   newsletter.Enqueuer
	Limits *Limits
	Log    *slog.Logger
	// CookieSecure marks the cookies Secure (the site is served over https).
	CookieSecure bool
	// TrustProxy reads the client's address from X-Forwarded-For (ClientIP).
	TrustProxy bool
	Now        func() time.Time
}

// Meta describes the request for the account service.
func (s *Services) Meta(r *http.Request) account.Meta { return Meta(r, s.TrustProxy) }

// ClientIP is the request's client address (see ClientIP).
func (s *Services) ClientIP(r *http.Request) string { return ClientIP(r, s.TrustProxy) }

// RegisterLimited registers under the registration limits, per IP and per address (a
// taken address mails its owner, who must not be flooded from many IPs).
func (s *Services) RegisterLimited(r *http.Request, reg account.Registration) (account.Registered, error) {
	if err := s.Limits.Register(r.Context(), s.ClientIP(r), reg.Email); err != nil {
		return account.Registered{}, err
	}
	out, err := s.Accounts.Register(r.Context(), reg, s.Meta(r))
	if err == nil {
		s.Convert(r, analytics.GoalRegistration)
	}
	return out, err
}

// LoginLimited logs in under the login rate limits (Limits.Login), and marks the
// browser a known device of the account when the login succeeds.
func (s *Services) LoginLimited(w http.ResponseWriter, r *http.Request, email, password string) (string, account.Session, error) {
	if email == "" {
		return "", account.Session{}, apperr.Field("email", "required", "is required")
	}
	if password == "" {
		return "", account.Session{}, apperr.Field("password", "required", "is required")
	}
	if err := s.Limits.Login(r.Context(), s.ClientIP(r), email, s.Limits.KnownDevice(r, email)); err != nil {
		return "", account.Session{}, err
	}
	token, sess, err := s.Accounts.Login(r.Context(), email, password, s.Meta(r))
	if err == nil {
		s.Limits.RememberDevice(w, r, email)
	}
	return token, sess, err
}

// ResetLimited asks for a reset link under the reset rate limits (per IP and per
// address).
func (s *Services) ResetLimited(r *http.Request, email string) error {
	if err := s.Limits.Reset(r.Context(), s.ClientIP(r), email); err != nil {
		return err
	}
	return s.Accounts.RequestPasswordReset(r.Context(), email, s.Meta(r))
}

// ResendLimited asks for a new confirmation mail under the resend rate limits (per IP
// and per address).
func (s *Services) ResendLimited(r *http.Request, email string) error {
	if err := s.Limits.Resend(r.Context(), s.ClientIP(r), email); err != nil {
		return err
	}
	return s.Accounts.ResendConfirmation(r.Context(), email, s.Meta(r))
}

// SubscribeLimited starts a newsletter subscription under the registration limits
// (per IP and per address): a confirmation mail goes out, nothing else.
func (s *Services) SubscribeLimited(r *http.Request, sub newsletter.Subscription) error {
	if err := s.Limits.Subscribe(r.Context(), s.ClientIP(r), sub.Email); err != nil {
		return err
	}
	err := s.Newsletter.Subscribe(r.Context(), sub, s.Evidence(r))
	if err == nil {
		s.Convert(r, analytics.GoalSubscription)
	}
	return err
}

// PublicProfile is a member's public profile. While the member's processing is
// restricted (GDPR art. 18) their data is kept, not shown: the profile answers as one
// that does not exist.
func (s *Services) PublicProfile(ctx context.Context, accountID string) (account.PublicProfile, error) {
	p, err := s.Accounts.Public(ctx, accountID)
	if err != nil {
		return p, err
	}
	f, err := s.Consent.Flags(ctx, p.ID)
	if err != nil {
		return account.PublicProfile{}, err
	}
	if f.Restricted {
		return account.PublicProfile{}, errNoPublicProfile
	}
	return p, nil
}

// errNoPublicProfile is Accounts.Public's answer for a member without a public profile.
var errNoPublicProfile = apperr.New(apperr.NotFound, "account_not_found", "no such account")

// GPC honours a request's Global Privacy Control signal for a known subject: an
// opt-out of every sharing purpose, recorded with the browser signal as its source.
func (s *Services) GPC(r *http.Request, subjectID string) error {
	if r.Header.Get("Sec-GPC") != "1" {
		return nil
	}
	_, err := s.Consent.ApplyGPC(r.Context(), subjectID, s.Evidence(r))
	return err
}

// Evidence is what a decision records about the request that made it.
func (s *Services) Evidence(r *http.Request) map[string]string {
	ev := map[string]string{"ip": s.ClientIP(r)}
	if ua := r.UserAgent(); ua != "" {
		ev["user_agent"] = text.Cut(ua, 300)
	}
	return ev
}

// SaveChoices records a member's choices and flags (consent.Service.SaveChoices) with
// the request as evidence. A child's own consent does not cover marketing or sharing
// (P-CHILD-3): those of a child's opt-ins wait for the guardian, who is mailed a link
// per purpose, and are not recorded until the guardian agrees. Withdrawals, and what a
// guardian agreed to already, are recorded as they are.
func (s *Services) SaveChoices(r *http.Request, accountID string, choices map[string]bool, restricted, objected *bool, src consent.Source) error {
	ctx := r.Context()
	asked, held, withdrawn, err := s.guardianWaits(ctx, accountID, choices)
	if err != nil {
		return err
	}
	// A withdrawn ask ends first: its link must not grant what the child took back.
	if err := s.Accounts.CancelGuardianPurposes(ctx, accountID, withdrawn); err != nil {
		return err
	}
	if len(held) > 0 {
		kept := make(map[string]bool, len(choices))
		for k, v := range choices {
			kept[k] = v
		}
		for _, k := range held {
			delete(kept, k)
		}
		choices = kept
	}
	if err := s.Consent.SaveChoices(ctx, accountID, choices, restricted, objected, src, s.Evidence(r)); err != nil {
		return err
	}
	return s.Accounts.AskGuardianForPurposes(ctx, accountID, asked, s.Meta(r))
}

// guardianWaits sorts a child's choices of marketing and sharing purposes: held are
// the opt-ins that wait for the guardian (not granted already), which are not recorded;
// asked are those of them the guardian is to be mailed about (not asked already); and
// withdrawn are the asks the child takes back. An adult, or a subject that is not an
// account, waits for no one. A child whose guardian never agreed to the account
// cannot ask: nothing is saved then.
func (s *Services) guardianWaits(ctx context.Context, accountID string, choices map[string]bool) (asked []account.AskedPurpose, held, withdrawn []string, err error) {
	var wanted []string
	for k := range choices {
		if p, ok := s.Consent.Register().Purpose(k); ok && (p.Marketing || p.Sharing) {
			wanted = append(wanted, k)
		}
	}
	if len(wanted) == 0 {
		return nil, nil, nil, nil
	}
	p, err := s.Accounts.Profile(ctx, accountID)
	if apperr.KindOf(err) == apperr.NotFound {
		return nil, nil, nil, nil
	}
	if err != nil || !s.Accounts.Minor(p) {
		return nil, nil, nil, err
	}
	current, _, err := s.Consent.Choices(ctx, accountID)
	if err != nil {
		return nil, nil, nil, err
	}
	granted := map[string]bool{}
	for _, c := range current {
		granted[c.Purpose.Key] = c.Decision == consent.Granted
	}
	awaiting, err := s.Accounts.PurposesAwaitingGuardian(ctx, accountID)
	if err != nil {
		return nil, nil, nil, err
	}
	slices.Sort(wanted)
	for _, k := range wanted {
		switch {
		case !choices[k]:
			if slices.Contains(awaiting, k) {
				withdrawn = append(withdrawn, k)
			}
		case granted[k]:
		case slices.Contains(awaiting, k):
			held = append(held, k)
		default:
			held = append(held, k)
			pu, _ := s.Consent.Register().Purpose(k)
			asked = append(asked, account.AskedPurpose{Key: pu.Key, Name: pu.Name, Description: pu.Description})
		}
	}
	if len(asked) > 0 && !p.GuardianConfirmed {
		return nil, nil, nil, account.ErrNoGuardian
	}
	return asked, held, withdrawn, nil
}

// DecideGuardianPurpose records a guardian's answer to a child's choice: agreed, the
// purpose is granted in the child's ledger with the guardian's link as its source;
// either way the link is used up.
func (s *Services) DecideGuardianPurpose(r *http.Request, token string, agree bool) (account.GuardianPurposeRequest, error) {
	ctx := r.Context()
	req, err := s.Accounts.GuardianPurposeFor(ctx, token)
	if err != nil {
		return req, err
	}
	if agree {
		ev := s.Evidence(r)
		ev["check"] = "guardian's link opened"
		if err := s.Consent.Apply(ctx, req.AccountID, map[string]consent.Decision{req.Purpose: consent.Granted}, nil,
			consent.SourceGuardian, ev); err != nil {
			return req, err
		}
	}
	return req, s.Accounts.CloseGuardianPurpose(ctx, req, token, agree, s.Meta(r))
}

// FailFunc answers a request with an error, as a page or as JSON.
type FailFunc func(http.ResponseWriter, *http.Request, error)

// WriteReceipt answers with a signed receipt as a JSON attachment.
func (s *Services) WriteReceipt(w http.ResponseWriter, r *http.Request, subjectID, rawID string, fail FailFunc) {
	id, err := strconv.ParseInt(rawID, 10, 64)
	if err != nil {
		fail(w, r, apperr.New(apperr.NotFound, "event_not_found", "no such consent decision"))
		return
	}
	sig, err := s.Consent.Receipt(r.Context(), subjectID, id)
	if err != nil {
		fail(w, r, err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="consent-receipt-`+rawID+`.json"`)
	WriteJSON(w, http.StatusOK, sig)
}

// WriteExport streams the subject's portability archive: files of any size pass
// through without being held in memory. A failure before anything is written is an
// error answer; a failure half-way aborts the connection, so the client sees a broken
// download rather than a truncated archive that looks whole.
func (s *Services) WriteExport(w http.ResponseWriter, r *http.Request, subj datamap.Subject, fail FailFunc) {
	now := s.Now()
	cw := &countingWriter{w: w, before: func() {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="steward-export-%s.zip"`, now.UTC().Format("20060102-150405")))
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}}
	if err := s.Rights.Export(r.Context(), subj, cw); err != nil {
		if cw.n == 0 {
			fail(w, r, err)
			return
		}
		panic(http.ErrAbortHandler)
	}
}

// countingWriter sets the headers before the first byte and counts what it wrote.
type countingWriter struct {
	w      io.Writer
	n      int64
	before func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && c.before != nil {
		c.before()
		c.before = nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ErasureHolds returns the legal holds that keep data of an erasure request's subject
// while the request waits on them; none for any other request.
func (s *Services) ErasureHolds(ctx context.Context, req rights.Request) ([]holds.Hold, error) {
	if req.State != rights.StateHolding || req.SubjectID == "" {
		return nil, nil
	}
	return s.Holds.InForce(ctx, req.SubjectID)
}
