// Package disclosures owns the register of disclosures of members' data to
// authorities (P-SHARE-3): who asked (the authority), on what legal basis, the
// document received, what was disclosed of which members, and when. Each member
// concerned is told (a mail and a line on their privacy page) unless the DPO sets a
// "not yet" flag with a reason and a review date; lifting the flag tells them. Its
// tables are disclosures and disclosure_subjects.
//
// What is sealed under whose key: what was disclosed of a member (the detail) under
// the member's data key; the document (an object of the blob store) and the reason
// for not telling yet under the disclosure's own data key, since the register keeps
// them as its record of the legal obligation it answered, whoever it concerned. An
// erasure of a member removes their link to a disclosure and the detail (their key
// goes too); the disclosure stays with its authority, basis, categories, date,
// document and the number of members it concerned. A legal hold that names this
// holder keeps the link as well.
package disclosures

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/document"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/rights"
	"steward/internal/store"
	"steward/internal/text"
	"steward/internal/vault"
)

// Role is the staff role that keeps the register (admin holds every role).
const Role = "dpo"

// Name is the register's holder name in the data map.
const Name = "disclosures"

// Labels the sealed values are bound to.
const (
	labelDetail = "disclosure_subjects.detail"
	labelReason = "disclosures.withheld_reason"
)

// Limits of the text fields, in characters.
const (
	maxShort   = 300
	maxLong    = 4000
	maxMembers = 1000
)

// DefaultMaxDocument is the document size limit when the config gives none.
const DefaultMaxDocument = 20 << 20

// documentObjects is where documents live in the blob store.
const documentObjects = "disclosures/"

// Document is the file the authority sent: its order or request.
type Document = document.Upload

// DocumentInfo describes a stored document.
type DocumentInfo = document.Info

// Record is what the DPO gives to record a disclosure.
type Record struct {
	Authority   string
	LegalBasis  string
	Categories  []string // data categories disclosed
	What        string   // what was disclosed, in words (each member is told it)
	DisclosedAt time.Time
	Members     []string // account ids or emails of the members concerned
	Document    *Document
	// Withhold: the members are not told yet, for WithholdReason, until the DPO lifts
	// the flag; the console shows it due for review from ReviewAt.
	Withhold       bool
	WithholdReason string
	ReviewAt       time.Time
}

// Disclosure is one entry of the register.
type Disclosure struct {
	ID          string
	Authority   string
	LegalBasis  string
	Categories  []string
	DisclosedAt time.Time
	RecordedAt  time.Time
	RecordedBy  string
	Document    DocumentInfo
	// WithholdReason is opened with the disclosure's key; "" when the members were
	// told at once.
	WithholdReason string
	ReviewAt       time.Time
	LiftedAt       time.Time
	LiftedBy       string
	Members        int      // how many members it concerned when recorded
	Subjects       []Linked // the members linked now (erased ones are gone)
	// What is what was disclosed, opened from a linked member's row; "" once every
	// member it concerned is erased.
	What string
}

// Linked is one member a disclosure concerns.
type Linked struct {
	SubjectID string
	ToldAt    time.Time // zero: not told yet
}

// Withheld reports whether the members are not to be told yet.
func (d Disclosure) Withheld() bool { return d.WithholdReason != "" && d.LiftedAt.IsZero() }

// DueForReview reports whether the "not yet" flag's review date has come.
func (d Disclosure) DueForReview(now time.Time) bool { return d.Withheld() && !now.Before(d.ReviewAt) }

// Told is a disclosure as the member it concerned sees it.
type Told struct {
	ID          string
	Authority   string
	LegalBasis  string
	Categories  []string
	What        string
	DisclosedAt time.Time
	ToldAt      time.Time
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
}

// Mailer queues transactional mail in the caller's transaction.
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, t mail.Transactional) error
}

// Config is what the register needs besides its services.
type Config struct {
	Blobs       blob.Store
	MaxDocument int64
	BaseURL     string
}

// Service keeps the register.
type Service struct {
	db       *store.DB
	vault    *vault.Vault
	audit    *governance.Audit
	accounts Accounts
	mail     Mailer
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
}

