// Package holds owns legal holds (P-SEC-4, P-ERASE-2): the DPO keeps some of a
// member's data, named by the data map's holders, despite the member's erasure, for a
// reason and until a date or until released. While a hold is in force an erasure keeps
// exactly the held holders' data, the member's data key that opens it, and the holds
// themselves; when the last hold ends, the erasure erases what they kept. Its table is
// legal_holds; the reason is sealed under the member's data key.
package holds

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/jobs"
	"steward/internal/rights"
	"steward/internal/store"
	"steward/internal/vault"
)

// Role is the staff role that places and releases holds.
const Role = "dpo"

// Name is the holds' holder name in the data map.
const Name = "legal_holds"

// keptAlong are the holders kept whole while any hold on the subject is in force,
// whatever it names: the data key that opens the held data, the holds that say why it
// is kept, and the erasure request that waits on them.
var keptAlong = []string{"vault", Name, "erasure"}

// maxReason bounds a hold's reason, in characters.
const maxReason = 2000

const labelReason = "legal_holds.reason"

// States of a hold, as shown.
const (
	InForce  = "in_force"
	Released = "released"
	Expired  = "expired"
)

// EndedArgs is the job that finishes the erasures whose holds have ended: enqueued by
// a release, and run periodically for holds whose until date passed.
type EndedArgs struct{}

// Kind names the job.
func (EndedArgs) Kind() string { return "legal_holds_ended" }

// Enqueuer schedules jobs in the caller's transaction.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args jobs.Args) error
}

// Accounts is what holds need of the account capability.
type Accounts interface {
	Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error)
	Active(ctx context.Context, accountID string) (bool, error)
}

// Hold is one legal hold.
type Hold struct {
	ID        string
	SubjectID string
	Holders   []string
	// Reason is opened with the subject's key; "" when the key is gone.
	Reason     string
	Until      time.Time // zero: until released
	PlacedBy   string
	PlacedAt   time.Time
	ReleasedBy string
	ReleasedAt time.Time
}

// State is the hold's state at now.
func (h Hold) State(now time.Time) string {
	switch {
	case !h.ReleasedAt.IsZero():
		return Released
	case !h.Until.IsZero() && !now.Before(h.Until):
		return Expired
	}
	return InForce
}

// InForce reports whether the hold keeps its data at now.
func (h Hold) InForce(now time.Time) bool { return h.State(now) == InForce }

// Placement is what the DPO gives to place a hold.
type Placement struct {
	Subject string // the member's account id or email
	Holders []string
	Reason  string
	Until   time.Time // zero: until released
}

// Actor is the staff member acting, for the audit log.
type Actor struct {
	ID string
	IP string
}

// Service keeps the holds.
type Service struct {
	db       *store.DB
	vault    *vault.Vault
	audit    *governance.Audit
	reg      *datamap.Registry
	accounts Accounts
	erased   func(ctx context.Context, identifier string) (time.Time, bool, error)
	jobs     Enqueuer
	now      func() time.Time
}

// New returns the holds service. erased asks the erasure ledger whether an identifier
// was erased.
func New(db *store.DB, v *vault.Vault, audit *governance.Audit, reg *datamap.Registry, accounts Accounts,
	erased func(context.Context, string) (time.Time, bool, error), jobs Enqueuer, now func() time.Time) *Service {
	return &Service{db: db, vault: v, audit: audit, reg: reg, accounts: accounts, erased: erased, jobs: jobs, now: now}
}

// Holdable returns the holders a hold may name, in the data map's order, with their
// descriptions: every holder but those kept along with any hold.
func (s *Service) Holdable() []datamap.Declaration {
	var out []datamap.Declaration
	for _, h := range s.reg.Holders() {
		d := h.Declaration()
		if !slices.Contains(keptAlong, d.Name) {
			out = append(out, d)
		}
	}
	return out
}

