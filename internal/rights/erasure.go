// Package rights carries out members' rights over their data. So far: erasure, as a
// durable request that walks every holder of the data map, records each finished step
// so that a crash resumes where it stopped, and ends in the erasure ledger, which keeps
// only keyed hashes of the subject's identifiers. The ledger is kept twice: in the
// database, and as one object per erasure in the blob store, apart from database
// backups, so that a restored database can be told again whom it must not hold
// (Replay). Its tables are erasure_requests and erasure_ledger; its objects are under
// ledger/ in the blob store.
package rights

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/jobs"
	"steward/internal/store"
	"steward/internal/text"
)

// ErasureArgs is the job that runs an erasure request; it carries only the request id.
type ErasureArgs struct {
	RequestID string `json:"request_id"`
}

// Kind names the job.
func (ErasureArgs) Kind() string { return "erasure" }

// Enqueuer schedules jobs in the caller's transaction.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx *store.Tx, args jobs.Args) error
}

// Accounts is what erasure needs of the account capability.
type Accounts interface {
	// MarkErasing stops the account from logging in and ends its sessions.
	MarkErasing(ctx context.Context, tx *store.Tx, accountID string) error
	// ErasureSubject returns the account as erasure knows it: its id and the blind
	// indexes of every address it proved, without opening anything sealed.
	ErasureSubject(ctx context.Context, accountID string) (datamap.Subject, error)
}

// Holds is what erasure needs of the legal holds.
type Holds interface {
	// Keeps returns, for every holder an erasure of the subject must keep now, the
	// ids of the holds keeping it; empty when no hold is in force.
	Keeps(ctx context.Context, subjectID string) (map[string][]string, error)
}

// Request states.
const (
	StatePending = "pending"
	// StateHolding: every holder no legal hold keeps has erased; the held holders'
	// data, the data key that opens it and the holds wait for the last hold to end
	// (HoldsEnded finishes them). The account stays unable to log in.
	StateHolding = "holding"
	// StateScrubbing: every holder has erased, the ledger has the hashes and the
	// request has forgotten the subject; what is left is to make the engine's own
	// files (SQLite's write-ahead log, PostgreSQL's dead tuples) let go of the old
	// rows. Only then is the request done.
	StateScrubbing = "scrubbing"
	StateDone      = "done"
)

// Request is an erasure request as its subject or an operator sees it.
type Request struct {
	ID          string
	State       string
	StepsDone   []string
	Source      string
	LastError   string
	CreatedAt   time.Time
	CompletedAt time.Time
	// SubjectID is the subject's id while the request holds it (until the erasure
	// ends), for telling what legal holds keep of it.
	SubjectID string
}

// Service runs erasures.
type Service struct {
	db       *store.DB
	reg      *datamap.Registry
	accounts Accounts
	holds    Holds
	jobs     Enqueuer
	key      []byte
	ledger   Ledger
	objKey   []byte // keys the MACs of ledger objects
	now      func() time.Time
	log      *slog.Logger
}

// New returns the erasure service; ledger says how erasures are remembered, holds what
// legal holds keep (nil: nothing is ever held).
func New(db *store.DB, reg *datamap.Registry, accounts Accounts, holds Holds, jobs Enqueuer, ledger Ledger, now func() time.Time, log *slog.Logger) *Service {
	return &Service{db: db, reg: reg, accounts: accounts, holds: holds, jobs: jobs, key: ledger.Key, ledger: ledger,
		objKey: deriveKey(ledger.Key, "steward ledger object v1"), now: now, log: log}
}

