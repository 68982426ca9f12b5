// Package breaches owns the register of personal data breaches (GDPR art. 33 and
// 34): what happened, when it was discovered, the categories of data, the likely
// consequences and the measures taken; the 72-hour clock to the supervisory authority
// and the report made to it; the members affected, selected by a query; and the
// notice mailed to them, once each. Its tables are breaches and breach_subjects.
//
// The breach's texts describe the incident, not a member, and are kept plain (the
// forms say so). A member's link to a breach (and when they were notified) goes with
// their erasure; the breach keeps how many members it affected.
package breaches

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/rights"
	"steward/internal/store"
	"steward/internal/text"
)

// Role is the staff role that keeps the register (admin holds every role).
const Role = "dpo"

// Name is the register's holder name in the data map.
const Name = "breaches"

// Window is how long after its discovery a breach must be reported to the
// supervisory authority (GDPR art. 33(1)).
const Window = 72 * time.Hour

// Limits.
const (
	maxShort  = 300
	maxLong   = 4000
	maxEmails = 1000
	// notifyBatch is how many notices one transaction queues.
	notifyBatch = 200
)

// States of the clock to the authority.
const (
	Open         = "open"          // not reported, the deadline ahead
	Overdue      = "overdue"       // not reported, the deadline passed
	Reported     = "reported"      // reported within the window
	ReportedLate = "reported_late" // reported after it, with the reasons for the delay
)

// Report is what the DPO gives to record a breach.
type Report struct {
	Description  string
	DiscoveredAt time.Time
	Categories   []string
	Consequences string
	Measures     string
}

// Breach is one entry of the register.
type Breach struct {
	ID           string
	Description  string
	DiscoveredAt time.Time
	Categories   []string
	Consequences string
	Measures     string
	RecordedAt   time.Time
	RecordedBy   string
	ReportedAt   time.Time // zero: not reported to the authority yet
	Reference    string    // the authority's reference of the report
	DelayReason  string    // why it was reported after the window
	ReportedBy   string
	Affected     int // members selected, erased ones included
	Linked       int // members linked now
	Notified     int // members linked now who were sent the notice
}

// Deadline is when the report to the authority is due.
func (b Breach) Deadline() time.Time { return b.DiscoveredAt.Add(Window) }

// State is the clock's state at now.
func (b Breach) State(now time.Time) string {
	switch {
	case !b.ReportedAt.IsZero() && b.ReportedAt.After(b.Deadline()):
		return ReportedLate
	case !b.ReportedAt.IsZero():
		return Reported
	case now.After(b.Deadline()):
		return Overdue
	}
	return Open
}

// Left is the time left to the deadline at now (negative: overdue).
func (b Breach) Left(now time.Time) time.Duration { return b.Deadline().Sub(now) }

// Selection chooses the members a breach affects: either an explicit list (account
// ids or emails), or the active members created in a period, optionally only those a
// purpose applies to now (consented, or not objected to), or all active members of a
// purpose.
type Selection struct {
	Emails      []string
	CreatedFrom time.Time
	CreatedTo   time.Time // exclusive
	Purpose     string
}

// Actor is the staff member acting, for the audit log.
type Actor struct {
	ID string
	IP string
}

// Accounts is what the register needs of the account capability.
type Accounts interface {
	Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error)
	Subject(ctx context.Context, accountID string) (datamap.Subject, error)
	Active(ctx context.Context, accountID string) (bool, error)
	Selected(ctx context.Context, from, to time.Time, cond string) ([]string, error)
}

// Purposes gives the SQL condition of the members a purpose applies to.
type Purposes interface {
	AllowedSQL(purpose, col string) (string, error)
}

// Mailer queues transactional mail in the caller's transaction.
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, t mail.Transactional) error
}

// Service keeps the register.
type Service struct {
	db       *store.DB
	audit    *governance.Audit
	accounts Accounts
	purposes Purposes
	mail     Mailer
	contact  string // the DPO's contact, in the notice
	now      func() time.Time
}

// New returns the register.
func New(db *store.DB, audit *governance.Audit, accounts Accounts, purposes Purposes, m Mailer, contact string, now func() time.Time) *Service {
	return &Service{db: db, audit: audit, accounts: accounts, purposes: purposes, mail: m, contact: contact, now: now}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// List splits a list as a form gives it (commas, semicolons or lines), trimmed,
// without empties or repeats.
func List(s string) []string {
	return clean(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '\n' || r == '\r' }))
}

