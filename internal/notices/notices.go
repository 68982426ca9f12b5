// Package notices tells processors what a member asked (GDPR art. 19): when a member is
// erased, rectifies a field, or has their data's processing restricted or the
// restriction lifted, every processor in the register that received their data (for a
// rectification: that holds the field) is sent a notice,
// a signed webhook to the endpoint the register gives it (the register is the
// allow-list: no other destination is ever called), retried with backoff through the
// job queue until the processor acknowledges it. A processor without an endpoint, or
// one that never answers, becomes a task for staff, who tell it by hand and mark the
// task done.
//
// A notice must name the member in the processor's terms (the address the mail
// provider knows) after the member's own key is gone: its payload is sealed under a
// key of the notice's own, which is shredded once the processor acknowledged it or
// staff closed the task. The row keeps no id of the member: a keyed hash links it to
// the member's export while the member exists, and to nothing after.
package notices

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/jobs"
	"steward/internal/processors"
	"steward/internal/store"
	"steward/internal/vault"
)

// States of a notice.
const (
	Pending      = "pending"      // being delivered to the processor's endpoint
	Acknowledged = "acknowledged" // the endpoint answered 2xx
	Task         = "task"         // staff tell the processor by hand
	Done         = "done"         // staff told the processor
)

// Events a processor is told of.
const (
	Erasure           = "erasure"
	Rectification     = "rectification"
	Restriction       = "restriction"        // processing restricted (GDPR art. 18)
	RestrictionLifted = "restriction_lifted" // the restriction ended
)

// requestWait is how long an acknowledgment waits for the privacy request of its
// change to be recorded.
const requestWait = 10 * time.Minute

// maxAttempts is how many deliveries are tried before the notice becomes a task.
const maxAttempts = 8

// Args is the job that delivers one notice.
type Args struct {
	ID string `json:"id"`
}

// Kind names the job.
func (Args) Kind() string { return "processor_notice" }

// Enqueuer schedules jobs in the caller's transaction.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args jobs.Args) error
}

// Hooks are what the notices call in others.
type Hooks struct {
	// Acknowledged runs when a processor acknowledged a notice of a change that came
	// through a privacy request (the request records it), in the acknowledgment's
	// transaction.
	Acknowledged func(ctx context.Context, tx *store.Tx, requestID, processor, event string) error
}

// Auditor records staff's reading of a task in the audit log.
type Auditor interface {
	Record(ctx context.Context, q store.Querier, e governance.Event) error
}

// Register is the register of processors: who received a subject's data, and whether
// data may go to a processor now (its region's safeguard).
type Register interface {
	Recipients(ctx context.Context, q store.Querier, subjectID string) ([]processors.Processor, error)
	Lookup(ctx context.Context, q store.Querier, key string) (processors.Processor, bool, error)
	Names(ctx context.Context, q store.Querier) (map[string]string, error)
	MaySend(p processors.Processor) error
}

// Service keeps and delivers the notices.
type Service struct {
	db     *store.DB
	audit  Auditor
	hooks  Hooks
	vault  *vault.Vault
	index  *vault.Index
	reg    Register
	jobs   Enqueuer
	secret []byte // the key each processor's signing secret is derived from
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
}

// New returns the notices service. key derives each processor's signing secret.
func New(db *store.DB, v *vault.Vault, index *vault.Index, reg Register, q Enqueuer, audit Auditor, key []byte,
	hooks Hooks, now func() time.Time, log *slog.Logger) *Service {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("steward processor notices v1"))
	return &Service{db: db, audit: audit, hooks: hooks, vault: v, index: index, reg: reg, jobs: q, secret: m.Sum(nil),
		client: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the register names the endpoint: a redirect elsewhere is not followed
		}}, now: now, log: log}
}