// LedgerHash is the keyed hash under which the ledger remembers an identifier.
func (s *Service) LedgerHash(kind, value string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(kind + ":" + strings.ToLower(strings.TrimSpace(value))))
	return hex.EncodeToString(m.Sum(nil))
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Service) insertRequest(ctx context.Context, tx *store.Tx, subj datamap.Subject, source string) (string, error) {
	// A legal hold placed at this moment either commits first, and the erasure's run
	// sees it, or finds this request and is refused (holds.Place takes the same lock).
	if err := tx.Lock(ctx, SubjectLock(subj.ID), false); err != nil {
		return "", err
	}
	id := newID()
	// The request keeps no address, only blind indexes: the current address's and
	// those of every address proven before. The pending address is not kept: no holder
	// acts on it.
	proven := subj.Proven
	if subj.Email != "" {
		proven = append([]string{s.ledger.Index.Address(subj.Email)}, subj.Proven...)
	}
	proven = slices.Compact(proven)
	if _, err := tx.ExecContext(ctx, `INSERT INTO erasure_requests (id, subject_id, subject_email, subject_proven, state, source, created_at)
		VALUES ($1, $2, NULL, $3, $4, $5, $6)`, id, subj.ID, strings.Join(proven, ","), StatePending, source, store.Millis(s.now())); err != nil {
		return "", fmt.Errorf("rights: erasure request: %w", err)
	}
	if err := s.accounts.MarkErasing(ctx, tx, subj.ID); err != nil {
		return "", err
	}
	return id, nil
}

// SubjectLock names the lock taken by whatever must not interleave with the start of a
// subject's erasure (a legal hold being placed).
func SubjectLock(subjectID string) string { return "erasure:" + subjectID }

// RequestErasure records an erasure request and schedules it; the account stops
// working at once and the job erases it through every holder.
func (s *Service) RequestErasure(ctx context.Context, subj datamap.Subject, source string) (string, error) {
	var id string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if id, err = s.insertRequest(ctx, tx, subj, source); err != nil {
			return err
		}
		return s.jobs.Enqueue(ctx, tx, ErasureArgs{RequestID: id})
	})
	return id, err
}

// EraseNow records an erasure request and runs it before returning (command line,
// declined guardian consent). If it fails half-way, Resume or the next Run finishes it.
func (s *Service) EraseNow(ctx context.Context, subjectID, source string) error {
	subj, err := s.accounts.ErasureSubject(ctx, subjectID)
	if err != nil {
		return err
	}
	return s.EraseSubject(ctx, subj, source)
}

// EraseSubject is EraseNow for a subject given whole: a newsletter subscriber without
// an account.
func (s *Service) EraseSubject(ctx context.Context, subj datamap.Subject, source string) error {
	var id string
	var err error
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err = s.insertRequest(ctx, tx, subj, source)
		return err
	}); err != nil {
		return err
	}
	return s.Run(ctx, id)
}

