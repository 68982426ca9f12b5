// Package policy owns the privacy policy's versions (P-POL-1..2, P-SHARE-4): each a
// Markdown text with a label, an effective date, a "material change" flag and a
// summary of changes, drafted and published by the DPO (a published version is never
// changed), and each member's acceptance of a version. A material version, once in
// effect, is applied: the consents to the purposes it names (or that name it in the
// purposes register) are asked again (consent.AskAgainTx), and every member is mailed
// through the outbox, a batch at a time. A business transfer is a version of its own
// kind, naming the new controller, announced the same way. Its tables are
// policy_versions and policy_acceptances.
package policy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/governance"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/text"
)

// Role is the staff role that drafts and publishes versions (admin holds every role).
const Role = "dpo"

// Kind is what a version announces.
type Kind string

// The kinds of version.
const (
	KindPolicy   Kind = "policy"
	KindTransfer Kind = "business_transfer"
)

// The states of a version.
const (
	StateDraft     = "draft"
	StatePublished = "published"
)

// The sources of an acceptance.
const (
	AcceptedAtRegistration = "registration"
	AcceptedByMember       = "member"
	AcceptedAtSeed         = "seed"
)

// Version is one version of the policy.
type Version struct {
	Label    string
	Kind     Kind
	Body     string // Markdown
	Summary  string // of the changes, plain text
	Material bool
	// Controller is the new controller's name, on a business transfer.
	Controller string
	// Purposes are the purposes whose consents a material version asks again, as the
	// DPO listed them (the register's purposes naming the version are asked too).
	Purposes    []string
	State       string
	EffectiveAt time.Time // zero on a draft that takes effect when published
	CreatedAt   time.Time
	UpdatedAt   time.Time
	PublishedAt time.Time
	AppliedAt   time.Time // when it took effect and was applied
	Mailed      int       // members mailed about it
	MailDone    bool
}

// Published reports whether the version is published (and so immutable).
func (v Version) Published() bool { return v.State == StatePublished }

// Announced reports whether the version is notified to every member: a material change
// or a business transfer.
func (v Version) Announced() bool { return v.Material || v.Kind == KindTransfer }

// Draft is what the DPO writes of a version.
type Draft struct {
	Label      string
	Kind       Kind
	Body       string
	Summary    string
	Material   bool
	Controller string
	Purposes   []string
	// Effective is a day (YYYY-MM-DD, from its start, UTC), an RFC 3339 time, or ""
	// for when it is published. A date already past when it is published means then.
	Effective string
}

// Actor is the staff member who acts, for the audit log.
type Actor struct {
	ID, IP string
}

// Member is one member to mail.
type Member struct {
	ID, Email, Name string
}

// Enqueuer queues jobs in a transaction (the app's job queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args jobs.Args) error
}

// Config is what the service depends on.
type Config struct {
	DB      *store.DB
	Consent *consent.Service
	Outbox  *mail.Outbox
	Audit   *governance.Audit
	Jobs    Enqueuer
	BaseURL string
	// Members lists up to limit active members after the id after, in id order.
	Members func(ctx context.Context, after string, limit int) ([]Member, error)
	// AskedAgain runs in the transaction that asks purposes again (whom the
	// newsletter may mail is derived from the consents).
	AskedAgain func(ctx context.Context, tx *store.Tx, purposes []string) error
	Now        func() time.Time
}

// Service is the policy capability.
type Service struct {
	c Config
}

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// ApplyArgs is the periodic job that applies the versions come into effect.
type ApplyArgs struct{}

// Kind names the job.
func (ApplyArgs) Kind() string { return "policy_apply" }

// MailArgs is the job that mails every member about a version, a batch at a time.
type MailArgs struct {
	Version string `json:"version"`
}

// Kind names the job.
func (MailArgs) Kind() string { return "policy_mail" }

// MailBatchSize is how many members one run of the mail job mails.
const MailBatchSize = 200

// Limits of a version's fields.
const (
	maxBody       = 200_000
	maxSummary    = 4000
	maxController = 200
)

var labelRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,39}$`)

// CheckLabel checks a version label: short, made of letters, digits, '.', '_' and
// '-' (it is part of the policy pages' addresses).
func CheckLabel(field, label string) error {
	if !labelRE.MatchString(label) || label == "versions" || label == "diff" {
		return apperr.Field(field, "label_invalid", "must be a short label of letters, digits, '.', '_' or '-', such as 2026.1")
	}
	return nil
}

const columns = `label, kind, body, summary, material, controller, purposes, state, effective_at, created_at, updated_at,
	published_at, applied_at, mailed, mail_done_at`

type row struct {
	v                                   Version
	material                            int
	purposes                            string
	effective, published, applied, done sql.NullInt64
	created, updated                    int64
}

func (r *row) dest() []any {
	return []any{&r.v.Label, &r.v.Kind, &r.v.Body, &r.v.Summary, &r.material, &r.v.Controller, &r.purposes, &r.v.State,
		&r.effective, &r.created, &r.updated, &r.published, &r.applied, &r.v.Mailed, &r.done}
}

func (r *row) version() Version {
	v := r.v
	v.Material = r.material == 1
	if r.purposes != "" {
		v.Purposes = strings.Split(r.purposes, ",")
	}
	at := func(n sql.NullInt64) time.Time {
		if !n.Valid {
			return time.Time{}
		}
		return store.FromMillis(n.Int64)
	}
	v.EffectiveAt, v.PublishedAt, v.AppliedAt = at(r.effective), at(r.published), at(r.applied)
	v.CreatedAt, v.UpdatedAt = store.FromMillis(r.created), store.FromMillis(r.updated)
	v.MailDone = r.done.Valid
	return v
}

func (s *Service) query(ctx context.Context, q store.Querier, stmt string, args ...any) ([]Version, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("policy: versions: %w", err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		var r row
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("policy: versions: %w", err)
		}
		out = append(out, r.version())
	}
	return out, rows.Err()
}

var errNotFound = apperr.New(apperr.NotFound, "policy_version_not_found", "no such version of the privacy policy")

func (s *Service) get(ctx context.Context, q store.Querier, label string) (Version, error) {
	list, err := s.query(ctx, q, `SELECT `+columns+` FROM policy_versions WHERE label = $1`, label)
	if err != nil {
		return Version{}, err
	}
	if len(list) == 0 {
		return Version{}, errNotFound
	}
	return list[0], nil
}

// Get returns a version, draft or published (for staff).
func (s *Service) Get(ctx context.Context, label string) (Version, error) {
	return s.get(ctx, s.c.DB, label)
}

// Published returns a published version (for everyone); a draft is not found.
func (s *Service) Published(ctx context.Context, label string) (Version, error) {
	v, err := s.get(ctx, s.c.DB, label)
	if err == nil && !v.Published() {
		return Version{}, errNotFound
	}
	return v, err
}

// List returns the published versions, newest first, and the drafts too when drafts
// is set (first).
func (s *Service) List(ctx context.Context, drafts bool) ([]Version, error) {
	return s.query(ctx, s.c.DB, `SELECT `+columns+` FROM policy_versions WHERE state = $1 OR $2 = 1
		ORDER BY CASE WHEN state = $1 THEN 1 ELSE 0 END, effective_at DESC, published_at DESC, created_at DESC`, StatePublished, b2i(drafts))
}

// currentIn returns the version in effect at now, read in q.
func (s *Service) currentIn(ctx context.Context, q store.Querier) (Version, error) {
	list, err := s.query(ctx, q, `SELECT `+columns+` FROM policy_versions WHERE state = $1 AND effective_at <= $2
		ORDER BY effective_at DESC, published_at DESC LIMIT 1`, StatePublished, store.Millis(s.c.Now()))
	if err != nil {
		return Version{}, err
	}
	if len(list) == 0 {
		return Version{}, apperr.New(apperr.NotFound, "policy_none", "no version of the privacy policy is in effect yet")
	}
	return list[0], nil
}

// Current returns the version in effect now.
func (s *Service) Current(ctx context.Context) (Version, error) { return s.currentIn(ctx, s.c.DB) }

// VersionIn is the label of the version in effect now, read in q: what the consent
// ledger records with each decision.
func (s *Service) VersionIn(ctx context.Context, q store.Querier) (string, error) {
	v, err := s.currentIn(ctx, q)
	if err != nil {
		return "", err
	}
	return v.Label, nil
}

// Seed stores the first version, in effect at once and published, when there is none
// yet: the configured label (--policy-version) and text (--policy-file, or the
// built-in one). It is not a change: nothing is asked again, nobody is mailed.
func (s *Service) Seed(ctx context.Context, label, body string) (bool, error) {
	if err := CheckLabel("--policy-version", label); err != nil {
		return false, err
	}
	if strings.TrimSpace(body) == "" {
		body = DefaultText
	}
	now := store.Millis(s.c.Now())
	var seeded bool
	err := s.c.DB.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM policy_versions`).Scan(&n); err != nil {
			return fmt.Errorf("policy: seed: %w", err)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO policy_versions (label, kind, body, summary, material, controller, purposes, state,
			effective_at, created_at, updated_at, published_at, applied_at, mail_done_at) VALUES ($1, $2, $3, $4, 0, '', '', $5, $6, $6, $6, $6, $6, $6)`,
			label, KindPolicy, body, "The first version of the policy kept by this site.", StatePublished, now); err != nil {
			return fmt.Errorf("policy: seed: %w", err)
		}
		seeded = true
		return nil
	})
	return seeded, err
}

// check validates a draft; what it returns is trimmed and ready to store.
func (s *Service) check(d Draft) (Draft, int64, error) {
	d.Label = strings.TrimSpace(d.Label)
	if err := CheckLabel("label", d.Label); err != nil {
		return d, 0, err
	}
	switch d.Kind {
	case "":
		d.Kind = KindPolicy
	case KindPolicy, KindTransfer:
	default:
		return d, 0, apperr.Field("kind", "kind_invalid", "must be policy or business_transfer")
	}
	if strings.TrimSpace(d.Body) == "" {
		return d, 0, apperr.Field("body", "required", "is required: the policy's text, in Markdown")
	}
	if len(d.Body) > maxBody {
		return d, 0, apperr.Field("body", "too_long", fmt.Sprintf("must be at most %d bytes", maxBody))
	}
	d.Body = strings.ReplaceAll(d.Body, "\r\n", "\n")
	d.Summary = strings.TrimSpace(strings.ReplaceAll(d.Summary, "\r\n", "\n"))
	if d.Summary == "" {
		return d, 0, apperr.Field("summary", "required", "is required: what changes, in a few plain sentences")
	}
	if err := text.Lines("summary", d.Summary, maxSummary); err != nil {
		return d, 0, err
	}
	d.Controller = strings.TrimSpace(d.Controller)
	if d.Kind == KindTransfer {
		if d.Controller == "" {
			return d, 0, apperr.Field("controller", "required", "is required on a business transfer: the new controller's name")
		}
		// A transfer changes who holds the data: always announced.
		d.Material = true
	} else if d.Controller != "" {
		return d, 0, apperr.Field("controller", "controller_not_transfer", "is only named on a business transfer")
	}
	if d.Controller != "" {
		if err := text.Line("controller", d.Controller, maxController); err != nil {
			return d, 0, err
		}
	}
	var ps []string
	for _, k := range d.Purposes {
		k = strings.TrimSpace(k)
		if k == "" || slices.Contains(ps, k) {
			continue
		}
		p, ok := s.c.Consent.Register().Purpose(k)
		if !ok {
			return d, 0, apperr.Field("purposes", "purpose_unknown", fmt.Sprintf("%q is not a registered purpose", k))
		}
		if !p.NeedsConsent() {
			return d, 0, apperr.Field("purposes", "purpose_not_consent", fmt.Sprintf("%s is not on consent: only consents are asked again", p.Name))
		}
		ps = append(ps, k)
	}
	d.Purposes = ps
	if len(ps) > 0 && !d.Material {
		return d, 0, apperr.Field("material", "material_required", "must be set: a version that asks choices again is a material change")
	}
	var eff int64
	if e := strings.TrimSpace(d.Effective); e != "" {
		t, err := ParseEffective(e)
		if err != nil {
			return d, 0, err
		}
		eff = store.Millis(t)
	}
	return d, eff, nil
}

// ParseEffective reads an effective date: a day (YYYY-MM-DD, from its start, UTC) or
// an RFC 3339 time.
func ParseEffective(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, apperr.Field("effective", "date_invalid", "must be a day (YYYY-MM-DD) or an RFC 3339 time, or empty for when it is published")
}

func nullMillis(ms int64) any {
	if ms == 0 {
		return nil
	}
	return ms
}

// Create stores a draft.
func (s *Service) Create(ctx context.Context, by Actor, d Draft) (Version, error) {
	d, eff, err := s.check(d)
	if err != nil {
		return Version{}, err
	}
	now := store.Millis(s.c.Now())
	err = s.c.DB.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO policy_versions (label, kind, body, summary, material, controller, purposes, state,
			effective_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
			d.Label, d.Kind, d.Body, d.Summary, b2i(d.Material), d.Controller, strings.Join(d.Purposes, ","), StateDraft, nullMillis(eff), now); err != nil {
			if store.IsUniqueViolation(err) {
				return apperr.Field("label", "label_taken", "is the label of another version")
			}
			return fmt.Errorf("policy: create: %w", err)
		}
		return s.c.Audit.Record(ctx, tx, governance.Event{Name: "policy_drafted", AccountID: by.ID, IP: by.IP, Detail: d.Label})
	})
	if err != nil {
		return Version{}, err
	}
	return s.Get(ctx, d.Label)
}

var errPublished = apperr.New(apperr.Conflict, "policy_published", "a published version cannot be changed: draft a new version")

// Update replaces a draft's fields (its label stays).
func (s *Service) Update(ctx context.Context, by Actor, label string, d Draft) (Version, error) {
	d.Label = label
	d, eff, err := s.check(d)
	if err != nil {
		return Version{}, err
	}
	err = s.c.DB.InTx(ctx, func(tx *store.Tx) error {
		v, err := s.get(ctx, tx, label)
		if err != nil {
			return err
		}
		if v.Published() {
			return errPublished
		}
		if _, err := tx.ExecContext(ctx, `UPDATE policy_versions SET kind = $1, body = $2, summary = $3, material = $4, controller = $5,
			purposes = $6, effective_at = $7, updated_at = $8 WHERE label = $9 AND state = $10`,
			d.Kind, d.Body, d.Summary, b2i(d.Material), d.Controller, strings.Join(d.Purposes, ","), nullMillis(eff),
			store.Millis(s.c.Now()), label, StateDraft); err != nil {
			return fmt.Errorf("policy: update: %w", err)
		}
		return s.c.Audit.Record(ctx, tx, governance.Event{Name: "policy_draft_changed", AccountID: by.ID, IP: by.IP, Detail: label})
	})
	if err != nil {
		return Version{}, err
	}
	return s.Get(ctx, label)
}

// Publish publishes a draft: from then on it cannot change. It takes effect on its
// effective date (or at once, when it has none or that date is past); in effect, it
// is applied (Apply) at once, or by the periodic job when that date comes.
func (s *Service) Publish(ctx context.Context, by Actor, label string) (Version, error) {
	err := s.c.DB.InTx(ctx, func(tx *store.Tx) error {
		v, err := s.get(ctx, tx, label)
		if err != nil {
			return err
		}
		if v.Published() {
			return errPublished
		}
		now := s.c.Now()
		eff := v.EffectiveAt
		if eff.Before(now) {
			eff = now
		}
		// The newest version in effect is the one with the latest date: a version
		// cannot take effect before one already published.
		var latest sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(effective_at) FROM policy_versions WHERE state = $1`, StatePublished).Scan(&latest); err != nil {
			return fmt.Errorf("policy: publish: %w", err)
		}
		if latest.Valid && store.Millis(eff) < latest.Int64 {
			return apperr.Field("effective", "effective_before_latest",
				"must not be before the effective date of the latest published version ("+store.FromMillis(latest.Int64).UTC().Format(time.RFC3339)+")")
		}
		res, err := tx.ExecContext(ctx, `UPDATE policy_versions SET state = $1, published_at = $2, effective_at = $3, updated_at = $2
			WHERE label = $4 AND state = $5`, StatePublished, store.Millis(now), store.Millis(eff), label, StateDraft)
		if err != nil {
			return fmt.Errorf("policy: publish: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errPublished
		}
		detail := label
		if v.Announced() {
			detail += " (material)"
		}
		if err := s.c.Audit.Record(ctx, tx, governance.Event{Name: "policy_published", AccountID: by.ID, IP: by.IP, Detail: detail}); err != nil {
			return err
		}
		if !eff.After(now) {
			v.EffectiveAt, v.State = eff, StatePublished
			return s.apply(ctx, tx, v)
		}
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	return s.Get(ctx, label)
}