// New returns the register.
func New(db *store.DB, v *vault.Vault, audit *governance.Audit, accounts Accounts, m Mailer, cfg Config, now func() time.Time, log *slog.Logger) *Service {
	if cfg.MaxDocument <= 0 {
		cfg.MaxDocument = DefaultMaxDocument
	}
	return &Service{db: db, vault: v, audit: audit, accounts: accounts, mail: m, cfg: cfg, now: now, log: log}
}

// MaxDocument is the largest document a disclosure may carry.
func (s *Service) MaxDocument() int64 { return s.cfg.MaxDocument }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Categories splits a list of data categories as a form gives it (commas or lines).
func Categories(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
}

// cleanList trims, drops empties and repeats, keeping the order.
func cleanList(in []string) []string {
	var out []string
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Members splits a list of members as a form gives it (commas, spaces or lines).
func Members(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == ';' })
}

// checked is a record that passed the checks, with its members resolved.
type checked struct {
	Record
	categories []string
	members    []datamap.Subject
	doc        []byte
	docType    string
}

func (s *Service) check(ctx context.Context, rec Record) (checked, error) {
	c := checked{Record: rec}
	var err error
	if c.Authority, err = text.Required("authority", rec.Authority, maxShort, "the authority that asked for the data"); err != nil {
		return c, err
	}
	if c.LegalBasis, err = text.Required("legal_basis", rec.LegalBasis, maxLong, "the law or order the disclosure answered"); err != nil {
		return c, err
	}
	if c.categories = cleanList(rec.Categories); len(c.categories) == 0 {
		return c, apperr.Field("categories", "required", "is required: name at least one category of the data disclosed")
	}
	for _, cat := range c.categories {
		if utf8.RuneCountInString(cat) > maxShort || strings.Contains(cat, ",") {
			return c, apperr.Field("categories", "invalid", "holds a category too long or with a comma")
		}
	}
	if c.What, err = text.Required("what", rec.What, maxLong, "what was disclosed (the members are told it)"); err != nil {
		return c, err
	}
	now := s.now()
	switch {
	case rec.DisclosedAt.IsZero():
		return c, apperr.Field("disclosed_at", "required", "is required: the day the data was disclosed")
	case rec.DisclosedAt.After(now):
		return c, apperr.Field("disclosed_at", "future", "is in the future: record a disclosure once it is made")
	}
	if rec.Withhold {
		if c.WithholdReason, err = text.Required("withhold_reason", rec.WithholdReason, maxLong, "say why the members must not be told yet"); err != nil {
			return c, err
		}
		switch {
		case rec.ReviewAt.IsZero():
			return c, apperr.Field("review_at", "required", "is required when the members are not told yet: the day to review it")
		case !rec.ReviewAt.After(now):
			return c, apperr.Field("review_at", "past", "must be in the future")
		}
	} else {
		c.WithholdReason, c.ReviewAt = "", time.Time{}
	}
	ids := cleanList(rec.Members)
	if len(ids) == 0 {
		return c, apperr.Field("members", "required", "is required: the account id or email of each member concerned")
	}
	if len(ids) > maxMembers {
		return c, apperr.Field("members", "too_many", fmt.Sprintf("names more than %d members", maxMembers))
	}
	for _, who := range ids {
		subj, err := s.accounts.Lookup(ctx, who)
		if apperr.KindOf(err) == apperr.NotFound {
			return c, apperr.Field("members", "unknown", fmt.Sprintf("names no member: %q", who))
		}
		if err != nil {
			return c, err
		}
		active, err := s.accounts.Active(ctx, subj.ID)
		if err != nil {
			return c, err
		}
		if !active {
			return c, apperr.Field("members", "not_active", fmt.Sprintf("names an account that is not active (unconfirmed or being erased): %q", who))
		}
		if !slices.ContainsFunc(c.members, func(m datamap.Subject) bool { return m.ID == subj.ID }) {
			c.members = append(c.members, subj)
		}
	}
	if rec.Document == nil {
		return c, apperr.Field("document", "required", "is required: attach the document the authority sent (a PDF, JPEG or PNG file)")
	}
	if c.doc, c.docType, err = checkDocument(*rec.Document, s.cfg.MaxDocument); err != nil {
		return c, err
	}
	return c, nil
}