// Describe returns what a holder keeps, for the member, or the name if unknown.
func (s *Service) Describe(name string) string {
	if h, ok := s.reg.Holder(name); ok {
		return h.Declaration().Description
	}
	return name
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Place places a hold on an active member.
func (s *Service) Place(ctx context.Context, by Actor, p Placement) (Hold, error) {
	subjectID, err := s.subject(ctx, strings.TrimSpace(p.Subject))
	if err != nil {
		return Hold{}, err
	}
	holders, err := s.checkHolders(p.Holders)
	if err != nil {
		return Hold{}, err
	}
	reason := strings.TrimSpace(p.Reason)
	switch {
	case reason == "":
		return Hold{}, apperr.Field("reason", "required", "is required: say why the data must be kept (the member is told)")
	case utf8.RuneCountInString(reason) > maxReason:
		return Hold{}, apperr.Field("reason", "too_long", fmt.Sprintf("is longer than %d characters", maxReason))
	}
	now := s.now()
	if !p.Until.IsZero() && !p.Until.After(now) {
		return Hold{}, apperr.Field("until", "past", "must be in the future, or empty for a hold until released")
	}
	h := Hold{ID: newID(), SubjectID: subjectID, Holders: holders, Reason: reason, Until: p.Until, PlacedBy: by.ID, PlacedAt: now}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// An erasure asked for since the check above wins: its run would not see this
		// hold. The lock orders the two (rights.insertRequest takes it too).
		if err := tx.Lock(ctx, rights.SubjectLock(subjectID), false); err != nil {
			return err
		}
		var erasing int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM erasure_requests WHERE subject_id = $1`, subjectID).Scan(&erasing); err != nil {
			return fmt.Errorf("holds: place: %w", err)
		}
		if erasing > 0 {
			return errErasing
		}
		key, err := s.vault.KeyIn(ctx, tx, subjectID, true)
		if err != nil {
			return err
		}
		var until any
		if !h.Until.IsZero() {
			until = store.Millis(h.Until)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO legal_holds (id, subject_id, holders, reason, until_at, placed_by, placed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, h.ID, subjectID, strings.Join(holders, ","), key.SealText(labelReason, reason),
			until, by.ID, store.Millis(now)); err != nil {
			return fmt.Errorf("holds: place: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "legal_hold_placed", AccountID: by.ID, IP: by.IP,
			Detail: "hold " + h.ID + " keeps " + strings.Join(holders, ",")})
	})
	if err != nil {
		return Hold{}, err
	}
	return h, nil
}

var errErasing = apperr.Field("subject", "not_active",
	"is not an active member: the account is being erased or was never confirmed; a hold must be placed before an erasure")

// subject resolves the member a hold is placed on: an active account, by id or email.
func (s *Service) subject(ctx context.Context, who string) (string, error) {
	if who == "" {
		return "", apperr.Field("subject", "required", "is required: the member's account id or email")
	}
	subj, err := s.accounts.Lookup(ctx, who)
	if err == nil {
		active, err := s.accounts.Active(ctx, subj.ID)
		if err != nil {
			return "", err
		}
		if !active {
			return "", errErasing
		}
		return subj.ID, nil
	}
	if apperr.KindOf(err) != apperr.NotFound {
		return "", err
	}
	_, gone, err := s.erased(ctx, who)
	if err != nil {
		return "", err
	}
	if gone {
		return "", apperr.Field("subject", "erased", "was erased: nothing of the member is left to hold")
	}
	return "", apperr.Field("subject", "unknown", "names no member: give an account id or email")
}

// checkHolders returns the holders named, trimmed, each once, in the data map's order.
func (s *Service) checkHolders(names []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	if len(want) == 0 {
		return nil, apperr.Field("holders", "required", "is required: name at least one holder of the data map")
	}
	var out []string
	for _, d := range s.Holdable() {
		if want[d.Name] {
			out = append(out, d.Name)
			delete(want, d.Name)
		}
	}
	if len(want) > 0 {
		var bad []string
		for n := range want {
			bad = append(bad, n)
		}
		sort.Strings(bad)
		return nil, apperr.Field("holders", "unknown_holder", "names no holder a hold can keep: "+strings.Join(bad, ", "))
	}
	return out, nil
}

// Release ends a hold in force. The erasure waiting on it, if any, finishes in a job.
func (s *Service) Release(ctx context.Context, by Actor, id string) (Hold, error) {
	var h Hold
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if h, err = s.get(ctx, tx, id); err != nil {
			return err
		}
		now := s.now()
		if st := h.State(now); st != InForce {
			return apperr.New(apperr.Conflict, "hold_ended", "the hold has already ended ("+st+")")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE legal_holds SET released_by = $1, released_at = $2 WHERE id = $3`,
			by.ID, store.Millis(now), id); err != nil {
			return fmt.Errorf("holds: release: %w", err)
		}
		h.ReleasedBy, h.ReleasedAt = by.ID, now
		if err := s.audit.Record(ctx, tx, governance.Event{Name: "legal_hold_released", AccountID: by.ID, IP: by.IP, Detail: "hold " + id}); err != nil {
			return err
		}
		return s.jobs.Enqueue(ctx, tx, EndedArgs{})
	})
	return h, err
}

