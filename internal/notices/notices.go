// Package notices tells processors what a member asked (GDPR art. 19): when a member is
// erased, every processor in the register that received their data is sent a notice,
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
	"time"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/jobs"
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

// Service keeps and delivers the notices.
type Service struct {
	db     *store.DB
	vault  *vault.Vault
	index  *vault.Index
	reg    *consent.Register
	jobs   Enqueuer
	secret []byte // the key each processor's signing secret is derived from
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
}

// New returns the notices service. key derives each processor's signing secret.
func New(db *store.DB, v *vault.Vault, index *vault.Index, reg *consent.Register, q Enqueuer, key []byte,
	now func() time.Time, log *slog.Logger) *Service {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("steward processor notices v1"))
	return &Service{db: db, vault: v, index: index, reg: reg, jobs: q, secret: m.Sum(nil),
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
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
}

// payload is what a processor receives.
type payload struct {
	ID     string    `json:"id"`
	Event  string    `json:"event"`
	Emails []string  `json:"emails"`
	At     time.Time `json:"at"`
}

// subjectHash links a notice to its member without keeping the member's id.
func (s *Service) subjectHash(subjectID string) string {
	return s.index.Of("notice-subject", subjectID)
}

// recipients returns the processors that received the subject's data: those of every
// purpose the subject consented to at some time, and, for a member with an account,
// those of every purpose that needs no consent.
func (s *Service) recipients(ctx context.Context, q store.Querier, subjectID string) ([]consent.Processor, error) {
	granted, err := store.Strings(ctx, q, `SELECT DISTINCT purpose FROM consent_events WHERE subject_id = $1 AND decision = $2`,
		subjectID, consent.Granted)
	if err != nil {
		return nil, err
	}
	var member int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE id = $1`, subjectID).Scan(&member); err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, k := range granted {
		used[k] = true
	}
	seen := map[string]bool{}
	var out []consent.Processor
	for _, p := range s.reg.Purposes {
		if !used[p.Key] && (p.NeedsConsent() || member == 0) {
			continue
		}
		for _, k := range p.Processors {
			if pr, ok := s.reg.Processor(k); ok && !seen[k] {
				seen[k] = true
				out = append(out, pr)
			}
		}
	}
	return out, nil
}

// Erased records, in the erasure's transaction and before the member's key is
// shredded, a notice of the erasure for every processor that received the member's
// data, and schedules its delivery. An erasure that runs again adds none twice.
func (s *Service) Erased(ctx context.Context, tx *store.Tx, subj datamap.Subject) error {
	procs, err := s.recipients(ctx, tx, subj.ID)
	if err != nil {
		return fmt.Errorf("notices: %w", err)
	}
	if len(procs) == 0 {
		return nil
	}
	// The notices never hold the erasure up: addresses that cannot be read (a key of
	// an epoch this node no longer holds) leave staff a task without them.
	emails, err := s.addresses(ctx, tx, subj)
	unread := err != nil
	if unread {
		s.log.Warn("notices: the erased member's addresses could not be read; staff get tasks without them", "err", err)
		emails = nil
	}
	if len(emails) == 0 && !unread {
		return nil // no address the member proved: nothing of theirs to tell of
	}
	hash := s.subjectHash(subj.ID)
	for _, p := range procs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM processor_notices WHERE subject_hash = $1 AND processor = $2 AND event = 'erasure'`,
			hash, p.Key).Scan(&n); err != nil {
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
		body, err := json.Marshal(payload{ID: id, Event: "erasure", Emails: emails, At: s.now().UTC()})
		if err != nil {
			return err
		}
		// A replay after a restore lost the notices made after the backup, delivered or
		// not: staff check with the processor instead of telling it twice.
		state := Pending
		if p.NotifyURL == "" || len(emails) == 0 || subj.Again {
			state = Task
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO processor_notices (id, processor, event, subject_hash, payload, state, attempts, created_at)
			VALUES ($1, $2, 'erasure', $3, $4, $5, 0, $6)`, id, p.Key, hash, key.SealText(labelPayload, string(body)), state,
			store.Millis(s.now())); err != nil {
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

const labelPayload = "processor_notices.payload"

// addresses are the addresses the member proved (the verified account address, and a
// confirmed subscription's) that processors know them by, opened with the member's key,
// which the erasure has not shredded yet. An address typed but never proved may be
// anyone's: no processor is told of it.
func (s *Service) addresses(ctx context.Context, tx *store.Tx, subj datamap.Subject) ([]string, error) {
	key, err := s.vault.KeyIn(ctx, tx, subj.ID, false)
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
		if v != "" && !slices.Contains(out, v) && slices.Contains(subj.Proven, s.index.Address(v)) {
			out = append(out, v)
		}
		return nil
	}
	account, err := store.Strings(ctx, tx, `SELECT email FROM accounts WHERE id = $1`, subj.ID)
	if err != nil {
		return nil, err
	}
	subscribed, err := store.Strings(ctx, tx, `SELECT email FROM subscribers WHERE subject_id = $1`, subj.ID)
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
	p, ok := s.reg.Processor(processor)
	if !ok || p.NotifyURL == "" {
		return s.settle(ctx, id, Task, "the register no longer gives the processor an endpoint", 0)
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
func (s *Service) post(ctx context.Context, p consent.Processor, body []byte) (int, error) {
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

// settle ends a notice's delivery: acknowledged (its payload's key is shredded) or a
// task for staff (the payload stays readable for them until they close it).
func (s *Service) settle(ctx context.Context, id, state, lastError string, status int) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		at := any(nil)
		if state == Acknowledged {
			at = store.Millis(s.now())
			if err := s.vault.Shred(ctx, tx, noticeKey(id)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE processor_notices SET state = $1, last_error = $2, response_status = $3,
			acknowledged_at = $4, payload = CASE WHEN $1 = 'acknowledged' THEN '' ELSE payload END WHERE id = $5`,
			state, lastError, status, at, id)
		return err
	})
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

