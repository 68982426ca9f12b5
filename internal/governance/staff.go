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

// Roles staff can hold.
var Roles = []string{"admin", "marketing", "support", "dpo"}

// Staff keeps who holds which staff role.
type Staff struct {
	db  *store.DB
	now func() time.Time
}

// NewStaff returns the staff register.
func NewStaff(db *store.DB, now func() time.Time) *Staff { return &Staff{db: db, now: now} }

// Grant gives an account a role.
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
	{Name: "role", Categories: []string{"user.job_title"}, Plain: "one of four role names, compared in SQL on every staff request"},
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