// Record enters a disclosure in the register. The document is stored, sealed, before
// the transaction (an upload must not hold the database's only writer on SQLite); a
// transaction that fails deletes it. Unless withheld, every member is told at once.
func (s *Service) Record(ctx context.Context, by Actor, rec Record) (Disclosure, error) {
	c, err := s.check(ctx, rec)
	if err != nil {
		return Disclosure{}, err
	}
	now := s.now()
	d := Disclosure{ID: newID(), Authority: c.Authority, LegalBasis: c.LegalBasis, Categories: c.categories, What: c.What,
		DisclosedAt: c.DisclosedAt, RecordedAt: now, RecordedBy: by.ID, Document: DocumentInfo{ContentType: c.docType, Size: int64(len(c.doc))},
		WithholdReason: c.WithholdReason, ReviewAt: c.ReviewAt, Members: len(c.members)}
	key, keyRow, err := s.vault.NewKey(d.ID)
	if err != nil {
		return Disclosure{}, err
	}
	object, err := s.putDocument(ctx, key, c.doc)
	if err != nil {
		return Disclosure{}, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vault_keys (subject_id, wrapped, epoch, created_at) VALUES ($1, $2, $3, $4)`, keyRow...); err != nil {
			return fmt.Errorf("disclosures: record: %w", err)
		}
		var reason, review any
		if d.WithholdReason != "" {
			reason, review = key.SealText(labelReason, d.WithholdReason), store.Millis(d.ReviewAt)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO disclosures (id, authority, legal_basis, categories, disclosed_at, document_object,
			document_type, document_size, withheld_reason, review_at, recorded_by, recorded_at, members)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			d.ID, d.Authority, d.LegalBasis, strings.Join(d.Categories, ","), store.Millis(d.DisclosedAt), object, d.Document.ContentType,
			d.Document.Size, reason, review, by.ID, store.Millis(now), d.Members); err != nil {
			return fmt.Errorf("disclosures: record: %w", err)
		}
		for _, m := range c.members {
			// An erasure asked for since the check above wins: it would not see this link.
			if gone, err := erasing(ctx, tx, m.ID); err != nil {
				return err
			} else if gone {
				return apperr.Field("members", "not_active", "names a member whose account is being erased")
			}
			mk, err := s.vault.KeyIn(ctx, tx, m.ID, true)
			if err != nil {
				return err
			}
			var told any
			if !d.Withheld() {
				told = store.Millis(now)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO disclosure_subjects (disclosure_id, subject_id, detail, told_at) VALUES ($1, $2, $3, $4)`,
				d.ID, m.ID, mk.SealText(labelDetail, d.What), told); err != nil {
				return fmt.Errorf("disclosures: record: %w", err)
			}
			link := Linked{SubjectID: m.ID}
			if !d.Withheld() {
				link.ToldAt = now
				if err := s.tell(ctx, tx, d, m); err != nil {
					return err
				}
			}
			d.Subjects = append(d.Subjects, link)
		}
		detail := fmt.Sprintf("disclosure %s to %d member(s)", d.ID, d.Members)
		if d.Withheld() {
			detail += ", not told yet"
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "disclosure_recorded", AccountID: by.ID, IP: by.IP, Detail: detail})
	})
	if err != nil {
		if derr := s.cfg.Blobs.Delete(context.WithoutCancel(ctx), object); derr != nil {
			s.log.Warn("disclosures: the document of a disclosure not recorded is left in the blob store", "object", object, "err", derr)
		}
		return Disclosure{}, err
	}
	return d, nil
}

// tell queues the mail telling a member of a disclosure of their data.
func (s *Service) tell(ctx context.Context, tx *store.Tx, d Disclosure, m datamap.Subject) error {
	if m.Email == "" {
		return nil // no proven address: the privacy page tells them
	}
	return s.mail.Enqueue(ctx, tx, mail.Transactional{SubjectID: m.ID, To: m.Email, Template: mail.DisclosureMade, Data: map[string]string{
		"Authority": d.Authority, "LegalBasis": d.LegalBasis, "Categories": strings.Join(d.Categories, ", "), "What": d.What,
		"Disclosed": d.DisclosedAt.UTC().Format("2 January 2006"), "Link": s.cfg.BaseURL + "/account/requests"}})
}