func clean(in []string) []string {
	var out []string
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Record enters a breach in the register; its 72-hour clock runs from DiscoveredAt.
func (s *Service) Record(ctx context.Context, by Actor, r Report) (Breach, error) {
	var b Breach
	var err error
	if b.Description, err = text.Required("description", r.Description, maxLong, "what happened"); err != nil {
		return Breach{}, err
	}
	now := s.now()
	switch {
	case r.DiscoveredAt.IsZero():
		return Breach{}, apperr.Field("discovered_at", "required", "is required: when the breach was discovered (the 72 hours run from then)")
	case r.DiscoveredAt.After(now):
		return Breach{}, apperr.Field("discovered_at", "future", "is in the future")
	}
	if b.Categories = clean(r.Categories); len(b.Categories) == 0 {
		return Breach{}, apperr.Field("categories", "required", "is required: name at least one category of data concerned")
	}
	for _, c := range b.Categories {
		if utf8.RuneCountInString(c) > maxShort || strings.Contains(c, ",") {
			return Breach{}, apperr.Field("categories", "invalid", "holds a category too long or with a comma")
		}
	}
	if b.Consequences, err = text.Required("consequences", r.Consequences, maxLong, "the likely consequences for the members"); err != nil {
		return Breach{}, err
	}
	if b.Measures, err = text.Required("measures", r.Measures, maxLong, "the measures taken or proposed"); err != nil {
		return Breach{}, err
	}
	b.ID, b.DiscoveredAt, b.RecordedAt, b.RecordedBy = newID(), r.DiscoveredAt, now, by.ID
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO breaches (id, description, discovered_at, categories, consequences, measures, recorded_by, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, b.ID, b.Description, store.Millis(b.DiscoveredAt), strings.Join(b.Categories, ","),
			b.Consequences, b.Measures, by.ID, store.Millis(now)); err != nil {
			return fmt.Errorf("breaches: record: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "breach_recorded", AccountID: by.ID, IP: by.IP,
			Detail: "breach " + b.ID + " discovered " + b.DiscoveredAt.UTC().Format(time.RFC3339)})
	})
	if err != nil {
		return Breach{}, err
	}
	return b, nil
}

// Selected is the outcome of a selection.
type Selected struct {
	Matched int // members the selection finds
	Added   int // of them, not linked to the breach before (0 for a preview)
}

