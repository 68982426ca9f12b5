package consent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"steward/internal/apperr"
	"steward/internal/store"
	"steward/internal/vault"
)

// Decision is what a subject decided about a purpose.
type Decision string

// The decisions. On a legitimate-interest purpose, withdrawn is an objection.
const (
	Granted   Decision = "granted"
	Withdrawn Decision = "withdrawn"
)

// The restriction of processing (article 18) and the objection to all processing on
// legitimate interest (article 21) are decisions too: the ledger keeps each change
// under these reserved keys, with its source and evidence, and a receipt can be had
// for it like for any decision. Their current state is the subject's Flags.
const (
	FlagRestriction = "restriction"
	FlagObjection   = "objection"
	// FlagSet and FlagLifted are the decisions of the reserved keys.
	FlagSet    Decision = "set"
	FlagLifted Decision = "lifted"
)

// IsFlag reports whether key is one of the reserved keys of the flags.
func IsFlag(key string) bool { return key == FlagRestriction || key == FlagObjection }

// FlagName is how a reserved key is named to a person.
func FlagName(key string) string {
	switch key {
	case FlagRestriction:
		return "Restriction of processing (GDPR art. 18)"
	case FlagObjection:
		return "Objection to processing on legitimate interest (GDPR art. 21)"
	}
	return key
}

// Source is where a decision came from.
type Source string

// The sources of decisions.
const (
	SourceForm          Source = "form"
	SourceAPI           Source = "api"
	SourceEmailLink     Source = "email_link"
	SourceInboundEmail  Source = "inbound_email"
	SourceBrowserSignal Source = "browser_signal"
	SourceImport        Source = "import"
	// SourceAccountLink: a subscription joined the account with the same address, and
	// the more protective of their flags holds.
	SourceAccountLink Source = "account_link"
	// SourceGuardian: a child's parent or guardian agreed, by the link mailed to them.
	SourceGuardian Source = "guardian"
	// SourceRequest: staff carried out a privacy request made without logging in,
	// once the requester's identity was verified (the evidence names the request).
	SourceRequest Source = "privacy_request"
	// SourceCookieBanner and SourceCookiePage: the cookie banner's buttons, or the
	// cookie page's form, of a member who is logged in.
	SourceCookieBanner Source = "cookie_banner"
	SourceCookiePage   Source = "cookie_page"
)

// Event is one entry of the ledger. Its evidence is stored sealed under the subject's
// data key; an Event holds it opened.
type Event struct {
	ID            int64
	SubjectID     string
	Purpose       string
	Decision      Decision
	Source        Source
	PolicyVersion string
	Evidence      map[string]string
	At            time.Time
}

// ConflictWindow is how close two disagreeing decisions from different sources must be
// to count as a conflict rather than a change of mind.
const ConflictWindow = 30 * 24 * time.Hour

// Service is the consent capability.
type Service struct {
	db            *store.DB
	reg           *Register
	policyVersion string
	now           func() time.Time
	signer        *Signer
	vault         *vault.Vault
	granted       func(ctx context.Context, tx *store.Tx, subjectID string, p Purpose) error
	changed       func(ctx context.Context, tx *store.Tx, subjectID string) error
	restricted    func(ctx context.Context, tx *store.Tx, subjectID string, on bool, requestID string) error
	version       func(ctx context.Context, q store.Querier) (string, error)
}

func (s *Service) onChange(ctx context.Context, tx *store.Tx, subjectID string) error {
	if s.changed == nil {
		return nil
	}
	return s.changed(ctx, tx, subjectID)
}

// Hooks are what follows, in other capabilities, from a change of the ledger.
type Hooks struct {
	// Changed runs on any change of a subject's decisions or flags (the newsletter
	// recomputes whom it may mail). It runs in the change's transaction, after the
	// ledger's writes: what it derives commits with the change or not at all.
	Changed func(ctx context.Context, tx *store.Tx, subjectID string) error
	// Granted runs on a subject's opt-in to a purpose (a member who opts in to
	// marketing mail joins the mailing list). It runs in the opt-in's transaction,
	// before Changed, so the recomputed audience sees its writes.
	Granted func(ctx context.Context, tx *store.Tx, subjectID string, p Purpose) error
	// Restricted runs when the subject's restriction of processing is set (on) or
	// lifted (the processors are told), in the change's transaction. requestID is the
	// privacy request the change answers, which names itself in the change's evidence
	// as "request_id"; "" when none does.
	Restricted func(ctx context.Context, tx *store.Tx, subjectID string, on bool, requestID string) error
	// PolicyVersion returns the version of the privacy policy in effect now (the
	// policy register), read in q: each decision records it. Without it, the version
	// given to New is recorded.
	PolicyVersion func(ctx context.Context, q store.Querier) (string, error)
}

