// Package access owns least privilege for staff reads of member data (P-SEC-2,
// invariant 6): the grants under which support reads a member's data (requested by
// support, approved by the member or a DPO, as the operator configures; revocable;
// expiring), and the record of every staff read of member data, with or without a
// grant, which the member sees. Its tables are access_grants and staff_reads; what they
// say of the member (a grant's reason, the staff name shown, a read's record) is sealed
// under the member's data key, so an erasure leaves nothing readable, and deletes them.
package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/store"
	"steward/internal/vault"
)

// Scopes a grant may name: what of the member support may read under it.
const (
	ScopeProfile  = "profile"
	ScopeConsents = "consents"
	ScopeRequests = "requests"
	ScopeFiles    = "files"
)

// Scopes are every scope, in the order pages show them.
var Scopes = []string{ScopeProfile, ScopeConsents, ScopeRequests, ScopeFiles}

// Who approves a grant (the operator's --grant-approver).
const (
	ApproverMember = "member"
	ApproverDPO    = "dpo"
	ApproverEither = "either"
)

// Approvers are the values --grant-approver takes.
var Approvers = []string{ApproverMember, ApproverDPO, ApproverEither}

// Roles: support reads under a grant; the DPO and admin read without one (still
// recorded); the DPO approves grants when the operator says so.
const (
	RoleSupport = "support"
	RoleDPO     = "dpo"
	RoleAdmin   = "admin"
)

// States of a grant.
const (
	Pending  = "pending"
	Active   = "active"
	Refused  = "refused"
	Revoked  = "revoked"
	Expired  = "expired"
	decApp   = "approved"
	decRef   = "refused"
	byMember = "member"
)

// Limits of a request.
const (
	maxReason   = 500
	MaxDuration = 30 * 24 * time.Hour
)

const (
	labelReason    = "access_grants.reason"
	labelStaffName = "access_grants.staff_name"
	labelRecord    = "staff_reads.record"
)

// Staff tells which roles an account holds (admin holds every role).
type Staff interface {
	HasAny(ctx context.Context, accountID string, roles ...string) (bool, error)
}

// Accounts is what access needs of the account capability.
type Accounts interface {
	Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error)
	Profile(ctx context.Context, accountID string) (account.Profile, error)
}

// Service keeps the grants and the reads.
type Service struct {
	db       *store.DB
	vault    *vault.Vault
	audit    *governance.Audit
	staff    Staff
	accounts Accounts
	approver string
	record   bool
	now      func() time.Time
}

// Config is how the operator configures access.
type Config struct {
	// Approver is who approves a grant: ApproverMember, ApproverDPO or ApproverEither.
	Approver string
	// SkipRecords leaves reads unrecorded: only the benchmark that measures what
	// recording costs sets it. No configuration reaches it.
	SkipRecords bool
}

// New returns the access service.
func New(db *store.DB, v *vault.Vault, audit *governance.Audit, staff Staff, accounts Accounts, cfg Config, now func() time.Time) *Service {
	if cfg.Approver == "" {
		cfg.Approver = ApproverMember
	}
	return &Service{db: db, vault: v, audit: audit, staff: staff, accounts: accounts, approver: cfg.Approver, record: !cfg.SkipRecords, now: now}
}

// Approver says who approves grants.
func (s *Service) Approver() string { return s.approver }

// MemberApproves reports whether members approve their grants.
func (s *Service) MemberApproves() bool { return s.approver != ApproverDPO }

// DPOApproves reports whether the DPO approves grants.
func (s *Service) DPOApproves() bool { return s.approver != ApproverMember }

// Viewer is a member of staff reading member data, as the member is shown them.
type Viewer struct {
	ID   string
	IP   string
	Role string // admin, dpo, support, or the role they hold
	Name string // their display name
}

