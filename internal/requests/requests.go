// Package requests is the rights desk: every request a person makes about their data
// (access, portability, rectification, erasure, restriction, objection, withdrawal of
// consent, a complaint or an inquiry), its state, every change of it with who made it
// and why, and the legal clock (Art. 12(3) GDPR). It owns the tables privacy_requests,
// privacy_request_events and privacy_request_warnings. What a request says (details,
// a requester's name and address, notes) is sealed under its subject's data key: the
// member's, or for a person without an account the request's own, shredded when the
// request closes. The flows that carry a right out (the export, erasure, the consent
// ledger) stay where they are; a request records that they ran, or waits for staff.
package requests

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// The rights a request names (the API's "right").
const (
	Access        = "access"
	Portability   = "portability"
	Rectification = "rectification"
	Erasure       = "erasure"
	Restriction   = "restriction"
	Objection     = "objection"
	Withdrawal    = "withdrawal"
	Complaint     = "complaint"
	Inquiry       = "inquiry"
)

// Rights are every right a request can name, in the order the privacy center shows them.
var Rights = []string{Access, Portability, Rectification, Erasure, Restriction, Objection, Withdrawal, Complaint, Inquiry}

// rightNames are the rights as people read them.
var rightNames = map[string]string{
	Access: "access to your data", Portability: "a copy of your data to take elsewhere", Rectification: "correction of your data",
	Erasure: "erasure of your data", Restriction: "restriction of processing", Objection: "objection to processing",
	Withdrawal: "withdrawal of consent", Complaint: "complaint", Inquiry: "inquiry",
}

// RightName is the right as people read it.
func RightName(right string) string {
	if n, ok := rightNames[right]; ok {
		return n
	}
	return right
}

// NeedsDetails reports whether a request for the right must say what it is about: a
// correction, a complaint or a question is the request.
func NeedsDetails(right string) bool {
	return right == Rectification || right == Complaint || right == Inquiry
}

// The states of a request. A request from a person without an account is unconfirmed
// until its address is confirmed; a member's is received at once. Done, refused and
// withdrawn are final.
const (
	Unconfirmed = "unconfirmed"
	Received    = "received"
	Verifying   = "verifying" // staff check the requester's identity
	InProgress  = "in_progress"
	Done        = "done"
	Refused     = "refused"
	Withdrawn   = "withdrawn"
)

// States are every state, in the order of the state machine.
var States = []string{Unconfirmed, Received, Verifying, InProgress, Done, Refused, Withdrawn}

// next is the state machine: the states each state may move to.
var next = map[string][]string{
	Unconfirmed: {Received, Withdrawn},
	Received:    {Verifying, InProgress, Done, Refused, Withdrawn},
	Verifying:   {InProgress, Refused, Withdrawn},
	InProgress:  {Done, Refused, Withdrawn},
}

// Next returns the states a request in state may move to (none once it is closed).
func Next(state string) []string { return slices.Clone(next[state]) }

// Closed reports whether a state is final.
func Closed(state string) bool { return state == Done || state == Refused || state == Withdrawn }

// Who made a change.
const (
	ByRequester = "requester"
	ByStaff     = "staff"
	BySystem    = "system"
)

// Requesters.
const (
	Member  = "member"  // a logged-in member: the subject is the account
	Visitor = "visitor" // a person without an account (or not logged in): the request is its own subject
)

// Event actions.
const (
	ActionCreated  = "created"
	ActionState    = "state"
	ActionExtended = "extended"
	// ActionIdentity is staff marking a visitor's identity verified.
	ActionIdentity = "identity_verified"
	// ActionDocument is staff opening a visitor's identity document.
	ActionDocument = "document_viewed"
	// ActionLinkSent is an access or portability request's data sent as a one-time
	// download link; ActionNoData is its answer that no data is held; ActionDownloaded
	// is the link used.
	ActionLinkSent   = "download_sent"
	ActionNoData     = "no_data"
	ActionDownloaded = "downloaded"
)

// Limits of what a request holds.
const (
	maxDetails = 10000
	maxNote    = 4000
	// MaxExtension is how many months a request may be extended by, in all.
	MaxExtension = 2
)