// Secret is the signing secret of a processor's notices, for the operator to give it.
func (s *Service) Secret(processor string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(processor))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns the Steward-Signature header of body sent at t: the time and the
// HMAC-SHA-256 of "time.body" under the processor's secret, in hex.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Notice is a notice as staff and the member's export see it (never its payload).
type Notice struct {
	ID             string    `json:"id"`
	Processor      string    `json:"processor"`
	ProcessorName  string    `json:"processor_name"`
	Event          string    `json:"event"`
	RequestID      string    `json:"request_id,omitempty"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
}

// payload is what a processor receives: the event, the addresses it knows the member
// by (nothing else of the member's), and for a rectification the new value of each
// changed field the processor holds ("" for a field cleared).
type payload struct {
	ID      string            `json:"id"`
	Event   string            `json:"event"`
	Emails  []string          `json:"emails"`
	Changes map[string]string `json:"changes,omitempty"`
	At      time.Time         `json:"at"`
}

// subjectHash links a notice to its member without keeping the member's id.
func (s *Service) subjectHash(subjectID string) string {
	return s.index.Of("notice-subject", subjectID)
}

// recipients returns the processors that received the subject's data (the register's
// Recipients).
func (s *Service) recipients(ctx context.Context, q store.Querier, subjectID string) ([]processors.Processor, error) {
	return s.reg.Recipients(ctx, q, subjectID)
}

// Erased records, in the erasure's transaction and before the member's key is
// shredded, a notice of the erasure for every processor that received the member's
// data, and schedules its delivery. An erasure that runs again adds none twice.
func (s *Service) Erased(ctx context.Context, tx *store.Tx, subj datamap.Subject) error {
	procs, err := s.recipients(ctx, tx, subj.ID)
	if err != nil || len(procs) == 0 {
		return err
	}
	// The notices never hold the erasure up: addresses that cannot be read (a key of
	// an epoch this node no longer holds) leave staff a task without them.
	emails, err := s.addresses(ctx, tx, subj.ID, subj.Proven)
	unread := err != nil
	if unread {
		s.log.Warn("notices: the erased member's addresses could not be read; staff get tasks without them", "err", err)
		emails = nil
	}
	if len(emails) == 0 && !unread {
		return nil // no address the member proved: nothing of theirs to tell of
	}
	// A replay after a restore lost the notices made after the backup, delivered or
	// not: staff check with the processor instead of telling it twice.
	return s.record(ctx, tx, subj.ID, Change{Event: Erasure}, "", procs, emails, subj.Again)
}

// Change is a rectification or a restriction to tell the processors of.
type Change struct {
	Event string // Rectification, Restriction or RestrictionLifted
	// Fields are, for a rectification, the new value of each changed field ("" when
	// cleared), by the profile's field names (email, name, phone...).
	Fields map[string]string
	// RequestID is the privacy request the change answers, if any: each processor's
	// acknowledgment is recorded on it.
	RequestID string
}

// fieldCategories are the data categories (fideslang, as the register names them) of
// the fields a rectification can change: a processor holds a field when one of its
// categories is the field's or a parent of it.
var fieldCategories = map[string]string{
	"email":            "user.contact.email",
	"name":             "user.name",
	"phone":            "user.contact.phone_number",
	"home_address":     "user.contact.address",
	"business_address": "user.contact.address",
	"country":          "user.contact.address.country",
	"birthdate":        "user.demographic.date_of_birth",
}

// holds reports whether a processor holds a field, by the categories the register
// says it receives.
func holds(p processors.Processor, field string) bool {
	cat, ok := fieldCategories[field]
	if !ok {
		return false
	}
	for _, c := range p.Categories {
		if c == cat || strings.HasPrefix(cat, c+".") {
			return true
		}
	}
	return false
}

// Changed records, in the change's transaction, a notice of a rectification or of a
// restriction set or lifted for every processor that received the subject's data (for
// a rectification, each that holds a changed field, told only the fields it holds),
// and schedules its delivery. Each change is told, however many came before. A
// rectification of the address is recorded before the new one replaces it: the
// processor is told the address it knows the member by.
func (s *Service) Changed(ctx context.Context, tx *store.Tx, subjectID string, c Change) error {
	switch c.Event {
	case Rectification, Restriction, RestrictionLifted:
	default:
		return fmt.Errorf("notices: %q is not a change", c.Event)
	}
	if c.Event == Rectification && len(c.Fields) == 0 {
		return nil
	}
	procs, err := s.recipients(ctx, tx, subjectID)
	if err != nil || len(procs) == 0 {
		return err
	}
	if c.Event == Rectification {
		procs = slices.DeleteFunc(procs, func(p processors.Processor) bool {
			for f := range c.Fields {
				if holds(p, f) {
					return false
				}
			}
			return true
		})
		if len(procs) == 0 {
			return nil
		}
	}
	proven, err := store.Strings(ctx, tx, `SELECT a.address_hash FROM account_addresses a
		WHERE a.account_id = $1 AND NOT EXISTS (SELECT 1 FROM account_addresses b
			WHERE b.address_hash = a.address_hash AND b.account_id <> a.account_id AND b.proven_at > a.proven_at)`, subjectID)
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	subscribed, err := store.Strings(ctx, tx, `SELECT email_hash FROM subscribers WHERE subject_id = $1 AND confirmed_at IS NOT NULL`, subjectID)
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	// A change is not held up by a key this node cannot read: staff get tasks.
	emails, err := s.addresses(ctx, tx, subjectID, append(proven, subscribed...))
	unread := err != nil
	if unread {
		s.log.Warn("notices: a member's addresses could not be read; staff get tasks without them", "err", err, "event", c.Event)
		emails = nil
	}
	if len(emails) == 0 && !unread {
		return nil // no address the member proved: no processor knows them by one
	}
	return s.record(ctx, tx, subjectID, c, store.SortedID(s.now()), procs, emails, false)
}

// record adds one notice of c for each processor, its payload sealed under a key of
// its own, and schedules the deliveries; eventID tells one change from the next ("" for
// the erasure, told once: a processor already told is skipped). toStaff makes every
// notice a task.
func (s *Service) record(ctx context.Context, tx *store.Tx, subjectID string, c Change, eventID string, procs []processors.Processor,
	emails []string, toStaff bool) error {
	hash := s.subjectHash(subjectID)
	for _, p := range procs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM processor_notices WHERE subject_hash = $1 AND processor = $2 AND event = $3
			AND event_id = $4`, hash, p.Key, c.Event, eventID).Scan(&n); err != nil {
			return fmt.Errorf("notices: %w", err)
		}
		if n > 0 {
			continue
		}
		id := store.SortedID(s.now())
		key, err := s.vault.KeyIn(ctx, tx, noticeKey(id), true)
		if err != nil {
			return fmt.Errorf("notices: %w", err)
		}
		pl := payload{ID: id, Event: c.Event, Emails: emails, At: s.now().UTC()}
		for f, v := range c.Fields {
			if holds(p, f) {
				if pl.Changes == nil {
					pl.Changes = map[string]string{}
				}
				pl.Changes[f] = v
			}
		}
		body, err := json.Marshal(pl)
		if err != nil {
			return err
		}
		state := Pending
		if p.NotifyURL == "" || len(emails) == 0 || toStaff || s.reg.MaySend(p) != nil {
			state = Task // a processor outside the region without a safeguard is sent nothing: staff see to it
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO processor_notices (id, processor, event, event_id, request_id, subject_hash, payload,
			state, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)`, id, p.Key, c.Event, eventID, nullString(c.RequestID),
			hash, key.SealText(labelPayload, string(body)), state, store.Millis(s.now())); err != nil {
			return fmt.Errorf("notices: %w", err)
		}
		if state == Pending {
			if err := s.jobs.Enqueue(ctx, tx, Args{ID: id}); err != nil {
				return err
			}
		}
	}
	return nil
}

func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}

const labelPayload = "processor_notices.payload"

// addresses are the addresses the member proved (the verified account address, and a
// confirmed subscription's) that processors know them by, opened with the member's key,
// which the erasure has not shredded yet. An address typed but never proved may be
// anyone's: no processor is told of it.
func (s *Service) addresses(ctx context.Context, tx *store.Tx, subjectID string, proven []string) ([]string, error) {
	key, err := s.vault.KeyIn(ctx, tx, subjectID, false)
	if errors.Is(err, vault.ErrNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(label, sealed string) error {
		v, err := key.OpenText(label, sealed)
		if err != nil {
			return err
		}
		if v != "" && !slices.Contains(out, v) && slices.Contains(proven, s.index.Address(v)) {
			out = append(out, v)
		}
		return nil
	}
	account, err := store.Strings(ctx, tx, `SELECT email FROM accounts WHERE id = $1`, subjectID)
	if err != nil {
		return nil, err
	}
	subscribed, err := store.Strings(ctx, tx, `SELECT email FROM subscribers WHERE subject_id = $1`, subjectID)
	if err != nil {
		return nil, err
	}
	for _, v := range account {
		if err := add("accounts.email", v); err != nil {
			return nil, err
		}
	}
	for _, v := range subscribed {
		if err := add("subscribers.email", v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// noticeKey is the vault subject of a notice's own key.
func noticeKey(id string) string { return "notice:" + id }

// Deliver sends a pending notice to its processor's endpoint. A 2xx answer
// acknowledges it and shreds its payload's key; any other outcome is an error the
// job queue retries with backoff, until maxAttempts make it a task for staff.
func (s *Service) Deliver(ctx context.Context, id string) error {
	var processor, sealed, state string
	var attempts int
	err := s.db.QueryRowContext(ctx, `SELECT processor, payload, state, attempts FROM processor_notices WHERE id = $1`, id).
		Scan(&processor, &sealed, &state, &attempts)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && state != Pending) {
		return nil // delivered, closed, or never made
	}
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	p, ok, err := s.reg.Lookup(ctx, s.db, processor)
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	if !ok || p.NotifyURL == "" {
		return s.settle(ctx, id, Task, "the register no longer gives the processor an endpoint", 0)
	}
	// Nothing goes outside the region without a recorded safeguard (P-SEC-1), nor to
	// a processor no longer in force.
	if err := s.reg.MaySend(p); err != nil {
		return s.settle(ctx, id, Task, err.Error(), 0)
	}
	key, err := s.vault.DataKey(ctx, noticeKey(id), false)
	var body string
	if err == nil {
		body, err = key.OpenText(labelPayload, sealed)
	}
	if err != nil {
		// Unreadable (a key of an epoch this node no longer holds): staff see to it.
		return s.settle(ctx, id, Task, "the notice could not be read on this node", 0)
	}
	status, sendErr := s.post(ctx, p, []byte(body))
	if sendErr == nil {
		return s.settle(ctx, id, Acknowledged, "", status)
	}
	attempts++
	if attempts >= maxAttempts {
		s.log.Warn("notices: a processor did not acknowledge a notice; staff have a task", "processor", p.Key, "notice", id, "attempts", attempts)
		return s.settle(ctx, id, Task, sendErr.Error(), status)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE processor_notices SET attempts = $1, last_error = $2 WHERE id = $3`,
		attempts, sendErr.Error(), id); err != nil {
		return errors.Join(sendErr, err)
	}
	return sendErr
}