// Viewer describes the staff account accountID for the records: its highest role
// and its name.
func (s *Service) Viewer(ctx context.Context, accountID, ip string) (Viewer, error) {
	v := Viewer{ID: accountID, IP: ip}
	for _, r := range []string{RoleAdmin, RoleDPO, RoleSupport, "marketing"} {
		roles := []string{r}
		if r == RoleAdmin {
			roles = nil // HasAny with no role: admin only
		}
		ok, err := s.staff.HasAny(ctx, accountID, roles...)
		if err != nil {
			return Viewer{}, err
		}
		if ok {
			v.Role = r
			break
		}
	}
	if v.Role == "" {
		v.Role = "staff"
	}
	p, err := s.accounts.Profile(ctx, accountID)
	if err != nil {
		return Viewer{}, fmt.Errorf("access: viewer: %w", err)
	}
	v.Name = strings.TrimSpace(p.Name)
	if v.Name == "" {
		v.Name = "staff account " + shortID(accountID)
	}
	return v, nil
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Grant is one access grant.
type Grant struct {
	ID          string
	SubjectID   string
	StaffID     string // "" once that staff member was erased
	StaffName   string // as the member is shown it
	Scopes      []string
	Reason      string
	Duration    time.Duration
	RequestedAt time.Time
	Decision    string // "", approved, refused
	DecidedBy   string // "member", or the DPO's account id
	DecidedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time
}

// State is the grant's state at now.
func (g Grant) State(now time.Time) string {
	switch {
	case !g.RevokedAt.IsZero():
		return Revoked
	case g.Decision == decRef:
		return Refused
	case g.Decision == "":
		return Pending
	case !now.Before(g.ExpiresAt):
		return Expired
	}
	return Active
}

// Covers reports whether the grant lets its staff member read scope at now.
func (g Grant) Covers(scope string, now time.Time) bool {
	return g.State(now) == Active && slices.Contains(g.Scopes, scope)
}

// Ask is what support gives to ask for a grant.
type Ask struct {
	Subject  string // the member's account id or email
	Scopes   []string
	Reason   string // a reason or a ticket reference, shown to the member
	Duration time.Duration
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Request asks for a grant: pending until approved.
func (s *Service) Request(ctx context.Context, by Viewer, a Ask) (Grant, error) {
	who := strings.TrimSpace(a.Subject)
	if who == "" {
		return Grant{}, apperr.Field("member", "required", "is required: the member's account id or email")
	}
	subj, err := s.accounts.Lookup(ctx, who)
	if apperr.KindOf(err) == apperr.NotFound {
		return Grant{}, apperr.Field("member", "unknown", "names no member: give an account id or email")
	}
	if err != nil {
		return Grant{}, err
	}
	if subj.ID == by.ID {
		return Grant{}, apperr.Field("member", "self", "is your own account: you read your own data from your account pages")
	}
	scopes, err := checkScopes(a.Scopes)
	if err != nil {
		return Grant{}, err
	}
	reason := strings.TrimSpace(a.Reason)
	switch {
	case reason == "":
		return Grant{}, apperr.Field("reason", "required", "is required: say why, or give the ticket (the member is shown it)")
	case utf8.RuneCountInString(reason) > maxReason:
		return Grant{}, apperr.Field("reason", "too_long", fmt.Sprintf("is longer than %d characters", maxReason))
	}
	if a.Duration < time.Hour || a.Duration > MaxDuration {
		return Grant{}, apperr.Field("hours", "out_of_range", fmt.Sprintf("must be from 1 to %d hours", int(MaxDuration/time.Hour)))
	}
	now := s.now()
	g := Grant{ID: newID(), SubjectID: subj.ID, StaffID: by.ID, StaffName: by.Name, Scopes: scopes, Reason: reason,
		Duration: a.Duration, RequestedAt: now}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		key, err := s.vault.KeyIn(ctx, tx, subj.ID, false)
		if errors.Is(err, vault.ErrNoKey) {
			return apperr.Field("member", "unknown", "names no member: give an account id or email")
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_grants (id, subject_id, staff_id, scopes, reason, staff_name, duration_ms, requested_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, g.ID, g.SubjectID, by.ID, strings.Join(scopes, ","),
			key.SealText(labelReason, reason), key.SealText(labelStaffName, by.Name), a.Duration.Milliseconds(), store.Millis(now)); err != nil {
			return fmt.Errorf("access: request: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "access_grant_requested", AccountID: by.ID, IP: by.IP,
			Detail: "grant " + g.ID + " for " + strings.Join(scopes, ",")})
	})
	if err != nil {
		return Grant{}, err
	}
	return g, nil
}

func checkScopes(in []string) ([]string, error) {
	want := map[string]bool{}
	for _, sc := range in {
		if sc = strings.TrimSpace(sc); sc != "" {
			if !slices.Contains(Scopes, sc) {
				return nil, apperr.Field("scopes", "unknown_scope", fmt.Sprintf("%q is not a scope: want some of %s", sc, strings.Join(Scopes, ", ")))
			}
			want[sc] = true
		}
	}
	if len(want) == 0 {
		return nil, apperr.Field("scopes", "required", "is required: name at least one of "+strings.Join(Scopes, ", "))
	}
	var out []string
	for _, sc := range Scopes {
		if want[sc] {
			out = append(out, sc)
		}
	}
	return out, nil
}

// Decider is who approves or refuses: the member themselves, or a DPO.
type Decider struct {
	MemberID string // the member deciding on their own grant
	DPO      Viewer // else a DPO
}

// Decide approves or refuses a pending grant. The member decides on their own grants
// when the operator lets members approve, a DPO on any when it lets DPOs.
func (s *Service) Decide(ctx context.Context, d Decider, id string, approve bool) (Grant, error) {
	var g Grant
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if g, err = s.get(ctx, tx, id); err != nil {
			return err
		}
		actor, ip, by := d.DPO.ID, d.DPO.IP, d.DPO.ID
		if d.MemberID != "" {
			if g.SubjectID != d.MemberID {
				return errNoGrant
			}
			if !s.MemberApproves() {
				return apperr.New(apperr.Forbidden, "dpo_approves", "on this site the data protection officer approves staff access, not the member")
			}
			actor, by = d.MemberID, byMember
		} else if !s.DPOApproves() {
			return apperr.New(apperr.Forbidden, "member_approves", "on this site only the member approves staff access to their data")
		} else if d.DPO.ID == g.StaffID {
			return apperr.New(apperr.Forbidden, "own_grant", "another dpo (or the member) must approve a grant you asked for")
		}
		now := s.now()
		if st := g.State(now); st != Pending {
			return apperr.New(apperr.Conflict, "grant_decided", "the request is no longer pending ("+st+")")
		}
		g.Decision, g.DecidedBy, g.DecidedAt = decRef, by, now
		var expires any
		if approve {
			g.Decision, g.ExpiresAt = decApp, now.Add(g.Duration)
			expires = store.Millis(g.ExpiresAt)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_grants SET decision = $1, decided_by = $2, decided_at = $3, expires_at = $4 WHERE id = $5`,
			g.Decision, by, store.Millis(now), expires, id); err != nil {
			return fmt.Errorf("access: decide: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "access_grant_" + g.Decision, AccountID: actor, IP: ip, Detail: "grant " + id})
	})
	return g, err
}

var errNoGrant = apperr.New(apperr.NotFound, "grant_not_found", "no such access grant")

// Revoke ends a grant that is pending or active: by the member, the staff member who
// holds it, or a DPO (byDPO).
func (s *Service) Revoke(ctx context.Context, by Viewer, id string, byDPO bool) (Grant, error) {
	var g Grant
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if g, err = s.get(ctx, tx, id); err != nil {
			return err
		}
		if !byDPO && by.ID != g.SubjectID && by.ID != g.StaffID {
			return errNoGrant
		}
		now := s.now()
		if st := g.State(now); st != Pending && st != Active {
			return apperr.New(apperr.Conflict, "grant_ended", "the grant has already ended ("+st+")")
		}
		g.RevokedAt = now
		if _, err := tx.ExecContext(ctx, `UPDATE access_grants SET revoked_at = $1 WHERE id = $2`, store.Millis(now), id); err != nil {
			return fmt.Errorf("access: revoke: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "access_grant_revoked", AccountID: by.ID, IP: by.IP, Detail: "grant " + id})
	})
	return g, err
}

const selectGrants = `SELECT g.id, g.subject_id, g.staff_id, g.scopes, g.reason, g.staff_name, g.duration_ms, g.requested_at, g.decision,
	g.decided_by, g.decided_at, g.expires_at, g.revoked_at, k.wrapped, k.epoch FROM access_grants g LEFT JOIN vault_keys k ON k.subject_id = g.subject_id `

const (
	grantByID       = selectGrants + `WHERE g.id = $1`
	grantsOfSubject = selectGrants + `WHERE g.subject_id = $1 ORDER BY g.requested_at DESC, g.id`
	grantsOfStaff   = selectGrants + `WHERE g.staff_id = $1 ORDER BY g.requested_at DESC, g.id LIMIT 200`
	grantsPending   = selectGrants + `WHERE g.decision IS NULL AND g.revoked_at IS NULL ORDER BY g.requested_at, g.id LIMIT 200`
	grantsLive      = selectGrants + `WHERE g.subject_id = $1 AND g.staff_id = $2 AND g.decision = 'approved' AND g.revoked_at IS NULL AND g.expires_at > $3
		ORDER BY g.expires_at DESC, g.id`
)

func (s *Service) query(ctx context.Context, q store.Querier, stmt string, args ...any) ([]Grant, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("access: grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var staff, decision, decidedBy sql.NullString
		var scopes, reason, name string
		var dur, requested int64
		var decided, expires, revoked, epoch sql.NullInt64
		var wrapped []byte
		if err := rows.Scan(&g.ID, &g.SubjectID, &staff, &scopes, &reason, &name, &dur, &requested, &decision, &decidedBy, &decided,
			&expires, &revoked, &wrapped, &epoch); err != nil {
			return nil, fmt.Errorf("access: grants: %w", err)
		}
		g.StaffID, g.Decision, g.DecidedBy = staff.String, decision.String, decidedBy.String
		g.Scopes = strings.Split(scopes, ",")
		g.Duration = time.Duration(dur) * time.Millisecond
		g.RequestedAt = store.FromMillis(requested)
		g.DecidedAt, g.ExpiresAt, g.RevokedAt = store.NullMillis(decided), store.NullMillis(expires), store.NullMillis(revoked)
		if wrapped == nil {
			continue // the member was erased: nothing of the grant opens
		}
		key, err := s.vault.Unwrap(g.SubjectID, wrapped, epoch.Int64)
		if err != nil {
			return nil, err
		}
		var rErr, nErr error
		g.Reason, rErr = key.OpenText(labelReason, reason)
		g.StaffName, nErr = key.OpenText(labelStaffName, name)
		if err := errors.Join(rErr, nErr); err != nil {
			return nil, fmt.Errorf("access: open grant %s: %w", g.ID, err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func (s *Service) get(ctx context.Context, q store.Querier, id string) (Grant, error) {
	list, err := s.query(ctx, q, grantByID, id)
	if err != nil {
		return Grant{}, err
	}
	if len(list) == 0 {
		return Grant{}, errNoGrant
	}
	return list[0], nil
}

// Get returns a grant.
func (s *Service) Get(ctx context.Context, id string) (Grant, error) { return s.get(ctx, s.db, id) }

// OfMember returns the member's grants, the newest first.
func (s *Service) OfMember(ctx context.Context, subjectID string) ([]Grant, error) {
	return s.query(ctx, s.db, grantsOfSubject, subjectID)
}

// OfStaff returns the grants a staff member asked for, the newest first.
func (s *Service) OfStaff(ctx context.Context, staffID string) ([]Grant, error) {
	return s.query(ctx, s.db, grantsOfStaff, staffID)
}

// Pending returns the grants waiting for a decision, the oldest first.
func (s *Service) Pending(ctx context.Context) ([]Grant, error) {
	return s.query(ctx, s.db, grantsPending)
}

// Why is the reason a read is allowed, for its record.
type Why struct {
	GrantID string
	Reason  string
}

// Allow says why v may read scope of the member, or refuses: support needs a live
// grant naming the scope (approved, not revoked, not expired: checked now, at read
// time); the DPO and admin read without one, for review ("dpo review").
func (s *Service) Allow(ctx context.Context, v Viewer, subjectID, scope string) (Why, error) {
	if v.Role == RoleAdmin || v.Role == RoleDPO {
		return Why{Reason: v.Role + " review"}, nil
	}
	if v.Role != RoleSupport {
		return Why{}, apperr.New(apperr.Forbidden, "forbidden", "this needs the support or dpo role")
	}
	now := s.now()
	list, err := s.query(ctx, s.db, grantsLive, subjectID, v.ID, store.Millis(now))
	if err != nil {
		return Why{}, err
	}
	for _, g := range list {
		if g.Covers(scope, now) {
			return Why{GrantID: g.ID, Reason: g.Reason}, nil
		}
	}
	return Why{}, apperr.New(apperr.Forbidden, "no_grant",
		"you need an access grant for this member's "+scope+" that the member (or a dpo) approved and that has not expired or been revoked")
}

// Read is one staff read of a member's data, as recorded.
type Read struct {
	SubjectID string
	What      string // the view and what it showed, e.g. "member view: profile, consents"
	Why       string // the grant's reason, the request, or "dpo review"
	GrantID   string
}

// record is what staff_reads.record seals.
type record struct {
	Role string `json:"role"`
	Name string `json:"name"`
	What string `json:"what"`
	Why  string `json:"why"`
}

// Record records that v read each member's data, in one transaction with an entry
// of the audit log naming the records (never the members). A member without a data
// key is being erased: nothing of theirs opens, so nothing was shown, and nothing is
// recorded of them. An error means the reads must not be shown.
func (s *Service) Record(ctx context.Context, v Viewer, reads ...Read) error {
	if !s.record || len(reads) == 0 {
		return nil
	}
	now := store.Millis(s.now())
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		var ids []string
		for _, rd := range reads {
			key, err := s.vault.KeyIn(ctx, tx, rd.SubjectID, false)
			if errors.Is(err, vault.ErrNoKey) {
				continue
			}
			if err != nil {
				return fmt.Errorf("access: record: %w", err)
			}
			body, err := json.Marshal(record{Role: v.Role, Name: v.Name, What: rd.What, Why: rd.Why})
			if err != nil {
				return fmt.Errorf("access: record: %w", err)
			}
			id := newID()
			var grant any
			if rd.GrantID != "" {
				grant = rd.GrantID
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO staff_reads (id, subject_id, staff_id, grant_id, at, record) VALUES ($1, $2, $3, $4, $5, $6)`,
				id, rd.SubjectID, v.ID, grant, now, key.SealText(labelRecord, string(body))); err != nil {
				return fmt.Errorf("access: record: %w", err)
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			return nil
		}
		detail := reads[0].What + ": read " + ids[0]
		if len(ids) > 1 {
			detail = fmt.Sprintf("%s: %d reads, %s to %s", reads[0].What, len(ids), ids[0], ids[len(ids)-1])
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "staff_read", AccountID: v.ID, IP: v.IP, Detail: detail})
	})
}