// Request is a request as its requester and staff see it.
type Request struct {
	ID             string
	SubjectID      string
	Requester      string
	Right          string
	State          string
	ReceivedAt     time.Time
	DueDate        Date
	ExtendedMonths int
	Details        string
	RequesterName  string
	NotifyEmail    string
	// HeldEmail is the address a visitor says the data is held under (staff verify it).
	HeldEmail string
	// LinkedID is what carried the right out, if anything: an erasure request's id, or
	// for a visitor's request the right's name ("carrying" while it is carried out).
	LinkedID string
	// Document describes a visitor's identity document, if one is held (staff open it
	// with Service.Document).
	Document  *DocumentInfo
	UpdatedAt time.Time
	ClosedAt  time.Time
}

// Open reports whether the request still needs an answer.
func (r Request) Open() bool { return !Closed(r.State) }

// Overdue reports whether an open request is past its due date on day today.
func (r Request) Overdue(today Date) bool { return r.Open() && today > r.DueDate }

// Event is one change of a request.
type Event struct {
	At      time.Time
	Action  string
	From    string
	To      string
	Actor   string
	ActorID string // the staff member's account id; "" otherwise or once they were erased
	Note    string
}

// Actor is who makes a change: the requester, a staff member (ID: their account) or
// the system. IP is recorded in a staff member's audit log.
type Actor struct {
	Kind string
	ID   string
	IP   string
}

// Mailer queues transactional mail in the caller's transaction.
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, t mail.Transactional) error
}

// Auditor records staff actions in the audit log.
type Auditor interface {
	Record(ctx context.Context, q store.Querier, e governance.Event) error
}

// Directory is what the desk needs to know of accounts and staff.
type Directory interface {
	// Address is the proven address of an account, to write to about its requests.
	Address(ctx context.Context, accountID string) (string, error)
	// Staff returns the accounts holding the role.
	Staff(ctx context.Context, role string) ([]string, error)
	// Member is the account that proved the address, by its blind index ("" when
	// none did): whose data a visitor's access request is about.
	Member(ctx context.Context, email string) (string, error)
}

// Config is what the desk says in its mail.
type Config struct {
	BaseURL string
	// Authority is the supervisory authority's contact, named in a refusal.
	Authority string
	// Blobs keeps visitors' identity documents, sealed; MaxDocument is the largest
	// (DefaultMaxDocument if 0).
	Blobs       blob.Store
	MaxDocument int64
	// DownloadTTL is how long the one-time link delivering an access request's data
	// works (DefaultDownloadTTL if 0).
	DownloadTTL time.Duration
}

// Service is the rights desk.
type Service struct {
	db    *store.DB
	vault *vault.Vault
	mail  Mailer
	audit Auditor
	dir   Directory
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
}

// New returns the rights desk.
func New(db *store.DB, v *vault.Vault, m Mailer, audit Auditor, dir Directory, cfg Config, now func() time.Time, log *slog.Logger) *Service {
	if cfg.MaxDocument <= 0 {
		cfg.MaxDocument = DefaultMaxDocument
	}
	if cfg.DownloadTTL <= 0 {
		cfg.DownloadTTL = DefaultDownloadTTL
	}
	return &Service{db: db, vault: v, mail: m, audit: audit, dir: dir, cfg: cfg, now: now, log: log}
}

// Labels of the sealed columns.
const (
	labelDetails = "privacy_requests.details"
	labelName    = "privacy_requests.requester_name"
	labelNotify  = "privacy_requests.notify_email"
	labelHeld    = "privacy_requests.held_email"
	labelNote    = "privacy_request_events.note"
)

var (
	errNotFound = apperr.New(apperr.NotFound, "request_not_found", "no such request")
	errClosed   = apperr.New(apperr.Conflict, "request_closed", "the request is closed")
)

// NewID is a new request's id, for a flow that names the request in what it does
// before submitting it (Submission.ID).
func NewID() string { return newID() }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Submission is a member's request.
type Submission struct {
	SubjectID string // the member's account
	Right     string
	Details   string
	// Fulfilled is set when the right was carried out at once by its flow (the export,
	// a decision in the consent ledger): the request is recorded as done, with Note
	// saying what was done. Otherwise it waits for staff.
	Fulfilled bool
	Note      string
	LinkedID  string
	// ID is the request's id when the flow chose it before (NewID); "" makes one.
	ID string
}