// Run carries out an erasure request, resuming after the last finished holder. Each
// holder's Erase runs in its own transaction together with the record that it is done,
// so a crash never leaves a holder half-erased and never repeats a finished one. The
// request forgets the subject when the ledger has its hashes. Holders a legal hold in
// force keeps are passed over: the request then waits in StateHolding, and a later Run
// (HoldsEnded) erases them once no hold keeps them.
func (s *Service) Run(ctx context.Context, requestID string) error {
	var subjID, email, proven sql.NullString
	var state, steps string
	var source string
	err := s.db.QueryRowContext(ctx, `SELECT subject_id, subject_email, subject_proven, state, steps_done, source FROM erasure_requests WHERE id = $1`, requestID).
		Scan(&subjID, &email, &proven, &state, &steps, &source)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.New(apperr.NotFound, "request_not_found", "no such erasure request")
	}
	if err != nil {
		return fmt.Errorf("rights: erasure %s: %w", requestID, err)
	}
	if state == StateDone {
		return nil
	}
	holders := s.reg.ErasureOrder()
	var tables []string
	for i := range holders {
		tables = append(tables, holders[i].Declaration().TableNames()...)
	}
	tables = append(tables, "erasure_requests")
	if state == StateScrubbing {
		return s.scrub(ctx, requestID, tables)
	}
	subj := readSubject(subjID.String, email, proven)
	subj.Again = source == "ledger_replay"
	keeps, err := s.keeps(ctx, subj.ID)
	if err != nil {
		return fmt.Errorf("rights: erasure %s: %w", requestID, err)
	}
	subj.KeepKey = len(keeps["vault"]) > 0
	done := splitSteps(steps)
	for i := range holders {
		d := holders[i].Declaration()
		if slices.Contains(done, d.Name) || len(keeps[d.Name]) > 0 {
			continue
		}
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if err := holders[i].Erase(ctx, tx, subj); err != nil {
				return fmt.Errorf("rights: erase %s: %w", d.Name, err)
			}
			done = append(done, d.Name)
			_, err := tx.ExecContext(ctx, `UPDATE erasure_requests SET steps_done = $1 WHERE id = $2`, strings.Join(done, ","), requestID)
			return err
		})
		if err != nil {
			s.noteError(ctx, requestID, err)
			return err
		}
	}
	if len(keeps) > 0 {
		if state == StateHolding {
			return nil
		}
		// What was erased must leave the engine's files now, not when the holds end:
		// only the held data may remain meanwhile.
		if err := s.db.Compact(ctx, tables...); err != nil {
			s.noteError(context.WithoutCancel(ctx), requestID, err)
			return fmt.Errorf("rights: erasure %s: scrub: %w", requestID, err)
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE erasure_requests SET state = $1, last_error = '' WHERE id = $2`, StateHolding, requestID); err != nil {
			return fmt.Errorf("rights: erasure %s: holding: %w", requestID, err)
		}
		s.log.Info("erasure holding what legal holds keep", "request", requestID)
		return nil
	}
	// The ledger object first: a database that says "done" always has its object, so a
	// restore of an older backup finds the erasure in the blob store.
	erasedAt := store.Millis(s.now())
	entries := s.ledgerEntries(subj)
	if err := s.writeLedgerObject(ctx, requestID, erasedAt, entries); err != nil {
		s.noteError(ctx, requestID, err)
		return fmt.Errorf("rights: erasure %s: %w", requestID, err)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, e := range entries {
			if _, err := tx.ExecContext(ctx, `DELETE FROM erasure_ledger WHERE hash = $1`, e.Hash); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO erasure_ledger (hash, kind, request_id, erased_at) VALUES ($1, $2, $3, $4)`,
				e.Hash, e.Kind, requestID, erasedAt); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE erasure_requests SET subject_id = NULL, subject_email = NULL, subject_proven = NULL, state = $1,
			last_error = '' WHERE id = $2`, StateScrubbing, requestID)
		return err
	})
	if err != nil {
		return fmt.Errorf("rights: erasure %s: finish: %w", requestID, err)
	}
	return s.scrub(ctx, requestID, tables)
}

// keeps is what legal holds keep of the subject now.
func (s *Service) keeps(ctx context.Context, subjectID string) (map[string][]string, error) {
	if s.holds == nil || subjectID == "" {
		return nil, nil
	}
	return s.holds.Keeps(ctx, subjectID)
}

// HoldsEnded runs again every erasure waiting on legal holds: those whose holds have
// ended (released, or past their until date) erase what the holds kept and complete.
func (s *Service) HoldsEnded(ctx context.Context) error {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM erasure_requests WHERE state = $1 ORDER BY created_at`, StateHolding)
	if err != nil {
		return fmt.Errorf("rights: holds ended: %w", err)
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, s.Run(ctx, id))
	}
	return errors.Join(errs...)
}