// New returns the consent service. Evidence is sealed under each subject's data key in v.
// policyVersion is recorded with decisions when hooks.PolicyVersion is nil.
func New(db *store.DB, reg *Register, policyVersion string, signer *Signer, v *vault.Vault, hooks Hooks, now func() time.Time) *Service {
	return &Service{db: db, reg: reg, policyVersion: policyVersion, now: now, signer: signer, vault: v,
		granted: hooks.Granted, changed: hooks.Changed, restricted: hooks.Restricted, version: hooks.PolicyVersion}
}

// Register returns the register of purposes and processors.
func (s *Service) Register() *Register { return s.reg }

// Signer returns the receipt signer.
func (s *Service) Signer() *Signer { return s.signer }

// PolicyVersion is the version of the privacy policy in effect now: the one a decision
// made now records.
func (s *Service) PolicyVersion(ctx context.Context) (string, error) { return s.versionIn(ctx, s.db) }

// versionIn is the version in effect, read in q.
func (s *Service) versionIn(ctx context.Context, q store.Querier) (string, error) {
	if s.version == nil {
		return s.policyVersion, nil
	}
	v, err := s.version(ctx, q)
	if err != nil {
		return "", fmt.Errorf("consent: policy version: %w", err)
	}
	return v, nil
}

// Record appends a decision to the ledger. Only purposes that depend on the subject's
// choice take one: consent (opt-in, withdrawal) and legitimate interest (objection).
func (s *Service) Record(ctx context.Context, subjectID, purpose string, d Decision, src Source, evidence map[string]string) (Event, error) {
	var e Event
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if e, err = s.RecordTx(ctx, tx, subjectID, purpose, d, src, evidence); err != nil {
			return err
		}
		if d == Granted {
			if err := s.onGrant(ctx, tx, subjectID, purpose); err != nil {
				return err
			}
		}
		return s.onChange(ctx, tx, subjectID)
	})
	return e, err
}

func (s *Service) onGrant(ctx context.Context, tx *store.Tx, subjectID, purpose string) error {
	p, ok := s.reg.Purpose(purpose)
	if !ok || s.granted == nil {
		return nil
	}
	return s.granted(ctx, tx, subjectID, p)
}

// RecordTx is Record inside the caller's transaction. The evidence is sealed under the
// subject's data key, made in tx if the subject has none yet (a subscriber's first
// decision).
func (s *Service) RecordTx(ctx context.Context, tx *store.Tx, subjectID, purpose string, d Decision, src Source, evidence map[string]string) (Event, error) {
	if err := s.check(purpose, d); err != nil {
		return Event{}, err
	}
	key, err := s.vault.KeyIn(ctx, tx, subjectID, true)
	if err != nil {
		return Event{}, fmt.Errorf("consent: record: %w", err)
	}
	return s.recordTx(ctx, tx, key, purpose, d, src, evidence)
}

// check says whether a decision about purpose can be recorded.
func (s *Service) check(purpose string, d Decision) error {
	p, ok := s.reg.Purpose(purpose)
	if !ok {
		return apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	}
	if !p.NeedsConsent() && !p.Objectable() {
		return apperr.Field("purpose", "purpose_not_optional",
			fmt.Sprintf("%s is needed for the service you use (%s) and does not depend on a choice", p.Name, p.Basis))
	}
	if d != Granted && d != Withdrawn {
		return apperr.Field("decision", "decision_invalid", "must be granted or withdrawn")
	}
	return nil
}