// post sends one notice and returns the endpoint's status.
func (s *Service) post(ctx context.Context, p processors.Processor, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Steward processor notices")
	req.Header.Set("Steward-Signature", Sign(s.Secret(p.Key), s.now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL may hold a secret of the processor's: only the cause is kept.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("notices: %s did not answer: %w", p.Key, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // best effort: the status is the answer
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("notices: %s answered %d", p.Key, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// settle ends a notice's delivery: acknowledged (its payload's key is shredded, and
// the privacy request it answers records the acknowledgment) or a task for staff (the
// payload stays readable for them until they close it).
func (s *Service) settle(ctx context.Context, id, state, lastError string, status int) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		at := any(nil)
		if state == Acknowledged {
			at = store.Millis(s.now())
			if err := s.vault.Shred(ctx, tx, noticeKey(id)); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE processor_notices SET state = $1, last_error = $2, response_status = $3,
			acknowledged_at = $4, payload = CASE WHEN $1 = 'acknowledged' THEN '' ELSE payload END WHERE id = $5 AND state = $6`,
			state, lastError, status, at, id, Pending)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 || state != Acknowledged || s.hooks.Acknowledged == nil {
			return err // settled meanwhile (a retry that raced), or nothing more to record
		}
		return s.recordAck(ctx, tx, id, false)
	})
}

// AckArgs is the job that records a processor's acknowledgment on the privacy request
// of the change, once the request is there.
type AckArgs struct {
	ID string `json:"id"`
}

// Kind names the job.
func (AckArgs) Kind() string { return "processor_notice_ack" }

// RecordAck records an acknowledged notice on its privacy request (the AckArgs job):
// an error while the request is not there yet, so that the queue retries.
func (s *Service) RecordAck(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error { return s.recordAck(ctx, tx, id, true) })
}

// recordAck records, in tx, the acknowledgment of a notice on the privacy request of
// its change, if any. The flow records its request just after the change: a quick
// acknowledgment finds none yet, and a job records it later (retry: this is that job,
// which fails until the request is there); one never recorded (the flow failed after
// the change) leaves nothing to record the answer on.
func (s *Service) recordAck(ctx context.Context, tx *store.Tx, id string, retry bool) error {
	var processor, event string
	var request sql.NullString
	var created int64
	if err := tx.QueryRowContext(ctx, `SELECT processor, event, request_id, created_at FROM processor_notices WHERE id = $1`, id).
		Scan(&processor, &event, &request, &created); err != nil {
		return err
	}
	if !request.Valid {
		return nil
	}
	name := processor
	if p, ok, err := s.reg.Lookup(ctx, tx, processor); err != nil {
		return err
	} else if ok {
		name = p.Name
	}
	err := s.hooks.Acknowledged(ctx, tx, request.String, name, event)
	switch {
	case apperr.KindOf(err) != apperr.NotFound:
		return err
	case s.now().Sub(store.FromMillis(created)) >= requestWait:
		s.log.Warn("notices: the privacy request of an acknowledged notice was never recorded", "notice", id)
		return nil
	case retry:
		return err
	default:
		return s.jobs.Enqueue(ctx, tx, AckArgs{ID: id})
	}
}

// Close marks a staff task done once staff told the processor, and shreds the
// payload's key.
func (s *Service) Close(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE processor_notices SET state = $1, acknowledged_at = $2, payload = ''
			WHERE id = $3 AND state = $4`, Done, store.Millis(s.now()), id, Task)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return apperr.New(apperr.NotFound, "task_not_found", "no such open task")
		}
		return s.vault.Shred(ctx, tx, noticeKey(id))
	})
}

