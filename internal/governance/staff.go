package governance

import (
	"context"
	"fmt"
	"slices"
	"time"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/store"
)

// Roles staff can hold. The auditor reads the audit log and nothing else.
var Roles = []string{"admin", "marketing", "support", "dpo", "auditor"}

// Staff keeps who holds which staff role.
type Staff struct {
	db    *store.DB
	audit *Audit
	now   func() time.Time
}

// NewStaff returns the staff register; audit records every change made through Change.
func NewStaff(db *store.DB, audit *Audit, now func() time.Time) *Staff {
	return &Staff{db: db, audit: audit, now: now}
}

// Grant gives an account a role, unrecorded: the building block of Change (and of
// tests that make staff).
func (s *Staff) Grant(ctx context.Context, accountID, role string) error {
	if !slices.Contains(Roles, role) {
		return apperr.Field("role", "role_unknown", fmt.Sprintf("must be one of %v", Roles))
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO staff_roles (account_id, role, granted_at) VALUES ($1, $2, $3)
		ON CONFLICT (account_id, role) DO NOTHING`, accountID, role, store.Millis(s.now()))
	return err
}

// Revoke takes a role away.
func (s *Staff) Revoke(ctx context.Context, accountID, role string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM staff_roles WHERE account_id = $1 AND role = $2`, accountID, role)
	return err
}

// Change is a role given or taken by someone: an administrator's account, or the
// command line (By "").
type Change struct {
	AccountID, Role string
	Grant           bool
	By, IP          string
}

var errLastAdmin = apperr.New(apperr.Conflict, "last_admin", "the last administrator keeps the admin role: grant it to someone else first")

// Change gives or takes a role and records it in the audit log, under the account
// changed and under the administrator who changed it, in one transaction. The last
// administrator's admin role is not taken: someone must be left to grant roles.
func (s *Staff) Change(ctx context.Context, c Change) error {
	if !slices.Contains(Roles, c.Role) {
		return apperr.Field("role", "role_unknown", fmt.Sprintf("must be one of %v", Roles))
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		name, verb := "staff_role_granted", "granted"
		if c.Grant {
			if _, err := tx.ExecContext(ctx, `INSERT INTO staff_roles (account_id, role, granted_at) VALUES ($1, $2, $3)
				ON CONFLICT (account_id, role) DO NOTHING`, c.AccountID, c.Role, store.Millis(s.now())); err != nil {
				return fmt.Errorf("governance: staff: %w", err)
			}
		} else {
			name, verb = "staff_role_revoked", "revoked"
			if c.Role == "admin" {
				if err := tx.Lock(ctx, "staff admins", false); err != nil {
					return err
				}
				var others int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff_roles WHERE role = 'admin' AND account_id <> $1`,
					c.AccountID).Scan(&others); err != nil {
					return fmt.Errorf("governance: staff: %w", err)
				}
				if others == 0 {
					return errLastAdmin
				}
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM staff_roles WHERE account_id = $1 AND role = $2`, c.AccountID, c.Role); err != nil {
				return fmt.Errorf("governance: staff: %w", err)
			}
		}
		by := "by the command line"
		if c.By != "" {
			by = "by administrator " + c.By
			if err := s.audit.Record(ctx, tx, Event{Name: "staff_change", AccountID: c.By, IP: c.IP,
				Detail: verb + " " + c.Role + " for account " + c.AccountID}); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, Event{Name: name, AccountID: c.AccountID, IP: c.IP, Detail: c.Role + " " + by})
	})
}

// Person is an account that holds staff roles.
type Person struct {
	AccountID string
	Roles     []string
	Since     time.Time // the first role's grant
}

// People lists the accounts holding a staff role, with their roles.
func (s *Staff) People(ctx context.Context) ([]Person, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account_id, role, granted_at FROM staff_roles ORDER BY account_id, role`)
	if err != nil {
		return nil, fmt.Errorf("governance: staff: %w", err)
	}
	defer rows.Close()
	var out []Person
	for rows.Next() {
		var id, role string
		var at int64
		if err := rows.Scan(&id, &role, &at); err != nil {
			return nil, fmt.Errorf("governance: staff: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].AccountID != id {
			out = append(out, Person{AccountID: id, Since: store.FromMillis(at)})
		}
		p := &out[len(out)-1]
		p.Roles = append(p.Roles, role)
		if t := store.FromMillis(at); t.Before(p.Since) {
			p.Since = t
		}
	}
	return out, rows.Err()
}

// IsStaff reports whether the account holds any staff role.
func (s *Staff) IsStaff(ctx context.Context, accountID string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM staff_roles WHERE account_id = $1`, accountID).Scan(&n); err != nil {
		return false, fmt.Errorf("governance: staff: %w", err)
	}
	return n > 0, nil
}

// Members returns the accounts holding the role (admin is not every role here: a
// mail meant for the role goes to those who hold it).
func (s *Staff) Members(ctx context.Context, role string) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT account_id FROM staff_roles WHERE role = $1 ORDER BY account_id`, role)
	if err != nil {
		return nil, fmt.Errorf("governance: staff: %w", err)
	}
	return ids, nil
}

// HasAny reports whether the account holds any of the roles (admin holds all).
func (s *Staff) HasAny(ctx context.Context, accountID string, roles ...string) (bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT role FROM staff_roles WHERE account_id = $1`, accountID)
	if err != nil {
		return false, fmt.Errorf("governance: staff: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return false, err
		}
		if r == "admin" || slices.Contains(roles, r) {
			return true, nil
		}
	}
	return false, rows.Err()
}

var staffTable = datamap.Table{Name: "staff_roles", Subject: "account_id", Columns: []datamap.Column{
	{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
	{Name: "role", Categories: []string{"user.job_title"}, Plain: "one of five role names, compared in SQL on every staff request"},
	{Name: "granted_at", NotPersonal: "time", Time: true},
}}

// StaffHolder is the staff register's entry in the data map.
type StaffHolder struct{}

// Declaration describes the staff register.
func (StaffHolder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name: "staff", Description: "The staff roles your account holds, if any.",
		Purpose: "Let only authorized staff reach member data and tools.", LawfulBasis: "legitimate_interest",
		Retention: "While you hold the role.", Tables: []datamap.Table{staffTable},
	}
}

// Export returns the subject's roles.
func (h StaffHolder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase removes the subject's roles.
func (h StaffHolder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	return datamap.EraseDeclared(ctx, tx, s, h.Declaration())
}
