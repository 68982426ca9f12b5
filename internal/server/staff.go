package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/governance"
	"steward/internal/store"
)

// What a session's second factor is, for a staff account (SecondFactorState).
const (
	FactorNone     = "none"     // the account holds no staff role: nothing is asked
	FactorPassed   = "passed"   // the session passed it
	FactorRequired = "required" // enrolled, not passed in this session
	FactorEnroll   = "enroll"   // a staff account that has not set one up yet
)

var (
	// ErrSecondFactorRequired refuses a staff route to a session that has not passed
	// the second factor.
	ErrSecondFactorRequired = apperr.New(apperr.Forbidden, "second_factor_required",
		"staff roles need a session that passed the second factor: give a code of your authenticator app (POST /api/v1/sessions/current/second-factor), or set one up first (POST /api/v1/me/second-factor)")
	// ErrReauthRequired refuses a sensitive action to a session whose holder has not
	// given the password or a code within the re-authentication window.
	ErrReauthRequired = apperr.New(apperr.Forbidden, "reauth_required",
		"confirm it is you first: POST /api/v1/sessions/current/reauth with your password or a code, then try again")
	errStaffOnly = apperr.New(apperr.Forbidden, "forbidden", "this needs a staff role")
)

// SecondFactorState says where the session stands with the second factor.
func (s *Services) SecondFactorState(ctx context.Context, sess account.Session) (string, error) {
	if !sess.SecondFactorAt.IsZero() {
		return FactorPassed, nil
	}
	staff, err := s.Staff.IsStaff(ctx, sess.AccountID)
	if err != nil || !staff {
		return FactorNone, err
	}
	st, err := s.Accounts.SecondFactor(ctx, sess.AccountID)
	if err != nil {
		return "", err
	}
	if st.Enrolled {
		return FactorRequired, nil
	}
	return FactorEnroll, nil
}

// StaffGate admits a session to a staff route of the roles (admin holds every role):
// errStaffOnly for a member without one, ErrSecondFactorRequired for a staff member
// whose session has not passed the second factor.
func (s *Services) StaffGate(ctx context.Context, sess account.Session, roles ...string) error {
	ok, err := s.Staff.HasAny(ctx, sess.AccountID, roles...)
	if err != nil {
		return err
	}
	if !ok {
		return errStaffOnly
	}
	if sess.SecondFactorAt.IsZero() {
		return ErrSecondFactorRequired
	}
	return nil
}

// IsSecondFactorRequired reports whether err is the staff gate's refusal for want of
// the second factor.
func IsSecondFactorRequired(err error) bool { return errors.Is(err, ErrSecondFactorRequired) }

// PassSecondFactorLimited checks a code of the app or a recovery code for the
// session, under the account's limit of code attempts.
func (s *Services) PassSecondFactorLimited(r *http.Request, sess account.Session, code, recovery string) error {
	if err := s.Limits.SecondFactor(r.Context(), sess.AccountID); err != nil {
		return err
	}
	return s.Accounts.PassSecondFactor(r.Context(), sess, code, recovery, s.Meta(r))
}

// ConfirmEnrollmentLimited confirms an enrollment with a code of the app, under the
// account's limit of code attempts, and returns the recovery codes.
func (s *Services) ConfirmEnrollmentLimited(r *http.Request, sess account.Session, code string) ([]string, error) {
	if err := s.Limits.SecondFactor(r.Context(), sess.AccountID); err != nil {
		return nil, err
	}
	return s.Accounts.ConfirmEnrollment(r.Context(), sess, code, s.Meta(r))
}

// ReauthLimited re-authenticates the session's holder with the password or a code,
// under the account's limit of code attempts.
func (s *Services) ReauthLimited(r *http.Request, sess account.Session, password, code string) error {
	if err := s.Limits.SecondFactor(r.Context(), sess.AccountID); err != nil {
		return err
	}
	return s.Accounts.Reauthenticate(r.Context(), sess, password, code, s.Meta(r))
}

// StaffPerson is an account holding staff roles, as the staff management lists it.
type StaffPerson struct {
	governance.Person
	Email    string
	Enrolled bool // has a second factor
}

// StaffPeople lists the staff accounts with their address and second factor.
func (s *Services) StaffPeople(ctx context.Context) ([]StaffPerson, error) {
	list, err := s.Staff.People(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]StaffPerson, 0, len(list))
	for _, p := range list {
		sp := StaffPerson{Person: p}
		prof, err := s.Accounts.Profile(ctx, p.AccountID)
		switch {
		case apperr.KindOf(err) == apperr.NotFound:
			sp.Email = "(erased)"
		case err != nil:
			return nil, err
		default:
			sp.Email = prof.Email
		}
		st, err := s.Accounts.SecondFactor(ctx, p.AccountID)
		if err != nil {
			return nil, err
		}
		sp.Enrolled = st.Enrolled
		out = append(out, sp)
	}
	return out, nil
}