// Get returns a notice, without its payload.
func (s *Service) Get(ctx context.Context, id string) (Notice, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices WHERE id = $1`, id)
	if err != nil {
		return Notice{}, fmt.Errorf("notices: %w", err)
	}
	list, err := s.scan(ctx, s.db, rows)
	if err != nil {
		return Notice{}, err
	}
	if len(list) == 0 {
		return Notice{}, apperr.New(apperr.NotFound, "notice_not_found", "no such notice")
	}
	return list[0], nil
}

// TaskDetail is what staff need to tell a processor by hand.
type TaskDetail struct {
	Notice
	Emails  []string          `json:"emails"`
	Changes map[string]string `json:"changes,omitempty"`
}

// Reader is the staff member who opens a task, for the audit log.
type Reader struct {
	AccountID string
	IP        string
}

// Task opens an open task's payload for staff; the opening is recorded in the audit
// log under the reader's account (the notice's id, never what it says).
func (s *Service) Task(ctx context.Context, id string, by Reader) (TaskDetail, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices WHERE id = $1 AND state = $2`, id, Task)
	if err != nil {
		return TaskDetail{}, fmt.Errorf("notices: %w", err)
	}
	list, err := s.scan(ctx, s.db, rows)
	if err != nil {
		return TaskDetail{}, err
	}
	if len(list) == 0 {
		return TaskDetail{}, apperr.New(apperr.NotFound, "task_not_found", "no such open task")
	}
	var sealed string
	if err := s.db.QueryRowContext(ctx, `SELECT payload FROM processor_notices WHERE id = $1`, id).Scan(&sealed); err != nil {
		return TaskDetail{}, fmt.Errorf("notices: %w", err)
	}
	key, err := s.vault.DataKey(ctx, noticeKey(id), false)
	if err != nil {
		return TaskDetail{}, err
	}
	body, err := key.OpenText(labelPayload, sealed)
	if err != nil {
		return TaskDetail{}, err
	}
	var p payload
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return TaskDetail{}, err
	}
	if err := s.audit.Record(ctx, s.db, governance.Event{Name: "processor_notice_opened", AccountID: by.AccountID, IP: by.IP,
		Detail: "notice " + id}); err != nil {
		return TaskDetail{}, err
	}
	return TaskDetail{Notice: list[0], Emails: p.Emails, Changes: p.Changes}, nil
}

