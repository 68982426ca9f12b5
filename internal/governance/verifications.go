package governance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
)

// VerifyArgs is the job that verifies the whole chain and keeps what it found: every
// hour, and when a staff member asks for it ("verify now").
type VerifyArgs struct {
	Source string `json:"source"` // schedule or staff
}

// Kind names the job.
func (VerifyArgs) Kind() string { return "audit_verify" }

// The sources of a verification.
const (
	VerifySchedule = "schedule"
	VerifyStaff    = "staff"
	VerifyCommand  = "command"
)

// keptVerifications is how many verifications are kept, the newest.
const keptVerifications = 500

// Verification is one verification of the chain as kept.
type Verification struct {
	Started, Finished time.Time
	Source            string
	Report
}

// VerifyAndKeep verifies the whole chain (Verify) and keeps what it found, for the audit
// page. An error of the database keeps nothing.
func (a *Audit) VerifyAndKeep(ctx context.Context, db *store.DB, source string) (Report, error) {
	started := a.now()
	rep, err := a.Verify(ctx, db)
	if err != nil {
		return rep, err
	}
	err = db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_verifications (started_at, finished_at, source, entries, checkpoints, head, head_hash,
			unchained, broken_at, problem) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			store.Millis(started), store.Millis(a.now()), source, rep.Entries, rep.Checkpoints, rep.Head, rep.HeadHash, rep.Unchained,
			rep.BrokenAt, rep.Problem); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_verifications WHERE id <= (SELECT max(id) FROM audit_verifications) - $1`, keptVerifications)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("governance: audit: keep the verification: %w", err)
	}
	return rep, nil
}

// LastVerification is the newest verification kept; ok is false before the first.
func (a *Audit) LastVerification(ctx context.Context, q store.Querier) (v Verification, ok bool, err error) {
	var started, finished int64
	err = q.QueryRowContext(ctx, `SELECT started_at, finished_at, source, entries, checkpoints, head, head_hash, unchained, broken_at, problem
		FROM audit_verifications ORDER BY id DESC LIMIT 1`).Scan(&started, &finished, &v.Source, &v.Entries, &v.Checkpoints, &v.Head,
		&v.HeadHash, &v.Unchained, &v.BrokenAt, &v.Problem)
	if errors.Is(err, sql.ErrNoRows) {
		return Verification{}, false, nil
	}
	if err != nil {
		return Verification{}, false, fmt.Errorf("governance: audit: last verification: %w", err)
	}
	v.Started, v.Finished = store.FromMillis(started), store.FromMillis(finished)
	return v, true, nil
}

var verificationTable = datamap.Table{Name: "audit_verifications", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "a counter"},
	{Name: "started_at", NotPersonal: "when the verification started", Time: true},
	{Name: "finished_at", NotPersonal: "when it ended", Time: true},
	{Name: "source", NotPersonal: "what started it: the hourly job, a staff member's request, the command"},
	{Name: "entries", NotPersonal: "entries checked"},
	{Name: "checkpoints", NotPersonal: "signed checkpoints checked"},
	{Name: "head", NotPersonal: "the chain's head place"},
	{Name: "head_hash", NotPersonal: "the head's hash"},
	{Name: "unchained", NotPersonal: "entries not chained yet"},
	{Name: "broken_at", NotPersonal: "where the chain broke, 0 if nowhere"},
	{Name: "problem", NotPersonal: "how it broke, in the verifier's words (places and hashes, never an entry's content)"},
}}