// recordTx appends a checked decision of key's subject, its evidence sealed under key.
func (s *Service) recordTx(ctx context.Context, tx *store.Tx, key *vault.Key, purpose string, d Decision, src Source, evidence map[string]string) (Event, error) {
	subjectID := key.Subject()
	if evidence == nil {
		evidence = map[string]string{}
	}
	version, err := s.versionIn(ctx, tx)
	if err != nil {
		return Event{}, err
	}
	e := Event{SubjectID: subjectID, Purpose: purpose, Decision: d, Source: src, PolicyVersion: version,
		Evidence: evidence, At: s.now().UTC()}
	at := store.Millis(e.At)

	var prevID, prevAt int64
	var prevDecision, prevSource string
	err = tx.QueryRowContext(ctx, `SELECT s.event_id, s.decision, s.at, e.source FROM consent_state s
		JOIN consent_events e ON e.id = s.event_id WHERE s.subject_id = $1 AND s.purpose = $2`, subjectID, purpose).
		Scan(&prevID, &prevDecision, &prevAt, &prevSource)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Event{}, fmt.Errorf("consent: record: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO consent_events (subject_id, purpose, decision, source, policy_version, evidence, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, subjectID, purpose, d, src, version, sealEvidence(key, evidence), at).Scan(&e.ID); err != nil {
		return Event{}, fmt.Errorf("consent: record: %w", err)
	}
	// The newest event wins, always.
	if _, err := tx.ExecContext(ctx, `INSERT INTO consent_state (subject_id, purpose, decision, event_id, at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject_id, purpose) DO UPDATE SET decision = excluded.decision, event_id = excluded.event_id, at = excluded.at`,
		subjectID, purpose, d, e.ID, at); err != nil {
		return Event{}, fmt.Errorf("consent: record: %w", err)
	}
	if prevID != 0 && prevDecision != string(d) && prevSource != string(src) && at-prevAt < ConflictWindow.Milliseconds() {
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_conflicts (subject_id, purpose, earlier_id, later_id, at) VALUES ($1, $2, $3, $4, $5)`,
			subjectID, purpose, prevID, e.ID, at); err != nil {
			return Event{}, fmt.Errorf("consent: record conflict: %w", err)
		}
	}
	return e, nil
}

// Flags are the restriction of processing (article 18) and the objection to processing
// on legitimate interest, direct marketing included (article 21).
type Flags struct {
	Restricted bool
	Objected   bool
}

// Flags returns the subject's flags.
func (s *Service) Flags(ctx context.Context, subjectID string) (Flags, error) {
	return flagsOf(ctx, s.db, subjectID)
}

func flagsOf(ctx context.Context, q store.Querier, subjectID string) (Flags, error) {
	var f Flags
	var r, o int
	err := q.QueryRowContext(ctx, `SELECT restricted, objected FROM processing_flags WHERE subject_id = $1`, subjectID).Scan(&r, &o)
	if errors.Is(err, sql.ErrNoRows) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("consent: flags: %w", err)
	}
	return Flags{Restricted: r == 1, Objected: o == 1}, nil
}

// Apply records a set of decisions and, when flags is not nil, the flags, in one
// transaction: a form or a request is saved whole or not at all. Decisions that change
// nothing (the same as the current one, or "no" to a consent never given, or "no
// objection" to a purpose never objected to) are not recorded.
func (s *Service) Apply(ctx context.Context, subjectID string, decisions map[string]Decision, flags *Flags, src Source, evidence map[string]string) error {
	keys := make([]string, 0, len(decisions))
	for k := range decisions {
		if _, ok := s.reg.Purpose(k); !ok {
			return apperr.Field("choices."+k, "purpose_unknown", "is not a registered purpose")
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		var grants []string
		changed := false
		// The subject's key, read (or made) once, when a first change is recorded.
		var key *vault.Key
		subjectKey := func() (*vault.Key, error) {
			if key != nil {
				return key, nil
			}
			var err error
			if key, err = s.vault.KeyIn(ctx, tx, subjectID, true); err != nil {
				return nil, fmt.Errorf("consent: apply: %w", err)
			}
			return key, nil
		}
		for _, k := range keys {
			p, _ := s.reg.Purpose(k)
			var cur string
			var stale int
			if err := tx.QueryRowContext(ctx, `SELECT s.decision, (SELECT count(*) FROM consent_reconfirm r WHERE r.purpose = s.purpose AND r.since > s.at)
				FROM consent_state s WHERE s.subject_id = $1 AND s.purpose = $2`, subjectID, k).
				Scan(&cur, &stale); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("consent: apply: %w", err)
			}
			want := decisions[k]
			// A consent asked again (stale) is given anew by a grant: recorded, though
			// the decision is the same. A "no" to a cookie category never given is
			// recorded when it is a cookie choice (the banner, the cookie page, the
			// API): an answer the banner must not ask again. The preferences form
			// sends every purpose, touched or not, and records only changes.
			answered := p.Cookies != "" && src != SourceForm
			if (Decision(cur) == want && !(stale > 0 && want == Granted)) || (cur == "" && ((want == Withdrawn && p.NeedsConsent() && !answered) || (want == Granted && p.Objectable()))) {
				continue
			}
			if err := s.check(k, want); err != nil {
				if e, ok := apperr.As(err); ok && e.Field == "purpose" {
					e2 := *e
					e2.Field = "choices." + k
					return &e2
				}
				return err
			}
			sk, err := subjectKey()
			if err != nil {
				return err
			}
			if _, err := s.recordTx(ctx, tx, sk, k, want, src, evidence); err != nil {
				return err
			}
			changed = true
			if want == Granted {
				grants = append(grants, k)
			}
		}
		if flags != nil {
			cur, err := flagsOf(ctx, tx, subjectID)
			if err != nil {
				return err
			}
			if cur != *flags {
				changed = true
				k, err := subjectKey()
				if err != nil {
					return err
				}
				if err := s.recordFlags(ctx, tx, k, cur, *flags, src, evidence); err != nil {
					return err
				}
				if err := s.setFlags(ctx, tx, subjectID, *flags); err != nil {
					return err
				}
				if cur.Restricted != flags.Restricted && s.restricted != nil {
					if err := s.restricted(ctx, tx, subjectID, flags.Restricted, evidence["request_id"]); err != nil {
						return err
					}
				}
			}
		}
		if !changed {
			return nil
		}
		// What follows from the change commits with it.
		for _, k := range grants {
			if err := s.onGrant(ctx, tx, subjectID, k); err != nil {
				return err
			}
		}
		return s.onChange(ctx, tx, subjectID)
	})
}

// SetFlags sets the subject's flags (source: API), each change recorded in the ledger.
func (s *Service) SetFlags(ctx context.Context, subjectID string, f Flags) error {
	return s.Apply(ctx, subjectID, nil, &f, SourceAPI, nil)
}

// recordFlags appends an event of key's subject for each flag that changes from cur
// to want, its evidence sealed under key.
func (s *Service) recordFlags(ctx context.Context, tx *store.Tx, key *vault.Key, cur, want Flags, src Source, evidence map[string]string) error {
	subjectID := key.Subject()
	ev := sealEvidence(key, evidence)
	at := store.Millis(s.now())
	version, err := s.versionIn(ctx, tx)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		key      string
		from, to bool
	}{{FlagRestriction, cur.Restricted, want.Restricted}, {FlagObjection, cur.Objected, want.Objected}} {
		if f.from == f.to {
			continue
		}
		d := FlagLifted
		if f.to {
			d = FlagSet
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_events (subject_id, purpose, decision, source, policy_version, evidence, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, subjectID, f.key, d, src, version, ev, at); err != nil {
			return fmt.Errorf("consent: record flags: %w", err)
		}
	}
	return nil
}

func (s *Service) setFlags(ctx context.Context, q store.Querier, subjectID string, f Flags) error {
	_, err := q.ExecContext(ctx, `INSERT INTO processing_flags (subject_id, restricted, objected, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (subject_id) DO UPDATE SET restricted = excluded.restricted, objected = excluded.objected, updated_at = excluded.updated_at`,
		subjectID, b2i(f.Restricted), b2i(f.Objected), store.Millis(s.now()))
	if err != nil {
		return fmt.Errorf("consent: flags: %w", err)
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Verdict is the answer of Allowed, with the reason.
type Verdict struct {
	Allowed bool
	Reason  string
}

// Allowed answers "may we process subject for purpose now?": the one place that
// decides, taking the lawful basis, the newest decision, restriction and objection
// into account. Every sending path asks it.
func (s *Service) Allowed(ctx context.Context, subjectID, purpose string) (Verdict, error) {
	p, ok := s.reg.Purpose(purpose)
	if !ok {
		return Verdict{}, apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	}
	flags, err := s.Flags(ctx, subjectID)
	if err != nil {
		return Verdict{}, err
	}
	var decision sql.NullString
	var erasing, stale int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT decision FROM consent_state WHERE subject_id = $1 AND purpose = $2),
		(SELECT count(*) FROM erasure_requests WHERE subject_id = $1), `+staleCount+``, subjectID, purpose).Scan(&decision, &erasing, &stale); err != nil {
		return Verdict{}, fmt.Errorf("consent: allowed: %w", err)
	}
	if erasing > 0 && p.Basis != LegalObligation {
		// Being erased: what legal holds keep is kept, not used.
		return Verdict{false, "the subject is being erased"}, nil
	}
	return decide(p, flags, Decision(decision.String), stale > 0), nil
}

// staleCount counts, for subject $1 and purpose $2, the material changes of the policy
// that ask the purpose again since the subject's current decision about it was made.
const staleCount = `(SELECT count(*) FROM consent_state c JOIN consent_reconfirm r ON r.purpose = c.purpose
		WHERE c.subject_id = $1 AND c.purpose = $2 AND r.since > c.at)`

// decide is the rule itself, shared with the bulk audience query's tests. stale says
// that a material change of the policy asked the purpose again after the decision d
// was made (consent_reconfirm): a consent given before it counts as not given until
// the subject confirms it again. A withdrawal or an objection stays as it is.
func decide(p Purpose, f Flags, d Decision, stale bool) Verdict {
	switch p.Basis {
	case Contract, LegalObligation:
		return Verdict{true, "needed for " + string(p.Basis)}
	}

	if f.Restricted {
		return Verdict{false, "processing is restricted"}
	}
	if f.Objected && (p.Marketing || p.Basis == LegitimateInterest) {
		return Verdict{false, "the subject objected"}
	}
	if stale && p.Basis == Consent && d == Granted {
		return Verdict{false, "consent to confirm again: the privacy policy changed since it was given"}
	}
	switch {
	case p.Basis == Consent && d == Granted:
		return Verdict{true, "consent given"}
	case p.Basis == Consent && d == Withdrawn:
		return Verdict{false, "consent withdrawn"}
	case p.Basis == Consent:
		return Verdict{false, "no consent given"}
	case d == Withdrawn:
		return Verdict{false, "the subject objected to this purpose"}
	}
	return Verdict{true, "legitimate interest, no objection"}
}

// Choice is a purpose with the subject's current decision and what it means.
type Choice struct {
	Purpose  Purpose
	Decision Decision // "" when none was ever made
	Source   Source
	At       time.Time
	EventID  int64
	Verdict  Verdict
	// Reconfirm: the consent was given before a material change of the privacy policy
	// that asks it again; it counts as not given until confirmed.
	Reconfirm bool
}

// Choices returns every registered purpose with the subject's current decision.
func (s *Service) Choices(ctx context.Context, subjectID string) ([]Choice, Flags, error) {
	flags, err := s.Flags(ctx, subjectID)
	if err != nil {
		return nil, flags, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT s.purpose, s.decision, s.at, s.event_id, e.source,
		(SELECT count(*) FROM consent_reconfirm r WHERE r.purpose = s.purpose AND r.since > s.at) FROM consent_state s
		JOIN consent_events e ON e.id = s.event_id WHERE s.subject_id = $1`, subjectID)
	if err != nil {
		return nil, flags, fmt.Errorf("consent: choices: %w", err)
	}
	defer rows.Close()
	cur := map[string]Choice{}
	for rows.Next() {
		var c Choice
		var purpose string
		var at, stale int64
		if err := rows.Scan(&purpose, &c.Decision, &at, &c.EventID, &c.Source, &stale); err != nil {
			return nil, flags, fmt.Errorf("consent: choices: %w", err)
		}
		c.At = store.FromMillis(at)
		c.Reconfirm = stale > 0 && c.Decision == Granted
		cur[purpose] = c
	}
	if err := rows.Err(); err != nil {
		return nil, flags, err
	}
	out := make([]Choice, 0, len(s.reg.Purposes))
	for _, p := range s.reg.Purposes {
		c := cur[p.Key]
		c.Purpose = p
		c.Reconfirm = c.Reconfirm && p.NeedsConsent()
		c.Verdict = decide(p, flags, c.Decision, c.Reconfirm)
		out = append(out, c)
	}
	return out, flags, nil
}

// eventQuery reads events with their subject's key.
var eventQuery = `SELECT e.id, e.subject_id, e.purpose, e.decision, e.source, e.policy_version, e.evidence, e.at, ` +
	keyColumns + ` FROM consent_events e ` + vault.KeyJoin("k", "e.subject_id")

// History returns the subject's ledger, newest first, its evidence opened.
func (s *Service) History(ctx context.Context, subjectID string) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, eventQuery+` WHERE e.subject_id = $1 ORDER BY e.id DESC`, subjectID)
	if err != nil {
		return nil, fmt.Errorf("consent: history: %w", err)
	}
	defer rows.Close()
	var out []Event
	keys := map[string]*vault.Key{}
	for rows.Next() {
		e, err := s.scanEvent(rows, keys)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanEvent reads a row of eventQuery and opens its evidence.
func (s *Service) scanEvent(r interface{ Scan(...any) error }, keys map[string]*vault.Key) (Event, error) {
	var e Event
	var ev string
	var at int64
	var wrapped []byte
	var epoch sql.NullInt64
	if err := r.Scan(&e.ID, &e.SubjectID, &e.Purpose, &e.Decision, &e.Source, &e.PolicyVersion, &ev, &at, &wrapped, &epoch); err != nil {
		return Event{}, fmt.Errorf("consent: event: %w", err)
	}
	key, err := s.rowKey(keys, e.SubjectID, wrapped, epoch)
	if err != nil {
		return Event{}, err
	}
	if e.Evidence, err = openEvidence(key, ev); err != nil {
		return Event{}, err
	}
	e.At = store.FromMillis(at)
	return e, nil
}

// Event returns one of the subject's events, its evidence opened; another subject's is
// not found.
func (s *Service) Event(ctx context.Context, subjectID string, id int64) (Event, error) {
	e, err := s.scanEvent(s.db.QueryRowContext(ctx, eventQuery+` WHERE e.id = $1 AND e.subject_id = $2`, id, subjectID), map[string]*vault.Key{})
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, apperr.New(apperr.NotFound, "event_not_found", "no such consent decision")
	}
	if err != nil {
		return Event{}, err
	}
	return e, nil
}

// ApplyGPC records a request's Global Privacy Control signal as an opt-out of every
// sharing purpose the subject has not already opted out of. The signal overrides an
// earlier opt-in once; an opt-in the subject makes deliberately after the signal was
// honoured stands (the newest decision wins, and the signal is not a new decision on
// every page). It returns how many it recorded; a signal already honoured costs one
// query.
func (s *Service) ApplyGPC(ctx context.Context, subjectID string, evidence map[string]string) (int, error) {
	var sharing []string
	for _, p := range s.reg.Purposes {
		if p.Sharing {
			sharing = append(sharing, p.Key)
		}
	}
	if len(sharing) == 0 {
		return 0, nil
	}
	// A purpose is done with when it is withdrawn, or when a browser signal was already
	// honoured for it (whatever the subject decided since).
	rows, err := s.db.QueryContext(ctx, `SELECT purpose FROM consent_state WHERE subject_id = $1 AND decision = $2
		UNION SELECT purpose FROM consent_events WHERE subject_id = $1 AND source = $3`, subjectID, Withdrawn, SourceBrowserSignal)
	if err != nil {
		return 0, fmt.Errorf("consent: gpc: %w", err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, err
		}
		out[p] = true
	}
	rows.Close()
	n := 0
	for _, p := range sharing {
		if out[p] {
			continue
		}
		ev := map[string]string{"signal": "Sec-GPC: 1"}
		for k, v := range evidence {
			ev[k] = v
		}
		if _, err := s.Record(ctx, subjectID, p, Withdrawn, SourceBrowserSignal, ev); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Conflict is a disagreement between two sources about one purpose.
type Conflict struct {
	ID        int64
	SubjectID string
	Purpose   string
	Earlier   Event
	Later     Event
	At        time.Time
}

// Conflicts returns the newest conflicts, for staff.
func (s *Service) Conflicts(ctx context.Context, limit int) ([]Conflict, error) {
	list, _, err := s.ConflictsPage(ctx, "", 0, limit)
	return list, err
}

// ConflictsPage returns a page of the conflicts, newest first, about one purpose (""
// for any): limit of them after the first offset, and how many there are in all.
func (s *Service) ConflictsPage(ctx context.Context, purpose string, offset, limit int) ([]Conflict, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM consent_conflicts WHERE ($1 = '' OR purpose = $1)`, purpose).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("consent: conflicts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, subject_id, purpose, earlier_id, later_id, at FROM consent_conflicts
		WHERE ($1 = '' OR purpose = $1) ORDER BY id DESC LIMIT $2 OFFSET $3`, purpose, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("consent: conflicts: %w", err)
	}
	var out []Conflict
	var ids [][2]int64
	for rows.Next() {
		var c Conflict
		var e, l, at int64
		if err := rows.Scan(&c.ID, &c.SubjectID, &c.Purpose, &e, &l, &at); err != nil {
			rows.Close()
			return nil, 0, err
		}
		c.At = store.FromMillis(at)
		out = append(out, c)
		ids = append(ids, [2]int64{e, l})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("consent: conflicts: %w", err)
	}
	for i := range out {
		if out[i].Earlier, err = s.Event(ctx, out[i].SubjectID, ids[i][0]); err != nil {
			return nil, 0, err
		}
		if out[i].Later, err = s.Event(ctx, out[i].SubjectID, ids[i][1]); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// AllowedSQL returns a SQL condition, true for the subjects whose id is in column col
// that Allowed would allow for the purpose now: the same rule, for a whole audience at
// once (a test keeps the two in agreement). The purpose key is checked and inlined;
// the condition takes no arguments.
func (s *Service) AllowedSQL(purpose, col string) (string, error) {
	p, ok := s.reg.Purpose(purpose)
	if !ok {
		return "", apperr.Field("purpose", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", purpose))
	}
	if !keyRE.MatchString(p.Key) {
		return "", fmt.Errorf("consent: purpose key %q cannot be inlined", p.Key)
	}
	// A subject being erased is used for nothing but legal obligations: what legal
	// holds keep of it is kept, not used.
	erasing := fmt.Sprintf("NOT EXISTS (SELECT 1 FROM erasure_requests r WHERE r.subject_id = %s)", col)
	switch p.Basis {
	case LegalObligation:
		return "1 = 1", nil
	case Contract:
		return erasing, nil
	}
	var blocked string
	if p.Marketing || p.Basis == LegitimateInterest {
		blocked = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM processing_flags f WHERE f.subject_id = %s AND (f.restricted = 1 OR f.objected = 1))", col)
	} else {
		blocked = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM processing_flags f WHERE f.subject_id = %s AND f.restricted = 1)", col)
	}
	if p.Basis == Consent {
		// A consent given before a material change of the policy that asks the purpose
		// again is not one (decide's stale).
		return fmt.Sprintf("EXISTS (SELECT 1 FROM consent_state c WHERE c.subject_id = %s AND c.purpose = '%s' AND c.decision = 'granted'"+
			" AND NOT EXISTS (SELECT 1 FROM consent_reconfirm r WHERE r.purpose = c.purpose AND r.since > c.at)) AND %s AND %s",
			col, p.Key, blocked, erasing), nil
	}
	return fmt.Sprintf("NOT EXISTS (SELECT 1 FROM consent_state c WHERE c.subject_id = %s AND c.purpose = '%s' AND c.decision = 'withdrawn') AND %s AND %s",
		col, p.Key, blocked, erasing), nil
}

// Rekey moves a subject's ledger, conflicts and flags to another subject id, in tx, and
// derives the state afresh from the merged ledger (the newest event per purpose wins):
// a newsletter subscriber who registers with the same verified address becomes one
// subject with the account. The decisions themselves are not changed; their evidence
// is sealed again under the surviving subject's key (made in tx if it has none), so
// from's key seals nothing of the ledger afterwards.
func (s *Service) Rekey(ctx context.Context, tx *store.Tx, from, to string) error {
	if from == to {
		return nil
	}
	toKey, err := s.vault.KeyIn(ctx, tx, to, true)
	if err != nil {
		return fmt.Errorf("consent: rekey: %w", err)
	}
	if err := s.reseal(ctx, tx, from, toKey); err != nil {
		return err
	}
	// The flags combine to the more protective: a restriction or objection of either
	// holds for the one subject (and, where that changes the surviving subject's flags,
	// the change is a ledger event of its own).
	fromFlags, err := flagsOf(ctx, tx, from)
	if err != nil {
		return err
	}
	toFlags, err := flagsOf(ctx, tx, to)
	if err != nil {
		return err
	}
	merged := Flags{Restricted: fromFlags.Restricted || toFlags.Restricted, Objected: fromFlags.Objected || toFlags.Objected}
	for _, q := range []string{
		`UPDATE consent_conflicts SET subject_id = $1 WHERE subject_id = $2`,
		`DELETE FROM consent_state WHERE subject_id IN ($1, $2)`,
		`DELETE FROM processing_flags WHERE subject_id = $2 AND $1 <> ''`,
		`INSERT INTO consent_state (subject_id, purpose, decision, event_id, at)
		 SELECT e.subject_id, e.purpose, e.decision, e.id, e.at FROM consent_events e
		 WHERE e.subject_id = $1 AND e.purpose NOT IN ('restriction', 'objection')
		 AND e.id = (SELECT max(id) FROM consent_events x WHERE x.subject_id = $1 AND x.purpose = e.purpose)
		 AND $2 <> ''`,
	} {
		if _, err := tx.ExecContext(ctx, q, to, from); err != nil {
			return fmt.Errorf("consent: rekey: %w", err)
		}
	}
	if merged == toFlags {
		return nil
	}
	if err := s.recordFlags(ctx, tx, toKey, toFlags, merged, SourceAccountLink, map[string]string{"merged_from": from}); err != nil {
		return err
	}
	return s.setFlags(ctx, tx, to, merged)
}

// reseal moves from's events to the subject of key, their evidence opened with from's
// key and sealed under key.
func (s *Service) reseal(ctx context.Context, tx *store.Tx, from string, key *vault.Key) error {
	rows, err := tx.QueryContext(ctx, `SELECT e.id, e.evidence, `+keyColumns+` FROM consent_events e `+vault.KeyJoin("k", "e.subject_id")+
		` WHERE e.subject_id = $1 ORDER BY e.id`, from)
	if err != nil {
		return fmt.Errorf("consent: rekey: %w", err)
	}
	type moved struct {
		id       int64
		evidence string
	}
	var all []moved
	keys := map[string]*vault.Key{}
	for rows.Next() {
		var m moved
		var wrapped []byte
		var epoch sql.NullInt64
		if err := rows.Scan(&m.id, &m.evidence, &wrapped, &epoch); err != nil {
			rows.Close()
			return fmt.Errorf("consent: rekey: %w", err)
		}
		fromKey, err := s.rowKey(keys, from, wrapped, epoch)
		if err != nil {
			rows.Close()
			return err
		}
		plain, err := fromKey.OpenText(labelEvidence, m.evidence)
		if err != nil {
			rows.Close()
			return fmt.Errorf("consent: rekey: %w", err)
		}
		m.evidence = key.SealText(labelEvidence, plain)
		all = append(all, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("consent: rekey: %w", err)
	}
	for _, m := range all {
		if _, err := tx.ExecContext(ctx, `UPDATE consent_events SET subject_id = $1, evidence = $2 WHERE id = $3`,
			key.Subject(), m.evidence, m.id); err != nil {
			return fmt.Errorf("consent: rekey: %w", err)
		}
	}
	return nil
}

// Imported is a decision brought from another system, with its evidence.
type Imported struct {
	SubjectID string
	Purpose   string
	Evidence  map[string]string
	// EvidenceJSON is Evidence already encoded (an importer encodes it ahead of the
	// transaction); it is used when set.
	EvidenceJSON string
	// Key is the subject's data key, when the importer has it: one it made with
	// vault.NewKey and whose vault_keys row it stores in the same transaction. The
	// evidence is sealed under it. Without it, ImportTx reads the subject's key, or
	// makes and stores one: an importer that stores keys of its own must then store
	// them before calling ImportTx, or its own would be the one refused.
	Key *vault.Key
}

// ImportTx records many opt-ins from an import in tx, in a few statements: the events,
// then their state. It is for subjects new to the ledger (an import of subscribers),
// each subject and purpose once: the state rows are inserted, not merged, and a
// subject that has one already fails the transaction with a unique violation. Each
// evidence is sealed under its subject's key (Imported.Key, or one read or made in tx).
func (s *Service) ImportTx(ctx context.Context, tx *store.Tx, in []Imported) error {
	if len(in) == 0 {
		return nil
	}
	at := store.Millis(s.now())
	var keyless []string
	for _, d := range in {
		p, ok := s.reg.Purpose(d.Purpose)
		if !ok || !p.NeedsConsent() {
			return apperr.Field("purpose", "purpose_not_consent", fmt.Sprintf("%q is not a purpose that takes consent", d.Purpose))
		}
		switch {
		case d.Key == nil:
			keyless = append(keyless, d.SubjectID)
		case d.Key.Subject() != d.SubjectID:
			return fmt.Errorf("consent: import: the key given for %s is %s's", d.SubjectID, d.Key.Subject())
		}
	}
	version, err := s.versionIn(ctx, tx)
	if err != nil {
		return err
	}
	var keys map[string]*vault.Key
	if len(keyless) > 0 {
		var err error
		if keys, err = s.keysIn(ctx, tx, keyless); err != nil {
			return err
		}
	}
	evidence := func(d Imported) string {
		k := d.Key
		if k == nil {
			k = keys[d.SubjectID]
		}
		return k.SealText(labelEvidence, importEvidence(d))
	}
	if tx.Dialect() == store.Postgres {
		// The events and their state in one statement of arrays, the state made from
		// the rows the insert returns. The arrays are unnested in the select list,
		// where their rows stream into the insert (unnest in FROM first copies them
		// into a store of rows, and the evidence of a batch spills it to a file).
		subjects, purposes, sealed := make([]string, len(in)), make([]string, len(in)), make([]string, len(in))
		for i, d := range in {
			subjects[i], purposes[i], sealed[i] = d.SubjectID, d.Purpose, evidence(d)
		}
		if _, err := tx.ExecContext(ctx, `WITH ev AS (
				INSERT INTO consent_events (subject_id, purpose, decision, source, policy_version, evidence, at)
				SELECT unnest($1::text[]), unnest($2::text[]), $4, $5, $6, unnest($3::text[]), $7
				RETURNING id, subject_id, purpose, decision, at)
			INSERT INTO consent_state (subject_id, purpose, decision, event_id, at) SELECT subject_id, purpose, decision, id, at FROM ev`,
			subjects, purposes, sealed, Granted, SourceImport, version, at); err != nil {
			return fmt.Errorf("consent: import: %w", err)
		}
		return nil
	}
	// SQLite: the events, then the state from the events read back (one writer: the
	// events after the largest id before are this import's).
	var before int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(max(id), 0) FROM consent_events`).Scan(&before); err != nil {
		return fmt.Errorf("consent: import: %w", err)
	}
	ins := tx.BulkSelect(`INSERT INTO consent_events (subject_id, purpose, decision, source, policy_version, evidence, at)
		SELECT column1, column2, $1, $2, $3, column3, $4 FROM (VALUES `, []any{Granted, SourceImport, version, at}, 3, importChunk, ") AS v")
	defer ins.Close(ctx)
	for _, d := range in {
		if err := ins.Add(ctx, d.SubjectID, d.Purpose, evidence(d)); err != nil {
			return fmt.Errorf("consent: import: %w", err)
		}
	}
	if err := ins.Close(ctx); err != nil {
		return fmt.Errorf("consent: import: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO consent_state (subject_id, purpose, decision, event_id, at)
		SELECT subject_id, purpose, decision, id, at FROM consent_events WHERE id > $1 AND source = $2`, before, SourceImport); err != nil {
		return fmt.Errorf("consent: import: %w", err)
	}
	return nil
}

// importChunk is how many imported decisions go in one statement.
const importChunk = 500

// importEvidence is the decision's evidence as JSON.
func importEvidence(d Imported) string {
	if d.EvidenceJSON != "" {
		return d.EvidenceJSON
	}
	b, _ := json.Marshal(d.Evidence)
	return string(b)
}

// AskAgainTx records, in tx, that a material change of the privacy policy (version, in
// effect since since) asks the purposes again: from then on a consent to one of them
// given before since counts as not given until the subject grants it again (Allowed,
// AllowedSQL, Choices). A purpose asked again by the version already is left as it
// was. It returns the purposes newly asked again. Only purposes on consent are asked
// again: an objection or a withdrawal stands whatever the policy says.
func (s *Service) AskAgainTx(ctx context.Context, tx *store.Tx, version string, since time.Time, purposes []string) ([]string, error) {
	var out []string
	for _, k := range purposes {
		p, ok := s.reg.Purpose(k)
		if !ok || !p.NeedsConsent() {
			return nil, apperr.Field("purposes", "purpose_not_consent", fmt.Sprintf("%q is not a purpose that takes consent", k))
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO consent_reconfirm (purpose, version, since) VALUES ($1, $2, $3)
			ON CONFLICT (purpose, version) DO NOTHING`, k, version, store.Millis(since))
		if err != nil {
			return nil, fmt.Errorf("consent: ask again: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("consent: ask again: %w", err)
		} else if n > 0 {
			out = append(out, k)
		}
	}
	return out, nil
}