// TaskDetail is what staff need to tell a processor by hand.
type TaskDetail struct {
	Notice
	Emails []string `json:"emails"`
}

// Task opens an open task's payload for staff.
func (s *Service) Task(ctx context.Context, id string) (TaskDetail, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, processor, event, state, attempts, COALESCE(last_error, ''), created_at,
		COALESCE(acknowledged_at, 0) FROM processor_notices WHERE id = $1 AND state = $2`, id, Task)
	if err != nil {
		return TaskDetail{}, fmt.Errorf("notices: %w", err)
	}
	list, err := s.scan(rows)
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
	return TaskDetail{Notice: list[0], Emails: p.Emails}, nil
}

// List returns the notices in a state ("" for all), newest first, at most limit.
func (s *Service) List(ctx context.Context, state string, limit int) ([]Notice, error) {
	var rows *sql.Rows
	var err error
	if state == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT id, processor, event, state, attempts, COALESCE(last_error, ''), created_at,
			COALESCE(acknowledged_at, 0) FROM processor_notices ORDER BY id DESC LIMIT $1`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT id, processor, event, state, attempts, COALESCE(last_error, ''), created_at,
			COALESCE(acknowledged_at, 0) FROM processor_notices WHERE state = $1 ORDER BY id DESC LIMIT $2`, state, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return s.scan(rows)
}

// ofSubject returns the notices about a subject, for the subject's export.
func (s *Service) ofSubject(ctx context.Context, q store.Querier, subjectID string) ([]Notice, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, processor, event, state, attempts, COALESCE(last_error, ''), created_at,
		COALESCE(acknowledged_at, 0) FROM processor_notices WHERE subject_hash = $1 ORDER BY id`, s.subjectHash(subjectID))
	if err != nil {
		return nil, fmt.Errorf("notices: %w", err)
	}
	return s.scan(rows)
}

func (s *Service) scan(rows *sql.Rows) ([]Notice, error) {
	defer rows.Close()
	var out []Notice
	for rows.Next() {
		var n Notice
		var created, acked int64
		if err := rows.Scan(&n.ID, &n.Processor, &n.Event, &n.State, &n.Attempts, &n.LastError, &created, &acked); err != nil {
			return nil, fmt.Errorf("notices: %w", err)
		}
		n.CreatedAt = store.FromMillis(created)
		if acked > 0 {
			n.AcknowledgedAt = store.FromMillis(acked)
		}
		if p, ok := s.reg.Processor(n.Processor); ok {
			n.ProcessorName = p.Name
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
