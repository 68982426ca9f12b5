// Package governance owns the records that let an operator answer for how personal
// data is handled. So far: the security audit log (logins, failed logins, password
// changes, session revocations, erasures). Details never carry an email address or a
// secret; failed logins for an unknown address are recorded without the address.
package governance

import (
	"context"
	"fmt"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Audit writes the security audit log.
type Audit struct {
	now func() time.Time
}

// NewAudit returns the audit log writer.
func NewAudit(now func() time.Time) *Audit { return &Audit{now: now} }

// Event is one security event.
type Event struct {
	Name      string // e.g. "login", "login_failed", "password_reset"
	AccountID string // "" when no account is known
	IP        string
	Detail    string
}

// Record appends an event, in the caller's transaction or on the database.
func (a *Audit) Record(ctx context.Context, q store.Querier, e Event) error {
	var account any
	if e.AccountID != "" {
		account = e.AccountID
	}
	_, err := q.ExecContext(ctx,
		`INSERT INTO audit_log (at, event, account_id, ip, detail) VALUES ($1, $2, $3, $4, $5)`,
		store.Millis(a.now()), e.Name, account, e.IP, e.Detail)
	if err != nil {
		return fmt.Errorf("governance: audit %s: %w", e.Name, err)
	}
	return nil
}

// Entry is one row of the audit log as a member sees it.
type Entry struct {
	At     time.Time
	Event  string
	IP     string
	Detail string
}

// ForAccount returns the newest audit entries of an account.
func (a *Audit) ForAccount(ctx context.Context, q store.Querier, accountID string, limit int) ([]Entry, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT at, event, ip, detail FROM audit_log WHERE account_id = $1 ORDER BY id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("governance: audit: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		if err := rows.Scan(&at, &e.Event, &e.IP, &e.Detail); err != nil {
			return nil, err
		}
		e.At = store.FromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

var auditTable = datamap.Table{Name: "audit_log", Subject: "account_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "sequence number"},
	{Name: "at", NotPersonal: "time of the event", Time: true},
	{Name: "event", NotPersonal: "name of a fixed event type"},
	{Name: "account_id", Categories: []string{"user.unique_id"}},
	{Name: "ip", Categories: []string{"user.device.ip_address"}},
	{Name: "detail", Categories: []string{"system.operations"}},
}}

// AuditHolder is the audit log's entry in the data map.
type AuditHolder struct{}

// Declaration describes the audit log.
func (AuditHolder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "audit_log",
		Description: "Security events of the account: logins, failed logins, password and session changes.",
		Purpose:     "Protect accounts against takeover and investigate security incidents.",
		LawfulBasis: "legitimate_interest",
		Retention:   "As long as the account exists; deleted with it.",
		Tables:      []datamap.Table{auditTable},
	}
}

// Export returns the subject's audit entries.
func (AuditHolder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := datamap.SelectSection(ctx, q, auditTable, "account_id = $1 ORDER BY id", s.ID)
	return []datamap.Section{sec}, err
}

// Erase deletes the subject's audit entries.
func (AuditHolder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE account_id = $1`, s.ID)
	return err
}