// checkText refuses a text that is too long or not UTF-8.
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return apperr.Field(field, "invalid", "must be text")
	}
	if utf8.RuneCountInString(s) > max {
		return apperr.Field(field, "too_long", fmt.Sprintf("must be at most %d characters", max))
	}
	return nil
}

// CheckRight refuses a right that is not one of Rights.
func CheckRight(right string) error {
	if right == "" {
		return apperr.Field("right", "required", "is required")
	}
	if !slices.Contains(Rights, right) {
		return apperr.Field("right", "right_unknown", "must be one of "+strings.Join(Rights, ", "))
	}
	return nil
}

// Submit records a member's request. A request that waits for staff is acknowledged
// by mail with its due date. The same request sent twice while the first is open (a
// double click, a retried call) is not recorded again: Submit returns the first, and
// created false.
func (s *Service) Submit(ctx context.Context, sub Submission) (req Request, created bool, err error) {
	if err := CheckRight(sub.Right); err != nil {
		return Request{}, false, err
	}
	sub.Details = strings.TrimSpace(sub.Details)
	if NeedsDetails(sub.Right) && sub.Details == "" && !sub.Fulfilled {
		return Request{}, false, apperr.Field("details", "required", "is required: say what the request is about")
	}
	if err := checkText("details", sub.Details, maxDetails); err != nil {
		return Request{}, false, err
	}
	if !sub.Fulfilled {
		if dup, ok, err := s.duplicate(ctx, s.db, sub); err != nil || ok {
			return dup, false, err
		}
	}
	addr := ""
	if !sub.Fulfilled {
		if addr, err = s.dir.Address(ctx, sub.SubjectID); err != nil {
			return Request{}, false, err
		}
	}
	now := s.now()
	if sub.ID == "" {
		sub.ID = newID()
	}
	req = Request{ID: sub.ID, SubjectID: sub.SubjectID, Requester: Member, Right: sub.Right, State: Received,
		ReceivedAt: now, DueDate: DueDate(now, 0), Details: sub.Details, LinkedID: sub.LinkedID, UpdatedAt: now}
	var dup Request
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		dup = Request{}
		if !sub.Fulfilled {
			// Two of the same request at once (a double click on two nodes) look
			// again under the member's lock: the second finds the first.
			if err := tx.Lock(ctx, "privacy_requests:"+sub.SubjectID, false); err != nil {
				return err
			}
			d, ok, err := s.duplicate(ctx, tx, sub)
			if err != nil || ok {
				dup = d
				return err
			}
		}
		key, err := s.vault.KeyIn(ctx, tx, sub.SubjectID, true)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO privacy_requests (id, subject_id, requester, kind, state, received_at, due_date,
			extended_months, details, requester_name, notify_email, linked_id, updated_at, closed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL, NULL, $9, $10, NULL)`,
			req.ID, req.SubjectID, req.Requester, req.Right, req.State, store.Millis(now), string(req.DueDate),
			key.SealOptional(labelDetails, req.Details), nullString(req.LinkedID), store.Millis(now)); err != nil {
			return fmt.Errorf("requests: submit: %w", err)
		}
		if err := s.event(ctx, tx, key, req, ActionCreated, "", Received, Actor{Kind: ByRequester}, ""); err != nil {
			return err
		}
		if sub.Fulfilled {
			if err := s.setState(ctx, tx, key, &req, Done, Actor{Kind: BySystem}, sub.Note); err != nil {
				return err
			}
			return nil
		}
		return s.mailRequester(ctx, tx, req, addr, mail.RequestReceived, nil)
	})
	if err != nil {
		return Request{}, false, err
	}
	if dup.ID != "" {
		return dup, false, nil
	}
	return req, true, nil
}

// duplicate finds an open request of the member's for the same right saying the same.
func (s *Service) duplicate(ctx context.Context, q store.Querier, sub Submission) (Request, bool, error) {
	list, err := s.list(ctx, q, sub.SubjectID)
	if err != nil {
		return Request{}, false, err
	}
	for _, r := range list {
		if r.Open() && r.Right == sub.Right && r.Details == sub.Details {
			return r, true, nil
		}
	}
	return Request{}, false, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// event records one change of a request in tx, its note sealed under key.
func (s *Service) event(ctx context.Context, tx *store.Tx, key *vault.Key, req Request, action, from, to string, by Actor, note string) error {
	var actorID any
	if by.Kind == ByStaff {
		actorID = by.ID
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO privacy_request_events (request_id, subject_id, at, action, from_state, to_state, actor, actor_id, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		req.ID, req.SubjectID, store.Millis(s.now()), action, from, to, by.Kind, actorID, key.SealOptional(labelNote, note)); err != nil {
		return fmt.Errorf("requests: event: %w", err)
	}
	if by.Kind != ByStaff {
		return nil
	}
	// The audit log names the request and the change, never what the request says.
	detail := fmt.Sprintf("request %s: %s %s -> %s", req.ID, action, from, to)
	return s.audit.Record(ctx, tx, governance.Event{Name: "privacy_request_" + action, AccountID: by.ID, IP: by.IP, Detail: detail})
}

// setState moves req to state in tx and records the event.
func (s *Service) setState(ctx context.Context, tx *store.Tx, key *vault.Key, req *Request, state string, by Actor, note string) error {
	if !slices.Contains(next[req.State], state) {
		return apperr.Field("state", "transition_invalid", fmt.Sprintf("a request that is %s cannot become %s", req.State, state))
	}
	now := s.now()
	var closed any
	if Closed(state) {
		closed = store.Millis(now)
		req.ClosedAt = now
	}
	res, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET state = $1, updated_at = $2, closed_at = $3 WHERE id = $4 AND state = $5`,
		state, store.Millis(now), closed, req.ID, req.State)
	if err != nil {
		return fmt.Errorf("requests: state: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		// Another change came first: the caller reads the request again.
		return apperr.New(apperr.Conflict, "request_changed", "the request was changed meanwhile; reload it and try again")
	}
	from := req.State
	req.State, req.UpdatedAt = state, now
	return s.event(ctx, tx, key, *req, ActionState, from, state, by, note)
}