// GrantRole gives the role to the account of the address, as the session's
// administrator, and returns the account's id.
func (s *Services) GrantRole(r *http.Request, sess account.Session, email, role string) (string, error) {
	if email == "" {
		return "", apperr.Field("email", "required", "is required")
	}
	if role == "" {
		return "", apperr.Field("role", "required", "is required")
	}
	subj, err := s.Accounts.Lookup(r.Context(), email)
	if apperr.KindOf(err) == apperr.NotFound {
		return "", apperr.Field("email", "account_not_found", "has no account here: the person registers first")
	}
	if err != nil {
		return "", err
	}
	return subj.ID, s.Staff.Change(r.Context(), governance.Change{AccountID: subj.ID, Role: role, Grant: true, By: sess.AccountID, IP: s.ClientIP(r)})
}

// RevokeRole takes the role from the account, as the session's administrator.
func (s *Services) RevokeRole(r *http.Request, sess account.Session, accountID, role string) error {
	if _, err := s.Accounts.Profile(r.Context(), accountID); err != nil {
		return err
	}
	return s.Staff.Change(r.Context(), governance.Change{AccountID: accountID, Role: role, By: sess.AccountID, IP: s.ClientIP(r)})
}

// ResetStaffSecondFactor removes an account's second factor, as the session's
// administrator.
func (s *Services) ResetStaffSecondFactor(r *http.Request, sess account.Session, accountID string) error {
	if _, err := s.Accounts.Profile(r.Context(), accountID); err != nil {
		return err
	}
	return s.Accounts.ResetSecondFactor(r.Context(), accountID, sess.AccountID, s.Meta(r))
}

// Verification is what the newest verification of the audit chain found
// (governance.Verification): Done is false before the first.
type Verification struct {
	Done        bool      `json:"done"`
	Intact      bool      `json:"intact"`
	At          time.Time `json:"at,omitzero"`      // when it ended
	Source      string    `json:"source,omitempty"` // schedule, staff, command
	Seconds     float64   `json:"seconds"`          // how long it took
	Entries     int64     `json:"entries"`
	Checkpoints int       `json:"checkpoints"`
	Head        int64     `json:"head"`
	HeadHash    string    `json:"head_hash"`
	Unchained   int64     `json:"unchained"`
	BrokenAt    int64     `json:"broken_at,omitempty"`
	Problem     string    `json:"problem,omitempty"`
}

// AuditPage returns a page of the audit log, newest first, the number of entries, and
// the newest verification of the whole chain (the hourly job's, or one asked for with
// VerifyAudit): recomputing ten million entries at every view would take half a minute.
func (s *Services) AuditPage(ctx context.Context, offset, limit int) ([]governance.Listed, int, Verification, error) {
	list, total, err := s.Audit.List(ctx, s.DB, offset, limit)
	if err != nil {
		return nil, 0, Verification{}, err
	}
	v, ok, err := s.Audit.LastVerification(ctx, s.DB)
	if err != nil || !ok {
		return list, total, Verification{}, err
	}
	return list, total, Verification{Done: true, Intact: v.Intact(), At: v.Finished, Source: v.Source,
		Seconds: v.Finished.Sub(v.Started).Seconds(), Entries: v.Entries, Checkpoints: v.Checkpoints, Head: v.Head,
		HeadHash: v.HeadHash, Unchained: v.Unchained, BrokenAt: v.BrokenAt, Problem: v.Problem}, nil
}

// VerifyAudit queues a verification of the whole chain now (the job the hourly check
// runs), recorded in the log as the staff member's. While one is queued or running no
// other is queued: repeated requests cost the workers nothing more.
func (s *Services) VerifyAudit(ctx context.Context, staffID, ip string) error {
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		var waiting int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'audit_verify'
			AND state IN ('available', 'running', 'scheduled', 'retryable', 'pending')`).Scan(&waiting); err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		if waiting > 0 {
			return nil
		}
		if err := s.Jobs.Enqueue(ctx, tx, governance.VerifyArgs{Source: governance.VerifyStaff}); err != nil {
			return err
		}
		return s.Audit.Record(ctx, tx, governance.Event{Name: "audit_verify_requested", AccountID: staffID, IP: ip,
			Detail: "asked for a verification of the audit chain"})
	})
}