// Select finds the members the selection names and, unless preview, links them to
// the breach (those linked already stay as they are).
func (s *Service) Select(ctx context.Context, by Actor, id string, sel Selection, preview bool) (Selected, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return Selected{}, err
	}
	ids, words, err := s.find(ctx, sel)
	if err != nil {
		return Selected{}, err
	}
	out := Selected{Matched: len(ids)}
	if preview || len(ids) == 0 {
		return out, nil
	}
	now := store.Millis(s.now())
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		out.Added = 0
		for _, sid := range ids {
			// A member whose erasure was asked for is passed over: the erasure would not
			// see the link (the lock orders the two).
			if err := tx.Lock(ctx, rights.SubjectLock(sid), false); err != nil {
				return err
			}
			var gone int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM erasure_requests WHERE subject_id = $1`, sid).Scan(&gone); err != nil {
				return fmt.Errorf("breaches: select: %w", err)
			}
			if gone > 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO breach_subjects (breach_id, subject_id, added_at) VALUES ($1, $2, $3)
				ON CONFLICT (breach_id, subject_id) DO NOTHING`, id, sid, now)
			if err != nil {
				return fmt.Errorf("breaches: select: %w", err)
			}
			n, _ := res.RowsAffected()
			out.Added += int(n)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE breaches SET affected = affected + $1 WHERE id = $2`, out.Added, id); err != nil {
			return fmt.Errorf("breaches: select: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "breach_members_selected", AccountID: by.ID, IP: by.IP,
			Detail: fmt.Sprintf("breach %s: %s: %d matched, %d added", id, words, out.Matched, out.Added)})
	})
	if err != nil {
		return Selected{}, err
	}
	return out, nil
}

// find resolves a selection to account ids, and says it in words for the audit log
// (never an address).
func (s *Service) find(ctx context.Context, sel Selection) ([]string, string, error) {
	emails := clean(sel.Emails)
	byQuery := !sel.CreatedFrom.IsZero() || !sel.CreatedTo.IsZero() || strings.TrimSpace(sel.Purpose) != ""
	switch {
	case len(emails) > 0 && byQuery:
		return nil, "", apperr.Field("emails", "either", "is given with a query: select either by a list of members or by a query, not both")
	case len(emails) > maxEmails:
		return nil, "", apperr.Field("emails", "too_many", fmt.Sprintf("names more than %d members", maxEmails))
	case len(emails) > 0:
		var ids []string
		for _, who := range emails {
			subj, err := s.accounts.Lookup(ctx, who)
			if apperr.KindOf(err) == apperr.NotFound {
				return nil, "", apperr.Field("emails", "unknown", fmt.Sprintf("names no member: %q", who))
			}
			if err != nil {
				return nil, "", err
			}
			if !slices.Contains(ids, subj.ID) {
				ids = append(ids, subj.ID)
			}
		}
		return ids, fmt.Sprintf("a list of %d", len(emails)), nil
	case !byQuery:
		return nil, "", apperr.Field("emails", "required", "is required: a list of members, or a query (created between, purpose)")
	}
	if !sel.CreatedFrom.IsZero() && !sel.CreatedTo.IsZero() && !sel.CreatedTo.After(sel.CreatedFrom) {
		return nil, "", apperr.Field("created_to", "before_from", "must be after the start of the period")
	}
	var cond string
	words := "active members"
	if p := strings.TrimSpace(sel.Purpose); p != "" {
		var err error
		if cond, err = s.purposes.AllowedSQL(p, "a.id"); err != nil {
			return nil, "", err
		}
		words += " of purpose " + p
	}
	if !sel.CreatedFrom.IsZero() {
		words += " created from " + sel.CreatedFrom.UTC().Format(time.DateOnly)
	}
	if !sel.CreatedTo.IsZero() {
		words += " created before " + sel.CreatedTo.UTC().Format(time.DateOnly)
	}
	ids, err := s.accounts.Selected(ctx, sel.CreatedFrom, sel.CreatedTo, cond)
	return ids, words, err
}

// ReportToAuthority records the report made to the supervisory authority, with its
// reference; at is when it was made (zero: now). A report after the 72 hours needs the
// reasons for the delay (art. 33(1)).
func (s *Service) ReportToAuthority(ctx context.Context, by Actor, id string, at time.Time, reference, delayReason string) (Breach, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return Breach{}, err
	}
	if !b.ReportedAt.IsZero() {
		return Breach{}, apperr.New(apperr.Conflict, "already_reported", "the breach was reported to the authority already")
	}
	now := s.now()
	if at.IsZero() {
		at = now
	}
	switch {
	case at.After(now):
		return Breach{}, apperr.Field("reported_at", "future", "is in the future")
	case at.Before(b.DiscoveredAt):
		return Breach{}, apperr.Field("reported_at", "before_discovery", "is before the breach was discovered")
	}
	if reference, err = text.Required("reference", reference, maxShort, "the authority's reference of the report"); err != nil {
		return Breach{}, err
	}
	delayReason = strings.TrimSpace(delayReason)
	if at.After(b.Deadline()) {
		if delayReason, err = text.Required("delay_reason", delayReason, maxLong, "the report is after the 72 hours: give the reasons for the delay"); err != nil {
			return Breach{}, err
		}
	}
	var delay any
	if delayReason != "" {
		delay = delayReason
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE breaches SET reported_at = $1, report_reference = $2, delay_reason = $3, reported_by = $4
			WHERE id = $5 AND reported_at IS NULL`, store.Millis(at), reference, delay, by.ID, id)
		if err != nil {
			return fmt.Errorf("breaches: report: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return apperr.New(apperr.Conflict, "already_reported", "the breach was reported to the authority already")
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "breach_reported", AccountID: by.ID, IP: by.IP,
			Detail: "breach " + id + " reported " + at.UTC().Format(time.RFC3339)})
	})
	if err != nil {
		return Breach{}, err
	}
	return s.Get(ctx, id)
}