// mailRequester queues a mail about req to the requester at addr, sealed under the
// request's subject (nothing when there is no address to write to).
func (s *Service) mailRequester(ctx context.Context, tx *store.Tx, req Request, addr string, t mail.TransactionalTemplate, extra map[string]string) error {
	if addr == "" {
		return nil
	}
	data := map[string]string{"Right": RightName(req.Right), "Received": DateOf(req.ReceivedAt).Long(),
		"Due": req.DueDate.Long()}
	if req.Requester == Member {
		data["Link"] = s.cfg.BaseURL + "/account/requests"
	}
	for k, v := range extra {
		data[k] = v
	}
	return s.mail.Enqueue(ctx, tx, mail.Transactional{SubjectID: req.SubjectID, To: addr, Template: t, Data: data})
}

// columns are the request's columns as read.
const columns = `id, subject_id, requester, kind, state, received_at, due_date, extended_months, details, requester_name,
	notify_email, held_email, linked_id, updated_at, closed_at, document_type, document_size`

// row is a request as stored, sealed.
type row struct {
	Request
	details, name, notify, held sql.NullString
}

func scanRow(sc interface{ Scan(...any) error }) (row, error) {
	var r row
	var received, updated int64
	var linked sql.NullString
	var closed sql.NullInt64
	var due string
	var docType sql.NullString
	var docSize sql.NullInt64
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.Requester, &r.Right, &r.State, &received, &due, &r.ExtendedMonths,
		&r.details, &r.name, &r.notify, &r.held, &linked, &updated, &closed, &docType, &docSize); err != nil {
		return row{}, err
	}
	if docType.Valid {
		r.Document = &DocumentInfo{ContentType: docType.String, Size: docSize.Int64}
	}
	r.ReceivedAt, r.UpdatedAt, r.ClosedAt = store.FromMillis(received), store.FromMillis(updated), store.NullMillis(closed)
	r.DueDate, r.LinkedID = Date(due), linked.String
	return r, nil
}

// open opens the sealed columns with key.
func (r row) open(key *vault.Key) (Request, error) {
	req := r.Request
	var e1, e2, e3, e4 error
	req.Details, e1 = key.OpenText(labelDetails, r.details.String)
	req.RequesterName, e2 = key.OpenText(labelName, r.name.String)
	req.NotifyEmail, e3 = key.OpenText(labelNotify, r.notify.String)
	req.HeldEmail, e4 = key.OpenText(labelHeld, r.held.String)
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return Request{}, fmt.Errorf("requests: %s: %w", r.ID, err)
	}
	return req, nil
}