// selectHolds reads holds with their subject's wrapped data key; the statements
// below add their condition.
const selectHolds = `SELECT h.id, h.subject_id, h.holders, h.reason, h.until_at, h.placed_by, h.placed_at, h.released_by, h.released_at,
	k.wrapped, k.epoch FROM legal_holds h LEFT JOIN vault_keys k ON k.subject_id = h.subject_id `

const (
	holdByID       = selectHolds + `WHERE h.id = $1`
	holdsOfSubject = selectHolds + `WHERE h.subject_id = $1 ORDER BY h.placed_at DESC, h.id`
	holdsAll       = selectHolds + `ORDER BY h.placed_at DESC, h.id`
)

type row struct {
	h                    Hold
	holders, reason      string
	until, released      sql.NullInt64
	placedBy, releasedBy sql.NullString
	placed               int64
	wrapped              []byte
	epoch                sql.NullInt64
}

func (r *row) dest() []any {
	return []any{&r.h.ID, &r.h.SubjectID, &r.holders, &r.reason, &r.until, &r.placedBy, &r.placed, &r.releasedBy, &r.released, &r.wrapped, &r.epoch}
}

// hold opens the row: its reason with the subject's key, when the key is still there.
func (s *Service) hold(r *row) (Hold, error) {
	h := r.h
	h.Holders = strings.Split(r.holders, ",")
	h.Until, h.ReleasedAt = store.NullMillis(r.until), store.NullMillis(r.released)
	h.PlacedAt = store.FromMillis(r.placed)
	h.PlacedBy, h.ReleasedBy = r.placedBy.String, r.releasedBy.String
	if r.wrapped != nil {
		key, err := s.vault.Unwrap(h.SubjectID, r.wrapped, r.epoch.Int64)
		if err != nil {
			return Hold{}, err
		}
		if h.Reason, err = key.OpenText(labelReason, r.reason); err != nil {
			return Hold{}, fmt.Errorf("holds: open reason of %s: %w", h.ID, err)
		}
	}
	return h, nil
}

// query runs one of the statements above (holdByID, holdsOfSubject, holdsAll).
func (s *Service) query(ctx context.Context, q store.Querier, stmt string, args ...any) ([]Hold, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("holds: list: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var r row
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("holds: list: %w", err)
		}
		h, err := s.hold(&r)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *Service) get(ctx context.Context, q store.Querier, id string) (Hold, error) {
	list, err := s.query(ctx, q, holdByID, id)
	if err != nil {
		return Hold{}, err
	}
	if len(list) == 0 {
		return Hold{}, apperr.New(apperr.NotFound, "hold_not_found", "no such hold")
	}
	return list[0], nil
}

// Get returns a hold.
func (s *Service) Get(ctx context.Context, id string) (Hold, error) { return s.get(ctx, s.db, id) }

// List returns every hold, the newest first; with subjectID, that member's only.
func (s *Service) List(ctx context.Context, subjectID string) ([]Hold, error) {
	if subjectID != "" {
		return s.query(ctx, s.db, holdsOfSubject, subjectID)
	}
	return s.query(ctx, s.db, holdsAll)
}