// Notify mails the notice to every member linked to the breach who was not sent it
// yet, and returns how many it queued: sending again mails nobody twice.
func (s *Service) Notify(ctx context.Context, by Actor, id string) (int, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	data := map[string]string{"Description": b.Description, "Categories": strings.Join(b.Categories, ", "),
		"Consequences": b.Consequences, "Measures": b.Measures, "Discovered": b.DiscoveredAt.UTC().Format("2 January 2006"), "Contact": s.contact}
	sent := 0
	for {
		pending, err := s.pending(ctx, id)
		if err != nil {
			return sent, err
		}
		if len(pending) == 0 {
			break
		}
		// The addresses are read before the transaction (reads do not wait on it).
		var members []datamap.Subject
		for _, sid := range pending {
			m, err := s.accounts.Subject(ctx, sid)
			if apperr.KindOf(err) == apperr.NotFound {
				m = datamap.Subject{ID: sid} // erased meanwhile: nothing is mailed
			} else if err != nil {
				return sent, err
			}
			members = append(members, m)
		}
		n := 0
		err = s.db.InTx(ctx, func(tx *store.Tx) error {
			n = 0
			now := store.Millis(s.now())
			for _, m := range members {
				res, err := tx.ExecContext(ctx, `UPDATE breach_subjects SET notified_at = $1 WHERE breach_id = $2 AND subject_id = $3 AND notified_at IS NULL`,
					now, id, m.ID)
				if err != nil {
					return fmt.Errorf("breaches: notify: %w", err)
				}
				if c, _ := res.RowsAffected(); c != 1 || m.Email == "" {
					continue // sent meanwhile, erased, or no proven address to write to
				}
				if err := s.mail.Enqueue(ctx, tx, mail.Transactional{SubjectID: m.ID, To: m.Email, Template: mail.BreachNotice, Data: data}); err != nil {
					return err
				}
				n++
			}
			return s.audit.Record(ctx, tx, governance.Event{Name: "breach_notice_sent", AccountID: by.ID, IP: by.IP,
				Detail: fmt.Sprintf("breach %s: notice queued to %d member(s)", id, n)})
		})
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

func (s *Service) pending(ctx context.Context, id string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT subject_id FROM breach_subjects WHERE breach_id = $1 AND notified_at IS NULL ORDER BY subject_id LIMIT $2`,
		id, notifyBatch)
	if err != nil {
		return nil, fmt.Errorf("breaches: notify: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			return nil, fmt.Errorf("breaches: notify: %w", err)
		}
		out = append(out, sid)
	}
	return out, rows.Err()
}

const selectBreaches = `SELECT b.id, b.description, b.discovered_at, b.categories, b.consequences, b.measures, b.recorded_by, b.recorded_at,
	b.reported_at, b.report_reference, b.delay_reason, b.reported_by, b.affected,
	(SELECT count(*) FROM breach_subjects s WHERE s.breach_id = b.id),
	(SELECT count(*) FROM breach_subjects s WHERE s.breach_id = b.id AND s.notified_at IS NOT NULL)
	FROM breaches b `

const (
	breachByID = selectBreaches + `WHERE b.id = $1`
	breachAll  = selectBreaches + `ORDER BY b.discovered_at DESC, b.id`
)

func (s *Service) query(ctx context.Context, stmt string, args ...any) ([]Breach, error) {
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("breaches: list: %w", err)
	}
	defer rows.Close()
	var out []Breach
	for rows.Next() {
		var b Breach
		var cats string
		var discovered, recorded int64
		var reported sql.NullInt64
		var recordedBy, ref, delay, reportedBy sql.NullString
		if err := rows.Scan(&b.ID, &b.Description, &discovered, &cats, &b.Consequences, &b.Measures, &recordedBy, &recorded,
			&reported, &ref, &delay, &reportedBy, &b.Affected, &b.Linked, &b.Notified); err != nil {
			return nil, fmt.Errorf("breaches: list: %w", err)
		}
		b.Categories = List(cats)
		b.DiscoveredAt, b.RecordedAt, b.ReportedAt = store.FromMillis(discovered), store.FromMillis(recorded), store.NullMillis(reported)
		b.RecordedBy, b.Reference, b.DelayReason, b.ReportedBy = recordedBy.String, ref.String, delay.String, reportedBy.String
		out = append(out, b)
	}
	return out, rows.Err()
}

var errNotFound = apperr.New(apperr.NotFound, "breach_not_found", "no such breach")

// Get returns one breach.
func (s *Service) Get(ctx context.Context, id string) (Breach, error) {
	list, err := s.query(ctx, breachByID, id)
	if err != nil {
		return Breach{}, err
	}
	if len(list) == 0 {
		return Breach{}, errNotFound
	}
	return list[0], nil
}

// List returns the register, the latest discovered first.
func (s *Service) List(ctx context.Context) ([]Breach, error) { return s.query(ctx, breachAll) }