// Access is one recorded staff read, as the member sees it.
type Access struct {
	At      time.Time
	Role    string
	Name    string
	What    string
	Why     string
	GrantID string
}

// Reads returns the newest staff reads of the member's data.
func (s *Service) Reads(ctx context.Context, subjectID string, limit int) ([]Access, error) {
	key, err := s.vault.KeyIn(ctx, s.db, subjectID, false)
	if errors.Is(err, vault.ErrNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("access: reads: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT at, grant_id, record FROM staff_reads WHERE subject_id = $1 ORDER BY at DESC, id LIMIT $2`, subjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("access: reads: %w", err)
	}
	defer rows.Close()
	var out []Access
	for rows.Next() {
		var at int64
		var grant sql.NullString
		var sealed string
		if err := rows.Scan(&at, &grant, &sealed); err != nil {
			return nil, fmt.Errorf("access: reads: %w", err)
		}
		plain, err := key.OpenText(labelRecord, sealed)
		if err != nil {
			return nil, fmt.Errorf("access: reads: %w", err)
		}
		var rec record
		if err := json.Unmarshal([]byte(plain), &rec); err != nil {
			return nil, fmt.Errorf("access: reads: %w", err)
		}
		out = append(out, Access{At: store.FromMillis(at), Role: rec.Role, Name: rec.Name, What: rec.What, Why: rec.Why, GrantID: grant.String})
	}
	return out, rows.Err()
}

// Count returns how many staff reads of the member are recorded (tests, the bench).
func (s *Service) Count(ctx context.Context, subjectID string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM staff_reads WHERE subject_id = $1`, subjectID).Scan(&n); err != nil {
		return 0, fmt.Errorf("access: count: %w", err)
	}
	return n, nil
}

var grantsTable = datamap.Table{Name: "access_grants", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random grant id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
	{Name: "staff_id", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the staff member the grant is for, blanked when that staff member is erased",
		Withheld: "the id of the staff member's account: their data, not yours (their name is given)"},
	{Name: "scopes", NotPersonal: "names of what the grant covers"},
	{Name: "reason", Categories: []string{"user.content"}, Sealed: true},
	{Name: "staff_name", Categories: []string{"user.name"}, Sealed: true},
	{Name: "duration_ms", NotPersonal: "how long the grant lasts once approved"},
	{Name: "requested_at", NotPersonal: "when the grant was asked for", Time: true},
	{Name: "decision", NotPersonal: "approved or refused"},
	{Name: "decided_by", Categories: []string{"user.unique_id"}, Plain: "\"member\", or the random account id of the DPO who decided",
		Withheld: "who decided: you, or a DPO's account id (their data)"},
	{Name: "decided_at", NotPersonal: "when the grant was decided", Time: true},
	{Name: "expires_at", NotPersonal: "when the grant ends", Time: true},
	{Name: "revoked_at", NotPersonal: "when the grant was revoked", Time: true},
}}

var readsTable = datamap.Table{Name: "staff_reads", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random record id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
	{Name: "staff_id", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the staff member who read, blanked when that staff member is erased",
		Withheld: "the id of the staff member's account: their data, not yours (their role and name are given)"},
	{Name: "grant_id", NotPersonal: "the random id of the grant the read was made under"},
	{Name: "at", NotPersonal: "when the data was read", Time: true},
	{Name: "record", Categories: []string{"user.content"}, Sealed: true},
}}

// Holder is the access records' entry in the data map.
type Holder struct{}

// Declaration describes the grants and the reads.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "staff_access",
		Description: "Who among our staff read your data (role and name), when, what and why, and the access grants support asked you for.",
		Purpose:     "Let support read your data only with your (or a DPO's) approval, and show you every staff read of it.",
		LawfulBasis: "legitimate_interest",
		Retention:   "Until your account is erased.",
		Tables:      []datamap.Table{grantsTable, readsTable},
	}
}

// Export returns the member's grants and the reads of their data, sealed columns opened.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase deletes the member's grants and reads, and blanks the member as the staff
// member of others' grants and reads.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	for _, q := range []string{`UPDATE access_grants SET staff_id = NULL WHERE staff_id = $1`,
		`UPDATE access_grants SET decided_by = NULL WHERE decided_by = $1`,
		`UPDATE staff_reads SET staff_id = NULL WHERE staff_id = $1`} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("access: erase: %w", err)
		}
	}
	return nil
}
