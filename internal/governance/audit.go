// Package governance owns the records that let an operator answer for how personal
// data is handled. So far: the security audit log (logins, failed logins, password
// changes, session revocations, erasures). Details never carry an email address or a
// secret; failed logins for an unknown address are recorded without the address. An
// event of an account keeps its IP and detail sealed under the account's data key; an
// event without an account keeps no IP, only its blind index.
package governance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/vault"
)

// Labels the audit log's sealed values are bound to.
const (
	labelIP     = "audit_log.ip"
	labelDetail = "audit_log.detail"
)

// ipIndexKind is the kind of the IP's blind index (vault.Index.Of).
const ipIndexKind = "ip"

// Audit writes the security audit log.
type Audit struct {
	vault *vault.Vault
	index *vault.Index
	now   func() time.Time
}

// NewAudit returns the audit log writer: v seals an account's events under its data
// key, index keeps the IP of an event without an account as a keyed hash.
func NewAudit(v *vault.Vault, index *vault.Index, now func() time.Time) *Audit {
	return &Audit{vault: v, index: index, now: now}
}

// Event is one security event.
type Event struct {
	Name      string // e.g. "login", "login_failed", "password_reset"
	AccountID string // "" when no account is known
	IP        string
	// Detail is a fixed text or a count, never an address or a secret: without an
	// account it is kept as it is.
	Detail string
}

// Record appends an event, in the caller's transaction or on the database. An event
// of an account is sealed under the account's data key, which must exist (an account
// whose key is shredded is being erased: nothing more is recorded about it). An event
// without an account keeps only the blind index of its IP.
func (a *Audit) Record(ctx context.Context, q store.Querier, e Event) error {
	var err error
	if e.AccountID == "" {
		_, err = q.ExecContext(ctx, `INSERT INTO audit_log (at, event, account_id, ip, ip_idx, detail, sealed) VALUES ($1, $2, NULL, '', $3, $4, 1)`,
			store.Millis(a.now()), e.Name, a.ipIndex(e.IP), e.Detail)
	} else {
		var key *vault.Key
		if key, err = a.vault.KeyIn(ctx, q, e.AccountID, false); err == nil {
			_, err = q.ExecContext(ctx, `INSERT INTO audit_log (at, event, account_id, ip, detail, sealed) VALUES ($1, $2, $3, $4, $5, 1)`,
				store.Millis(a.now()), e.Name, e.AccountID, key.SealText(labelIP, e.IP), key.SealText(labelDetail, e.Detail))
		}
	}
	if err != nil {
		return fmt.Errorf("governance: audit %s: %w", e.Name, err)
	}
	return nil
}

// ipIndex is the blind index of an IP, or NULL for none.
func (a *Audit) ipIndex(ip string) any {
	if ip == "" {
		return nil
	}
	return a.index.Of(ipIndexKind, ip)
}

// Entry is one row of the audit log as a member sees it.
type Entry struct {
	At     time.Time
	Event  string
	IP     string
	Detail string
}