// InForce returns the member's holds in force now, the newest first.
func (s *Service) InForce(ctx context.Context, subjectID string) ([]Hold, error) {
	all, err := s.List(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return slices.DeleteFunc(all, func(h Hold) bool { return !h.InForce(now) }), nil
}

// Keeps returns, for every holder an erasure of the subject must keep now, the ids of
// the holds keeping it: the holders the holds in force name, and with any hold, the
// data key and the holds themselves. No hold in force: an empty map.
func (s *Service) Keeps(ctx context.Context, subjectID string) (map[string][]string, error) {
	list, err := s.InForce(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, h := range list {
		for _, n := range append(slices.Clone(h.Holders), keptAlong...) {
			out[n] = append(out[n], h.ID)
		}
	}
	return out, nil
}

// Kept returns what the holds in force keep of the subject, table by table, for a
// residue scan to account for by name.
func (s *Service) Kept(ctx context.Context, subjectID string) ([]datamap.Kept, error) {
	list, err := s.InForce(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	var out []datamap.Kept
	for _, h := range list {
		for _, n := range append(slices.Clone(h.Holders), keptAlong...) {
			holder, ok := s.reg.Holder(n)
			if !ok {
				continue // a holder a later release dropped: nothing of it is kept
			}
			for _, t := range holder.Declaration().Tables {
				out = append(out, datamap.Kept{Table: t.Name, Holder: n, HoldID: h.ID, Until: h.Until})
			}
		}
	}
	return out, nil
}

// Holder is the holds' entry in the data map.
type Holder struct{}

var holdsTable = datamap.Table{Name: "legal_holds", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random hold id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
	{Name: "holders", NotPersonal: "names of the data map's holders the hold keeps"},
	{Name: "reason", Categories: []string{"user.content"}, Sealed: true},
	{Name: "until_at", NotPersonal: "when the hold ends, if it has an end", Time: true},
	{Name: "placed_by", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the DPO who placed the hold, blanked when that member is erased",
		Withheld: "the id of the staff member who placed the hold: their data, not yours"},
	{Name: "placed_at", NotPersonal: "when the hold was placed", Time: true},
	{Name: "released_by", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the DPO who released the hold, blanked when that member is erased",
		Withheld: "the id of the staff member who released the hold: their data, not yours"},
	{Name: "released_at", NotPersonal: "when the hold was released", Time: true},
}}

// Declaration describes the holds.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        Name,
		Description: "Legal holds on your data: which of it must be kept despite an erasure, why, and until when.",
		Purpose:     "Keep data that a legal obligation or a legal claim requires, only that data and only while required, and tell you so.",
		LawfulBasis: "legal_obligation",
		Retention:   "Until your erasure ends: a hold keeps its record while it keeps data, and both go once it ends.",
		Tables:      []datamap.Table{holdsTable},
	}
}

// Export returns the subject's holds, reasons opened.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase deletes the subject's holds (an erasure reaches it only once no hold is in
// force), and blanks the subject as the DPO who placed or released others' holds.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	for _, q := range []string{`UPDATE legal_holds SET placed_by = NULL WHERE placed_by = $1`,
		`UPDATE legal_holds SET released_by = NULL WHERE released_by = $1`} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("holds: erase: %w", err)
		}
	}
	return nil
}

// ParseUntil reads an until date as the API and the form give it: empty for a hold
// until released, a day (YYYY-MM-DD: the hold lasts to that day's end, UTC), or an
// RFC 3339 time.
func ParseUntil(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, apperr.Field("until", "date_invalid", "must be a day (YYYY-MM-DD) or an RFC 3339 time, or empty for a hold until released")
}

// Held returns the subjects with a hold in force that keeps the holder's data (it names
// the holder, or the holder is kept along with any hold; "" for any hold): retention
// leaves their data in that holder alone, as an erasure would.
func (s *Service) Held(ctx context.Context, holder string) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT DISTINCT subject_id FROM legal_holds WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1)
		ORDER BY subject_id`, store.Millis(s.now()))
	if err != nil {
		return nil, fmt.Errorf("holds: held: %w", err)
	}
	var out []string
	for _, id := range ids {
		keeps, err := s.Keeps(ctx, id)
		if err != nil {
			return nil, err
		}
		if holder == "" || len(keeps[holder]) > 0 {
			out = append(out, id)
		}
	}
	return out, nil
}