// Holding returns the erasure request waiting on legal holds for the subject, if any.
func (s *Service) Holding(ctx context.Context, subjectID string) (string, bool, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM erasure_requests WHERE subject_id = $1 AND state = $2`, subjectID, StateHolding)
	if err != nil || len(ids) == 0 {
		return "", false, err
	}
	return ids[0], true, nil
}

// noteError records why a step of an erasure failed, for the staff's view. It is
// best effort: the failure itself is returned and the job runs again, so a note that
// cannot be written is logged and the run goes on.
func (s *Service) noteError(ctx context.Context, requestID string, cause error) {
	if _, err := s.db.ExecContext(ctx, `UPDATE erasure_requests SET last_error = $1 WHERE id = $2`, text.Cut(cause.Error(), 500), requestID); err != nil {
		s.log.Warn("rights: recording an erasure's last error", "request", requestID, "err", err)
	}
}

// scrub makes the engine's own files let go of the erased rows, then marks the
// request done: a request reads "done" only when a scan of the files would find
// nothing. If the engine cannot scrub now (SQLite readers keep its log busy), the
// request stays in scrubbing with the reason, and the next Run finishes it.
func (s *Service) scrub(ctx context.Context, requestID string, tables []string) error {
	if err := s.db.Compact(ctx, tables...); err != nil {
		s.noteError(context.WithoutCancel(ctx), requestID, err)
		return fmt.Errorf("rights: erasure %s: scrub: %w", requestID, err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE erasure_requests SET state = $1, last_error = '', completed_at = $2 WHERE id = $3`,
		StateDone, store.Millis(s.now()), requestID); err != nil {
		return fmt.Errorf("rights: erasure %s: done: %w", requestID, err)
	}
	s.log.Info("erasure done", "request", requestID)
	return nil
}

// readSubject is the subject as a request stores it: its proven address and the
// blind indexes of those it proved before. A request made before holders told
// addresses apart (proven is NULL) holds the account's address and then the pending
// one, joined by a comma: the first is taken as proven, as it was then, and the
// pending one is only forgotten.
func readSubject(id string, email, proven sql.NullString) datamap.Subject {
	if !proven.Valid {
		current, pending, _ := strings.Cut(email.String, ",")
		return datamap.Subject{ID: id, Email: current, Pending: pending}
	}
	subj := datamap.Subject{ID: id, Email: email.String}
	if proven.String != "" {
		subj.Proven = strings.Split(proven.String, ",")
	}
	return subj
}