// Lift ends the "not yet" flag: every member not told yet is told now.
func (s *Service) Lift(ctx context.Context, by Actor, id string) (Disclosure, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return Disclosure{}, err
	}
	if !d.Withheld() {
		return Disclosure{}, apperr.New(apperr.Conflict, "not_withheld", "the members of this disclosure were told already")
	}
	// The members' addresses are read before the transaction (reads do not wait on it).
	var members []datamap.Subject
	for _, l := range d.Subjects {
		if !l.ToldAt.IsZero() {
			continue
		}
		m, err := s.accounts.Subject(ctx, l.SubjectID)
		if apperr.KindOf(err) == apperr.NotFound {
			continue // erased meanwhile: nobody to tell
		}
		if err != nil {
			return Disclosure{}, err
		}
		members = append(members, m)
	}
	now := s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE disclosures SET lifted_at = $1, lifted_by = $2 WHERE id = $3 AND lifted_at IS NULL`,
			store.Millis(now), by.ID, id)
		if err != nil {
			return fmt.Errorf("disclosures: lift: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return apperr.New(apperr.Conflict, "not_withheld", "the members of this disclosure were told already")
		}
		told := 0
		for _, m := range members {
			res, err := tx.ExecContext(ctx, `UPDATE disclosure_subjects SET told_at = $1 WHERE disclosure_id = $2 AND subject_id = $3 AND told_at IS NULL`,
				store.Millis(now), id, m.ID)
			if err != nil {
				return fmt.Errorf("disclosures: lift: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue // erased meanwhile
			}
			if err := s.tell(ctx, tx, d, m); err != nil {
				return err
			}
			told++
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "disclosure_flag_lifted", AccountID: by.ID, IP: by.IP,
			Detail: fmt.Sprintf("disclosure %s, %d member(s) told", id, told)})
	})
	if err != nil {
		return Disclosure{}, err
	}
	return s.Get(ctx, id)
}

// Postpone keeps the "not yet" flag with a new reason and review date.
func (s *Service) Postpone(ctx context.Context, by Actor, id, reason string, reviewAt time.Time) (Disclosure, error) {
	reason, err := text.Required("withhold_reason", reason, maxLong, "say why the members must still not be told")
	if err != nil {
		return Disclosure{}, err
	}
	switch {
	case reviewAt.IsZero():
		return Disclosure{}, apperr.Field("review_at", "required", "is required: the day to review it again")
	case !reviewAt.After(s.now()):
		return Disclosure{}, apperr.Field("review_at", "past", "must be in the future")
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		key, err := s.vault.KeyIn(ctx, tx, id, false)
		if errors.Is(err, vault.ErrNoKey) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE disclosures SET withheld_reason = $1, review_at = $2
			WHERE id = $3 AND withheld_reason IS NOT NULL AND lifted_at IS NULL`, key.SealText(labelReason, reason), store.Millis(reviewAt), id)
		if err != nil {
			return fmt.Errorf("disclosures: postpone: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return apperr.New(apperr.Conflict, "not_withheld", "the members of this disclosure were told already")
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "disclosure_flag_postponed", AccountID: by.ID, IP: by.IP,
			Detail: "disclosure " + id + " reviewed again " + reviewAt.UTC().Format(time.DateOnly)})
	})
	if err != nil {
		return Disclosure{}, err
	}
	return s.Get(ctx, id)
}

var errNotFound = apperr.New(apperr.NotFound, "disclosure_not_found", "no such disclosure")

const selectDisclosures = `SELECT d.id, d.authority, d.legal_basis, d.categories, d.disclosed_at, d.document_type, d.document_size,
	d.withheld_reason, d.review_at, d.lifted_at, d.lifted_by, d.recorded_by, d.recorded_at, d.members, k.wrapped, k.epoch
	FROM disclosures d LEFT JOIN vault_keys k ON k.subject_id = d.id `