// ApplyDue applies every published version whose effective date has come and that
// was not applied yet (the periodic job). It returns how many it applied.
func (s *Service) ApplyDue(ctx context.Context) (int, error) {
	due, err := s.query(ctx, s.c.DB, `SELECT `+columns+` FROM policy_versions WHERE state = $1 AND applied_at IS NULL AND effective_at <= $2
		ORDER BY effective_at`, StatePublished, store.Millis(s.c.Now()))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range due {
		if err := s.c.DB.InTx(ctx, func(tx *store.Tx) error { return s.apply(ctx, tx, v) }); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// apply marks a version in effect as applied, once (another node may apply it at the
// same time: the mark decides which), and, for a material change or a business
// transfer, asks its purposes again and queues the mail to every member, all in tx.
func (s *Service) apply(ctx context.Context, tx *store.Tx, v Version) error {
	res, err := tx.ExecContext(ctx, `UPDATE policy_versions SET applied_at = $1 WHERE label = $2 AND applied_at IS NULL`,
		store.Millis(s.c.Now()), v.Label)
	if err != nil {
		return fmt.Errorf("policy: apply: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if !v.Announced() {
		// Not a change members are told of: nobody to mail.
		if _, err := tx.ExecContext(ctx, `UPDATE policy_versions SET mail_done_at = $1 WHERE label = $2`, store.Millis(s.c.Now()), v.Label); err != nil {
			return fmt.Errorf("policy: apply: %w", err)
		}
		return nil
	}
	asked, err := s.c.Consent.AskAgainTx(ctx, tx, v.Label, v.EffectiveAt, s.affected(v))
	if err != nil {
		return err
	}
	if len(asked) > 0 && s.c.AskedAgain != nil {
		if err := s.c.AskedAgain(ctx, tx, asked); err != nil {
			return err
		}
	}
	return s.c.Jobs.Enqueue(ctx, tx, MailArgs{Version: v.Label})
}

// affected are the purposes a material version asks again: those it lists, and those
// of the register that name it as the version they depend on.
func (s *Service) affected(v Version) []string {
	out := slices.Clone(v.Purposes)
	for _, p := range s.c.Consent.Register().Purposes {
		if p.PolicyVersion == v.Label && p.NeedsConsent() && !slices.Contains(out, p.Key) {
			out = append(out, p.Key)
		}
	}
	return out
}

// Affected are the purposes a version asks again (none unless it is announced).
func (s *Service) Affected(v Version) []string {
	if !v.Announced() {
		return nil
	}
	return s.affected(v)
}

// SyncRegister asks again, at start, the purposes of the register that name a version
// already applied (an operator who adds policy_version to a purpose after the fact).
func (s *Service) SyncRegister(ctx context.Context) error {
	for _, p := range s.c.Consent.Register().Purposes {
		if p.PolicyVersion == "" {
			continue
		}
		v, err := s.get(ctx, s.c.DB, p.PolicyVersion)
		if errors.Is(err, errNotFound) || (err == nil && (v.AppliedAt.IsZero() || !v.Announced())) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.c.DB.InTx(ctx, func(tx *store.Tx) error {
			asked, err := s.c.Consent.AskAgainTx(ctx, tx, v.Label, v.EffectiveAt, []string{p.Key})
			if err != nil || len(asked) == 0 || s.c.AskedAgain == nil {
				return err
			}
			return s.c.AskedAgain(ctx, tx, asked)
		}); err != nil {
			return err
		}
	}
	return nil
}

var errMailRaced = errors.New("policy: another run mailed this batch")

// MailBatch mails the next batch of members about an applied version, through the
// outbox: the batch's mails and the cursor past them commit together, so a run that
// stops half-way, or runs twice, mails nobody twice. It reports whether more remain.
// A version that is not announced mails nobody: its mail is marked done.
func (s *Service) MailBatch(ctx context.Context, label string) (bool, error) {
	v, err := s.get(ctx, s.c.DB, label)
	if err != nil {
		return false, err
	}
	if v.MailDone {
		return false, nil
	}
	var cursor string
	if err := s.c.DB.QueryRowContext(ctx, `SELECT mail_cursor FROM policy_versions WHERE label = $1`, label).Scan(&cursor); err != nil {
		return false, fmt.Errorf("policy: mail: %w", err)
	}
	var members []Member
	if v.Announced() {
		if members, err = s.c.Members(ctx, cursor, MailBatchSize); err != nil {
			return false, err
		}
	}
	var prepared []mail.Prepared
	names := s.purposeNames(s.affected(v))
	for _, m := range members {
		p, err := s.c.Outbox.Prepare(mail.Transactional{SubjectID: m.ID, To: m.Email, Template: mail.PolicyChanged, Data: map[string]string{
			"Name": m.Name, "Version": v.Label, "Summary": v.Summary, "Controller": v.Controller,
			"Effective": v.EffectiveAt.UTC().Format("2 January 2006"), "Link": s.c.BaseURL + "/account/policy", "Purposes": names,
		}})
		if err != nil {
			return false, err
		}
		prepared = append(prepared, p)
	}
	more := len(members) == MailBatchSize
	err = s.c.DB.InTx(ctx, func(tx *store.Tx) error {
		next := cursor
		if len(members) > 0 {
			next = members[len(members)-1].ID
		}
		var done any
		if !more {
			// Done: the cursor keeps no member's id.
			done, next = store.Millis(s.c.Now()), ""
		}
		res, err := tx.ExecContext(ctx, `UPDATE policy_versions SET mail_cursor = $1, mailed = mailed + $2, mail_done_at = $3
			WHERE label = $4 AND mail_cursor = $5 AND mail_done_at IS NULL`, next, len(members), done, label, cursor)
		if err != nil {
			return fmt.Errorf("policy: mail: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errMailRaced
		}
		return s.c.Outbox.EnqueuePrepared(ctx, tx, prepared...)
	})
	if errors.Is(err, errMailRaced) {
		return true, nil // look again: the cursor moved
	}
	return more, err
}

func (s *Service) purposeNames(keys []string) string {
	var names []string
	for _, k := range keys {
		if p, ok := s.c.Consent.Register().Purpose(k); ok {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, ", ")
}

// Acceptance is a member's acceptance of a version.
type Acceptance struct {
	Version string
	Source  string
	At      time.Time
}

// AcceptTx records, in q, the subject's acceptance of the version in effect (at
// registration).
func (s *Service) AcceptTx(ctx context.Context, q store.Querier, subjectID, source string) error {
	cur, err := s.currentIn(ctx, q)
	if err != nil {
		return err
	}
	return s.accept(ctx, q, subjectID, cur.Label, source)
}

func (s *Service) accept(ctx context.Context, q store.Querier, subjectID, label, source string) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO policy_acceptances (subject_id, version, source, at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (subject_id, version) DO NOTHING`, subjectID, label, source, store.Millis(s.c.Now())); err != nil {
		return fmt.Errorf("policy: accept: %w", err)
	}
	return nil
}

// Accept records the member's acceptance of the version in effect, which must be the
// one named (the page showed it), and the choices the change asked again: a purpose
// named true is granted again, false withdrawn. Choices of other purposes are refused.
func (s *Service) Accept(ctx context.Context, subjectID, label string, choices map[string]bool, evidence map[string]string) error {
	cur, err := s.Current(ctx)
	if err != nil {
		return err
	}
	if label != cur.Label {
		return apperr.Field("version", "policy_not_current", "is not the version in effect ("+cur.Label+"): read that one and accept it")
	}
	asked, err := s.Reconfirm(ctx, subjectID)
	if err != nil {
		return err
	}
	for k := range choices {
		if !slices.ContainsFunc(asked, func(c consent.Choice) bool { return c.Purpose.Key == k }) {
			return apperr.Field("choices."+k, "purpose_not_asked", "is not a choice the change asks again")
		}
	}
	if len(choices) > 0 {
		ev := map[string]string{"policy_version": label}
		for k, v := range evidence {
			ev[k] = v
		}
		if err := s.c.Consent.SaveChoices(ctx, subjectID, choices, nil, nil, consent.SourceForm, ev); err != nil {
			return err
		}
	}
	return s.accept(ctx, s.c.DB, subjectID, label, AcceptedByMember)
}

// Reconfirm returns the member's choices that a change of the policy asks again.
func (s *Service) Reconfirm(ctx context.Context, subjectID string) ([]consent.Choice, error) {
	choices, _, err := s.c.Consent.Choices(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	var out []consent.Choice
	for _, c := range choices {
		if c.Reconfirm {
			out = append(out, c)
		}
	}
	return out, nil
}

// Accepted returns the member's acceptances, newest first.
func (s *Service) Accepted(ctx context.Context, subjectID string) ([]Acceptance, error) {
	rows, err := s.c.DB.QueryContext(ctx, `SELECT version, source, at FROM policy_acceptances WHERE subject_id = $1 ORDER BY at DESC, version DESC`, subjectID)
	if err != nil {
		return nil, fmt.Errorf("policy: acceptances: %w", err)
	}
	defer rows.Close()
	var out []Acceptance
	for rows.Next() {
		var a Acceptance
		var at int64
		if err := rows.Scan(&a.Version, &a.Source, &at); err != nil {
			return nil, fmt.Errorf("policy: acceptances: %w", err)
		}
		a.At = store.FromMillis(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Pending returns the announced version (a material change or a business transfer)
// the member has yet to read and accept, if any: the latest applied one, unless the
// member accepted it or a later version. The member's pages show a notice of it.
func (s *Service) Pending(ctx context.Context, subjectID string) (Version, bool, error) {
	list, err := s.query(ctx, s.c.DB, `SELECT `+columns+` FROM policy_versions v WHERE v.state = $1 AND v.applied_at IS NOT NULL
		AND (v.material = 1 OR v.kind = $2) ORDER BY v.effective_at DESC, v.published_at DESC LIMIT 1`, StatePublished, KindTransfer)
	if err != nil || len(list) == 0 {
		return Version{}, false, err
	}
	v := list[0]
	var n int
	if err := s.c.DB.QueryRowContext(ctx, `SELECT count(*) FROM policy_acceptances a JOIN policy_versions w ON w.label = a.version
		WHERE a.subject_id = $1 AND w.effective_at >= $2`, subjectID, store.Millis(v.EffectiveAt)).Scan(&n); err != nil {
		return Version{}, false, fmt.Errorf("policy: pending: %w", err)
	}
	return v, n == 0, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