// ForAccount returns the newest audit entries of an account, opened with its key.
func (a *Audit) ForAccount(ctx context.Context, q store.Querier, accountID string, limit int) ([]Entry, error) {
	key, err := a.vault.KeyIn(ctx, q, accountID, false)
	if errors.Is(err, vault.ErrNoKey) {
		return nil, nil // erased: its entries go with it
	}
	if err != nil {
		return nil, fmt.Errorf("governance: audit: %w", err)
	}
	rows, err := q.QueryContext(ctx,
		`SELECT at, event, ip, detail, sealed FROM audit_log WHERE account_id = $1 ORDER BY id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("governance: audit: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		var sealed int
		if err := rows.Scan(&at, &e.Event, &e.IP, &e.Detail, &sealed); err != nil {
			return nil, fmt.Errorf("governance: audit: %w", err)
		}
		if sealed == 1 { // else written by an earlier release and not sealed yet (SealLegacy)
			var ipErr, detailErr error
			e.IP, ipErr = key.OpenText(labelIP, e.IP)
			e.Detail, detailErr = key.OpenText(labelDetail, e.Detail)
			if err := errors.Join(ipErr, detailErr); err != nil {
				return nil, fmt.Errorf("governance: audit: %w", err)
			}
		}
		e.At = store.FromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// FromIP returns the newest events without an account (failed logins for unknown
// addresses) from an IP. The log keeps no such IP, only its blind index: staff who
// want to know what an address did give the address, and the log answers by its hash.
func (a *Audit) FromIP(ctx context.Context, q store.Querier, ip string, limit int) ([]Entry, error) {
	if ip == "" {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT at, event, detail FROM audit_log WHERE ip_idx = $1 AND account_id IS NULL
		ORDER BY id DESC LIMIT $2`, a.index.Of(ipIndexKind, ip), limit)
	if err != nil {
		return nil, fmt.Errorf("governance: audit: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{IP: ip}
		var at int64
		if err := rows.Scan(&at, &e.Event, &e.Detail); err != nil {
			return nil, fmt.Errorf("governance: audit: %w", err)
		}
		e.At = store.FromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// sealBatch is how many rows of an earlier release one transaction seals.
const sealBatch = 1000

// SealLegacy brings the rows an earlier release wrote in plain text (sealed = 0) to
// this release's form, a batch at a time, and returns how many it changed: an
// account's IP and detail are sealed under the account's key; an event without an
// account keeps only the blind index of its IP. Rows of an account without a key
// are deleted: its key is shredded first when it is erased, and the erasure deletes
// them anyway. It runs at start, after accounts are sealed (they get their keys).
func (a *Audit) SealLegacy(ctx context.Context, db *store.DB) (int, error) {
	total := 0
	for {
		n, err := a.sealLegacyBatch(ctx, db)
		total += n
		if err != nil {
			return total, fmt.Errorf("governance: audit: seal: %w", err)
		}
		if n < sealBatch {
			return total, nil
		}
	}
}

func (a *Audit) sealLegacyBatch(ctx context.Context, db *store.DB) (int, error) {
	n := 0
	err := db.InTx(ctx, func(tx *store.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, account_id, ip, detail FROM audit_log WHERE sealed = 0 ORDER BY id LIMIT $1`, sealBatch)
		if err != nil {
			return err
		}
		type row struct {
			id         int64
			account    sql.NullString
			ip, detail string
		}
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.account, &r.ip, &r.detail); err != nil {
				rows.Close()
				return err
			}
			all = append(all, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(all)
		keys := map[string]*vault.Key{}
		for _, r := range all {
			if !r.account.Valid {
				if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET ip = '', ip_idx = $1, sealed = 1 WHERE id = $2`, a.ipIndex(r.ip), r.id); err != nil {
					return err
				}
				continue
			}
			key, ok := keys[r.account.String]
			if !ok {
				if key, err = a.vault.KeyIn(ctx, tx, r.account.String, false); err != nil && !errors.Is(err, vault.ErrNoKey) {
					return err
				}
				keys[r.account.String] = key // nil: no key
			}
			if key == nil {
				if _, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id = $1`, r.id); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET ip = $1, detail = $2, sealed = 1 WHERE id = $3`,
				key.SealText(labelIP, r.ip), key.SealText(labelDetail, r.detail), r.id); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

var auditTable = datamap.Table{Name: "audit_log", Subject: "account_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "sequence number"},
	{Name: "at", NotPersonal: "time of the event", Time: true},
	{Name: "event", NotPersonal: "name of a fixed event type"},
	{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id: the account whose key seals the row"},
	// Sealed in an account's rows; empty in rows without an account, which keep ip_idx.
	{Name: "ip", Categories: []string{"user.device.ip_address"}, Sealed: true},
	// Sealed in an account's rows; a fixed text in rows without an account.
	{Name: "detail", Categories: []string{"system.operations"}, Sealed: true},
	{Name: "ip_idx", Categories: []string{"user.device.ip_address"},
		Plain: "a keyed hash (blind index) of the IP of an event without an account (a failed login for an unknown address), " +
			"so staff can find what an address did; empty in an account's rows"},
	{Name: "sealed", NotPersonal: "whether the row is in the sealed form (an earlier release's rows are sealed at start)"},
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

// Export returns the subject's audit entries, opened with the subject's key.
func (AuditHolder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := s.Select(ctx, q, auditTable, "account_id = $1 ORDER BY id", s.ID)
	return []datamap.Section{sec}, err
}

// Erase deletes the subject's audit entries.
func (AuditHolder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE account_id = $1`, s.ID)
	return err
}