func splitSteps(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// PurgeArgs is the hourly job that runs again the erasures left unfinished (ResumeStale).
// Its kind keeps the name of earlier releases, when it also erased abandoned
// registrations (now the retention rule's), so that their queued jobs find a worker.
type PurgeArgs struct{}

// Kind names the job.
func (PurgeArgs) Kind() string { return "purge_abandoned" }

// EraseAll erases each subject (an account id) through EraseNow, and returns how many
// it erased: a subject erased meanwhile by another run is passed over.
func (s *Service) EraseAll(ctx context.Context, ids []string, source string) (int, error) {
	var errs []error
	n := 0
	for _, id := range ids {
		err := s.EraseNow(ctx, id, source)
		if apperr.KindOf(err) == apperr.NotFound {
			// Another run (another node, or a run by hand racing the daily one) erased
			// it since it was listed: nothing is left to do.
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ResumeStale runs again any erasure request still unfinished after an hour (its own
// job gave up or was lost).
func (s *Service) ResumeStale(ctx context.Context) error {
	// A request holding what legal holds keep is HoldsEnded's to run.
	stale, err := store.Strings(ctx, s.db, `SELECT id FROM erasure_requests WHERE state NOT IN ($1, $2) AND created_at < $3`,
		StateDone, StateHolding, store.Millis(s.now().Add(-time.Hour)))
	if err != nil {
		return fmt.Errorf("rights: resume: %w", err)
	}
	var errs []error
	for _, id := range stale {
		errs = append(errs, s.Run(ctx, id))
	}
	return errors.Join(errs...)
}

// Request returns an erasure request.
func (s *Service) Request(ctx context.Context, id string) (Request, error) {
	var r Request
	var steps string
	var created int64
	var completed sql.NullInt64
	var subject sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, state, steps_done, source, last_error, created_at, completed_at, subject_id
		FROM erasure_requests WHERE id = $1`, id).Scan(&r.ID, &r.State, &steps, &r.Source, &r.LastError, &created, &completed, &subject)
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, apperr.New(apperr.NotFound, "request_not_found", "no such erasure request")
	}
	if err != nil {
		return Request{}, fmt.Errorf("rights: request: %w", err)
	}
	r.StepsDone = splitSteps(steps)
	r.CreatedAt, r.CompletedAt = store.FromMillis(created), store.NullMillis(completed)
	r.SubjectID = subject.String
	return r, nil
}

// Pending returns the ids of erasure requests not yet done.
func (s *Service) Pending(ctx context.Context) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM erasure_requests WHERE state <> $1 ORDER BY created_at`, StateDone)
	if err != nil {
		return nil, fmt.Errorf("rights: pending: %w", err)
	}
	return ids, nil
}

// Erased reports when an identifier (email or id) was erased, by its keyed hash (or,
// for an address, its blind index; entries written before that hashed it as "email").
func (s *Service) Erased(ctx context.Context, identifier string) (time.Time, bool, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(erased_at) FROM erasure_ledger WHERE hash IN ($1, $2, $3)`,
		s.LedgerHash(KindID, identifier), s.ledger.Index.Address(identifier), s.LedgerHash(kindEmail, identifier)).Scan(&at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("rights: ledger: %w", err)
	}
	return store.NullMillis(at), at.Valid, nil
}

// Holder is the erasure requests' entry in the data map.
type Holder struct{}

var requestsTable = datamap.Table{Name: "erasure_requests", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random request id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, forgotten when the request completes"},
	{Name: "subject_email", Categories: []string{"user.contact.email"},
		Plain: "written only by releases before blind indexes: new requests keep no address, and a request forgets it when it completes"},
	{Name: "subject_proven", Categories: []string{"user.contact.email"},
		Plain:    "keyed hashes (blind indexes) of the addresses the subject proved, the current one included, compared with the hashes of stored addresses; forgotten when the request completes",
		Withheld: "keyed hashes of addresses you proved, kept only while the erasure runs"},
	{Name: "state", NotPersonal: "state of the request"},
	{Name: "steps_done", NotPersonal: "names of the holders already erased"},
	{Name: "source", NotPersonal: "who asked: member, operator, guardian"},
	{Name: "last_error", NotPersonal: "error of the last attempt; errors carry no personal data"},
	{Name: "created_at", NotPersonal: "time of the request", Time: true},
	{Name: "completed_at", NotPersonal: "time of completion", Time: true},
}}

var ledgerTable = datamap.Table{Name: "erasure_ledger", Columns: []datamap.Column{
	{Name: "hash", NotPersonal: "HMAC-SHA-256 of an erased identifier under the ledger key (an address: its blind index): cannot be reversed or linked without the key, and is kept to re-erase after a restore"},
	{Name: "kind", NotPersonal: "kind of identifier hashed (id, address; email in entries made before addresses were kept by their blind index)"},
	{Name: "request_id", NotPersonal: "random request id"},
	{Name: "erased_at", NotPersonal: "time of erasure", Time: true},
}}

// Declaration describes the erasure tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "erasure",
		Description: "Erasure requests while they run, and the ledger of keyed hashes of erased identifiers.",
		Purpose:     "Carry out erasure completely, and keep erased members erased after a backup is restored.",
		LawfulBasis: "legal_obligation",
		Retention:   "A request holds the subject's id, email and keyed hashes of earlier addresses only while it runs; the ledger keeps keyed hashes for good.",
		Tables:      []datamap.Table{requestsTable, ledgerTable},
	}
}

// Export returns the subject's erasure requests in progress.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := datamap.SelectSection(ctx, q, requestsTable, "subject_id = $1", s.ID)
	return []datamap.Section{sec}, err
}

// Erase leaves the request alone: the request is what is erasing, and it forgets the
// subject itself when it completes.
func (Holder) Erase(context.Context, *store.Tx, datamap.Subject) error { return nil }

// Export writes the subject's portability archive (every holder's data) to w.
func (s *Service) Export(ctx context.Context, subj datamap.Subject, w io.Writer) error {
	return s.reg.Export(ctx, s.db, subj, s.now(), w)
}