const (
	disclosureByID  = selectDisclosures + `WHERE d.id = $1`
	disclosuresAll  = selectDisclosures + `ORDER BY d.recorded_at DESC, d.id`
	subjectsOfOne   = `SELECT s.subject_id, s.detail, s.told_at, k.wrapped, k.epoch FROM disclosure_subjects s LEFT JOIN vault_keys k ON k.subject_id = s.subject_id WHERE s.disclosure_id = $1 ORDER BY s.subject_id`
	toldToSubject   = `SELECT d.id, d.authority, d.legal_basis, d.categories, d.disclosed_at, s.detail, s.told_at FROM disclosure_subjects s JOIN disclosures d ON d.id = s.disclosure_id WHERE s.subject_id = $1 AND s.told_at IS NOT NULL ORDER BY d.disclosed_at DESC, d.id`
	documentOfOne   = `SELECT document_object, document_type, document_size FROM disclosures WHERE id = $1`
	withheldPending = `SELECT count(*) FROM disclosures WHERE withheld_reason IS NOT NULL AND lifted_at IS NULL AND review_at <= $1`
)

func (s *Service) query(ctx context.Context, q store.Querier, stmt string, args ...any) ([]Disclosure, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("disclosures: list: %w", err)
	}
	defer rows.Close()
	var out []Disclosure
	for rows.Next() {
		var d Disclosure
		var cats string
		var reason, liftedBy, recordedBy sql.NullString
		var review, lifted, epoch sql.NullInt64
		var disclosed, recorded int64
		var wrapped []byte
		if err := rows.Scan(&d.ID, &d.Authority, &d.LegalBasis, &cats, &disclosed, &d.Document.ContentType, &d.Document.Size,
			&reason, &review, &lifted, &liftedBy, &recordedBy, &recorded, &d.Members, &wrapped, &epoch); err != nil {
			return nil, fmt.Errorf("disclosures: list: %w", err)
		}
		d.Categories = Categories(cats)
		d.DisclosedAt, d.RecordedAt = store.FromMillis(disclosed), store.FromMillis(recorded)
		d.ReviewAt, d.LiftedAt = store.NullMillis(review), store.NullMillis(lifted)
		d.LiftedBy, d.RecordedBy = liftedBy.String, recordedBy.String
		if reason.Valid {
			if wrapped == nil {
				return nil, fmt.Errorf("disclosures: the key of disclosure %s is missing", d.ID)
			}
			key, err := s.vault.Unwrap(d.ID, wrapped, epoch.Int64)
			if err != nil {
				return nil, err
			}
			if d.WithholdReason, err = key.OpenText(labelReason, reason.String); err != nil {
				return nil, fmt.Errorf("disclosures: open the reason of %s: %w", d.ID, err)
			}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("disclosures: list: %w", err)
	}
	rows.Close()
	for i := range out {
		if err := s.linked(ctx, q, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// linked reads the members a disclosure concerns, and what was disclosed from the
// first whose key opens it.
func (s *Service) linked(ctx context.Context, q store.Querier, d *Disclosure) error {
	rows, err := q.QueryContext(ctx, subjectsOfOne, d.ID)
	if err != nil {
		return fmt.Errorf("disclosures: members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l Linked
		var detail string
		var told, epoch sql.NullInt64
		var wrapped []byte
		if err := rows.Scan(&l.SubjectID, &detail, &told, &wrapped, &epoch); err != nil {
			return fmt.Errorf("disclosures: members: %w", err)
		}
		l.ToldAt = store.NullMillis(told)
		if d.What == "" && wrapped != nil {
			key, err := s.vault.Unwrap(l.SubjectID, wrapped, epoch.Int64)
			if err != nil {
				return err
			}
			if d.What, err = key.OpenText(labelDetail, detail); err != nil {
				return fmt.Errorf("disclosures: open what was disclosed: %w", err)
			}
		}
		d.Subjects = append(d.Subjects, l)
	}
	return rows.Err()
}

// Get returns one disclosure.
func (s *Service) Get(ctx context.Context, id string) (Disclosure, error) {
	list, err := s.query(ctx, s.db, disclosureByID, id)
	if err != nil {
		return Disclosure{}, err
	}
	if len(list) == 0 {
		return Disclosure{}, errNotFound
	}
	return list[0], nil
}

// List returns the register, the newest first.
func (s *Service) List(ctx context.Context) ([]Disclosure, error) {
	return s.query(ctx, s.db, disclosuresAll)
}

// DueForReview counts the disclosures whose "not yet" flag is due for review.
func (s *Service) DueForReview(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, withheldPending, store.Millis(s.now())).Scan(&n); err != nil {
		return 0, fmt.Errorf("disclosures: due: %w", err)
	}
	return n, nil
}

// ForMember returns the disclosures of the member's data they have been told of, the
// newest first. One whose flag is not lifted is not shown.
func (s *Service) ForMember(ctx context.Context, subjectID string) ([]Told, error) {
	key, err := s.vault.DataKey(ctx, subjectID, false)
	if errors.Is(err, vault.ErrNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, toldToSubject, subjectID)
	if err != nil {
		return nil, fmt.Errorf("disclosures: of member: %w", err)
	}
	defer rows.Close()
	var out []Told
	for rows.Next() {
		var t Told
		var cats, detail string
		var disclosed, told int64
		if err := rows.Scan(&t.ID, &t.Authority, &t.LegalBasis, &cats, &disclosed, &detail, &told); err != nil {
			return nil, fmt.Errorf("disclosures: of member: %w", err)
		}
		t.Categories, t.DisclosedAt, t.ToldAt = Categories(cats), store.FromMillis(disclosed), store.FromMillis(told)
		if t.What, err = key.OpenText(labelDetail, detail); err != nil {
			return nil, fmt.Errorf("disclosures: of member: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Document opens a disclosure's document: its type and size and the decrypted
// content, which the caller closes. Every opening is an entry of the audit log.
func (s *Service) Document(ctx context.Context, by Actor, id string) (DocumentInfo, io.ReadCloser, error) {
	var info DocumentInfo
	var object string
	var key *vault.Key
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRowContext(ctx, documentOfOne, id).Scan(&object, &info.ContentType, &info.Size); errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		} else if err != nil {
			return fmt.Errorf("disclosures: document: %w", err)
		}
		var err error
		if key, err = s.vault.KeyIn(ctx, tx, id, false); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "disclosure_document_viewed", AccountID: by.ID, IP: by.IP, Detail: "disclosure " + id})
	})
	if err != nil {
		return DocumentInfo{}, nil, err
	}
	rc, err := s.cfg.Blobs.Open(ctx, object, 0, -1)
	if err != nil {
		return DocumentInfo{}, nil, fmt.Errorf("disclosures: document: %w", err)
	}
	plain, err := key.Decrypt(rc)
	if err != nil {
		rc.Close()
		return DocumentInfo{}, nil, fmt.Errorf("disclosures: document: %w", err)
	}
	return info, readCloser{plain, rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// DocumentLimit says the size limit as people read it.
func DocumentLimit(max int64) string { return document.Limit(max) }

// checkDocument reads the document (at most max bytes) and finds its type from its
// content, as the request desk checks identity documents (document.Check).
func checkDocument(d Document, max int64) ([]byte, string, error) {
	if d.Body == nil {
		return nil, "", apperr.Field("document", "required", "is required: attach the document the authority sent (a PDF, JPEG or PNG file)")
	}
	return document.Check(d, max, apperr.Field("document", "required", "is empty: attach the document the authority sent"))
}

// putDocument seals data under key into a new object, streaming, and returns the
// object's name.
func (s *Service) putDocument(ctx context.Context, key *vault.Key, data []byte) (string, error) {
	name := documentObjects + newID()
	if err := document.Put(ctx, s.cfg.Blobs, key, name, data); err != nil {
		return "", fmt.Errorf("disclosures: document: %w", err)
	}
	return name, nil
}

// erasing reports whether the subject's erasure has been asked for, under the lock
// its start takes (rights.SubjectLock), so that a link made here is either seen by
// the erasure or refused.
func erasing(ctx context.Context, tx *store.Tx, subjectID string) (bool, error) {
	if err := tx.Lock(ctx, rights.SubjectLock(subjectID), false); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM erasure_requests WHERE subject_id = $1`, subjectID).Scan(&n); err != nil {
		return false, fmt.Errorf("disclosures: erasing: %w", err)
	}
	return n > 0, nil
}