// keyOf reads a subject's data key; a subject without one (erased, or a closed
// visitor's request) gives nil, and sealed values read as withheld.
func (s *Service) keyOf(ctx context.Context, q store.Querier, subjectID string) (*vault.Key, error) {
	key, err := s.vault.KeyIn(ctx, q, subjectID, false)
	if errors.Is(err, vault.ErrNoKey) {
		return nil, nil
	}
	return key, err
}

// opened is r with its sealed columns opened, or left empty when key is nil.
func opened(r row, key *vault.Key) (Request, error) {
	if key == nil {
		return r.Request, nil
	}
	return r.open(key)
}

// List returns a member's requests, newest first.
func (s *Service) List(ctx context.Context, subjectID string) ([]Request, error) {
	return s.list(ctx, s.db, subjectID)
}

func (s *Service) list(ctx context.Context, q store.Querier, subjectID string) ([]Request, error) {
	key, err := s.keyOf(ctx, q, subjectID)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT `+columns+` FROM privacy_requests WHERE subject_id = $1 ORDER BY received_at DESC, id`, subjectID)
	if err != nil {
		return nil, fmt.Errorf("requests: list: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("requests: list: %w", err)
		}
		req, err := opened(r, key)
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, rows.Err()
}

// Get returns a request, opened, and its events, oldest first.
func (s *Service) Get(ctx context.Context, id string) (Request, []Event, error) {
	r, err := scanRow(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM privacy_requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, nil, errNotFound
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("requests: get: %w", err)
	}
	key, err := s.keyOf(ctx, s.db, r.SubjectID)
	if err != nil {
		return Request{}, nil, err
	}
	req, err := opened(r, key)
	if err != nil {
		return Request{}, nil, err
	}
	evs, err := s.events(ctx, req.ID, key)
	return req, evs, err
}

// GetOwn is Get for the member whose request it is; another member's request is not
// found, as one that does not exist.
func (s *Service) GetOwn(ctx context.Context, subjectID, id string) (Request, []Event, error) {
	req, evs, err := s.Get(ctx, id)
	if err == nil && req.SubjectID != subjectID {
		return Request{}, nil, errNotFound
	}
	return req, evs, err
}

func (s *Service) events(ctx context.Context, requestID string, key *vault.Key) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, action, from_state, to_state, actor, actor_id, note FROM privacy_request_events
		WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("requests: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		var actorID, note sql.NullString
		if err := rows.Scan(&at, &e.Action, &e.From, &e.To, &e.Actor, &actorID, &note); err != nil {
			return nil, fmt.Errorf("requests: events: %w", err)
		}
		e.At, e.ActorID = store.FromMillis(at), actorID.String
		if key != nil {
			if e.Note, err = key.OpenText(labelNote, note.String); err != nil {
				return nil, fmt.Errorf("requests: events: %w", err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// load reads a request for a change in tx, with its subject's key.
func (s *Service) load(ctx context.Context, tx *store.Tx, id string) (Request, *vault.Key, error) {
	r, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM privacy_requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, nil, errNotFound
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("requests: %w", err)
	}
	key, err := s.vault.KeyIn(ctx, tx, r.SubjectID, false)
	if errors.Is(err, vault.ErrNoKey) {
		// Its subject was erased, or a closed visitor's request was shredded: there
		// is nothing left to change.
		return Request{}, nil, errClosed
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("requests: %s: %w", id, err)
	}
	req, err := r.open(key)
	return req, key, err
}

// Withdraw is the member withdrawing an open request of theirs.
func (s *Service) Withdraw(ctx context.Context, subjectID, id string) (Request, error) {
	var req Request
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var key *vault.Key
		var err error
		if req, key, err = s.load(ctx, tx, id); err != nil {
			return err
		}
		if req.SubjectID != subjectID {
			return errNotFound
		}
		if !req.Open() {
			return errClosed
		}
		return s.setState(ctx, tx, key, &req, Withdrawn, Actor{Kind: ByRequester}, "")
	})
	return req, err
}