// List returns the notices in a state ("" for all), newest first, at most limit.
func (s *Service) List(ctx context.Context, state string, limit int) ([]Notice, error) {
	var rows *sql.Rows
	var err error
	if state == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices ORDER BY id DESC LIMIT $1`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices WHERE state = $1 ORDER BY id DESC LIMIT $2`,
			state, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return s.scan(ctx, s.db, rows)
}

// Page returns a page of the notices in a state ("" for all), newest first, and how
// many there are in all.
func (s *Service) Page(ctx context.Context, state string, offset, limit int) ([]Notice, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM processor_notices WHERE $1 = '' OR state = $1`, state).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("notices: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices WHERE $1 = '' OR state = $1
		ORDER BY id DESC LIMIT $2 OFFSET $3`, state, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("notices: %w", err)
	}
	list, err := s.scan(ctx, s.db, rows)
	return list, total, err
}

// ofSubject returns the notices about a subject, for the subject's export.
func (s *Service) ofSubject(ctx context.Context, q store.Querier, subjectID string) ([]Notice, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+noticeColumns+` FROM processor_notices WHERE subject_hash = $1 ORDER BY id`,
		s.subjectHash(subjectID))
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return s.scan(ctx, q, rows)
}

// noticeColumns are a notice's columns as scan reads them.
const noticeColumns = `id, processor, event, COALESCE(request_id, ''), state, attempts, COALESCE(last_error, ''), created_at,
	COALESCE(acknowledged_at, 0)`

// scan reads the notices, then names their processors by the register (once the rows
// are closed: q may be a transaction).
func (s *Service) scan(ctx context.Context, q store.Querier, rows *sql.Rows) ([]Notice, error) {
	out, err := scanRows(rows)
	if err != nil || len(out) == 0 {
		return out, err
	}
	names, err := s.reg.Names(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	for i := range out {
		out[i].ProcessorName = names[out[i].Processor]
	}
	return out, nil
}

func scanRows(rows *sql.Rows) ([]Notice, error) {
	defer rows.Close()
	var out []Notice
	for rows.Next() {
		var n Notice
		var created, acked int64
		if err := rows.Scan(&n.ID, &n.Processor, &n.Event, &n.RequestID, &n.State, &n.Attempts, &n.LastError, &created, &acked); err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
		n.CreatedAt = store.FromMillis(created)
		if acked > 0 {
			n.AcknowledgedAt = store.FromMillis(acked)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
