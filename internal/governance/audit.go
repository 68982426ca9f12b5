// Package governance owns the records that let an operator answer for how personal
// data is handled. So far: the security audit log (logins, failed logins, password
// changes, session revocations, erasures, staff actions) and the staff roles. Details
// never carry an email address or a secret; failed logins for an unknown address are
// recorded without the address. An event of an account names it only by a keyed hash
// of its id and keeps its IP and detail sealed under the account's data key; an event
// without an account keeps no IP, only its blind index. The log is tamper-evident:
// every entry is MACed when written, chained by hash to the one before it, and the
// chain's head is signed at checkpoints (chain.go).
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

// Kinds of the audit log's blind indexes (vault.Index.Of).
const (
	ipIndexKind      = "ip"
	accountIndexKind = "audit_account"
)

// Audit writes the security audit log.
type Audit struct {
	vault *vault.Vault
	index *vault.Index
	key   *AuditKey
	now   func() time.Time
	// When checkpoints are due (CheckpointEvery, CheckpointInterval; tests change them).
	checkpointEvery    int
	checkpointInterval time.Duration
	// chainFault, when set (tests), is called before the chainer chains the i-th entry
	// of a batch; an error aborts the batch as a crash would.
	chainFault func(i int) error
}

// NewAudit returns the audit log writer: v seals an account's events under its data
// key, index keeps the account's id and the IP of an event without an account as
// keyed hashes, key MACs each entry and signs the chain's checkpoints.
func NewAudit(v *vault.Vault, index *vault.Index, key *AuditKey, now func() time.Time) *Audit {
	return &Audit{vault: v, index: index, key: key, now: now, checkpointEvery: CheckpointEvery, checkpointInterval: CheckpointInterval}
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

// Record appends an event, in the caller's transaction or on the database, unchained
// (the chainer gives it its place). An event of an account is sealed under the
// account's data key, which must exist (an account whose key is shredded is being
// erased: nothing more is recorded about it), and names the account by the blind
// index of its id. An event without an account keeps only the blind index of its IP.
func (a *Audit) Record(ctx context.Context, q store.Querier, e Event) error {
	r := row{at: store.Millis(a.now()), event: e.Name, detail: e.Detail, sealed: 1}
	if e.AccountID == "" {
		if e.IP != "" {
			r.ipIdx = sql.NullString{String: a.index.Of(ipIndexKind, e.IP), Valid: true}
		}
	} else {
		key, err := a.vault.KeyIn(ctx, q, e.AccountID, false)
		if err != nil {
			return fmt.Errorf("governance: audit %s: %w", e.Name, err)
		}
		r.accountIdx = sql.NullString{String: a.accountIndex(e.AccountID), Valid: true}
		r.ip, r.detail = key.SealText(labelIP, e.IP), key.SealText(labelDetail, e.Detail)
	}
	r.mac = sql.NullString{String: a.key.entryMAC(r.content(nil)), Valid: true}
	if _, err := q.ExecContext(ctx, `INSERT INTO audit_log (at, event, account_idx, ip, ip_idx, detail, sealed, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.at, r.event, r.accountIdx, r.ip, r.ipIdx, r.detail, r.sealed, r.mac); err != nil {
		return fmt.Errorf("governance: audit %s: %w", e.Name, err)
	}
	return nil
}

// accountIndex is the blind index the log names an account by.
func (a *Audit) accountIndex(accountID string) string { return a.index.Of(accountIndexKind, accountID) }

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
		`SELECT at, event, ip, detail, sealed FROM audit_log WHERE account_idx = $1 ORDER BY id DESC LIMIT $2`, a.accountIndex(accountID), limit)
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
	rows, err := q.QueryContext(ctx, `SELECT at, event, detail FROM audit_log WHERE ip_idx = $1 AND account_idx IS NULL AND account_id IS NULL
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

// SealLegacy brings the rows an earlier release wrote to this release's form, a batch
// at a time, and returns how many it changed: rows in plain text (sealed = 0) are
// sealed, an account's IP and detail under the account's key, an event without an
// account keeping only the blind index of its IP; and every row names its account by
// the blind index of its id instead of the id. Rows of an account without a key are
// deleted: its key is shredded first when it is erased. Such rows are never chained
// (the chainer waits for their final form), so no chained byte changes. It runs at
// start, after accounts are sealed (they get their keys), before the chainer.
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
		rows, err := tx.QueryContext(ctx, `SELECT id, account_id, ip, detail, sealed FROM audit_log
			WHERE (sealed = 0 OR account_id IS NOT NULL) AND seq IS NULL ORDER BY id LIMIT $1`, sealBatch)
		if err != nil {
			return err
		}
		type legacy struct {
			id         int64
			account    sql.NullString
			ip, detail string
			sealed     int
		}
		var all []legacy
		for rows.Next() {
			var r legacy
			if err := rows.Scan(&r.id, &r.account, &r.ip, &r.detail, &r.sealed); err != nil {
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
			if r.sealed == 0 {
				r.ip, r.detail = key.SealText(labelIP, r.ip), key.SealText(labelDetail, r.detail)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET ip = $1, detail = $2, sealed = 1, account_idx = $3, account_id = NULL WHERE id = $4`,
				r.ip, r.detail, a.accountIndex(r.account.String), r.id); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

var auditTable = datamap.Table{Name: "audit_log", Subject: "account_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "row number"},
	{Name: "at", NotPersonal: "time of the event", Time: true},
	{Name: "event", NotPersonal: "name of a fixed event type"},
	{Name: "account_id", Categories: []string{"user.unique_id"},
		Plain: "a random id, only in rows an earlier release wrote, until the start replaces it with account_idx; empty since"},
	{Name: "account_idx", Categories: []string{"user.unique_id"}, Withheld: "a keyed hash of your account's id, meaningless without the deployment's key",
		Plain: "a keyed hash (blind index) of the id of the account whose key seals the row: the entry's bytes stay as chained when " +
			"the account is erased (its key is shredded), and no plain id is kept"},
	// Sealed in an account's rows; empty in rows without an account, which keep ip_idx.
	{Name: "ip", Categories: []string{"user.device.ip_address"}, Sealed: true},
	// Sealed in an account's rows; a fixed text in rows without an account.
	{Name: "detail", Categories: []string{"system.operations"}, Sealed: true},
	{Name: "ip_idx", Categories: []string{"user.device.ip_address"},
		Plain: "a keyed hash (blind index) of the IP of an event without an account (a failed login for an unknown address), " +
			"so staff can find what an address did; empty in an account's rows"},
	{Name: "sealed", NotPersonal: "whether the row is in the sealed form (an earlier release's rows are sealed at start)"},
	{Name: "mac", NotPersonal: "the entry's MAC under the audit key, written with it (tamper evidence)", Withheld: "integrity data of the log"},
	{Name: "seq", NotPersonal: "the entry's place in the hash chain"},
	{Name: "hash", NotPersonal: "the entry's hash in the chain (tamper evidence)", Withheld: "integrity data of the log"},
}}

var checkpointTable = datamap.Table{Name: "audit_checkpoints", Columns: []datamap.Column{
	{Name: "seq", NotPersonal: "the chain's head at the checkpoint"},
	{Name: "hash", NotPersonal: "the head's hash"},
	{Name: "at", NotPersonal: "time of the checkpoint", Time: true},
	{Name: "key_id", NotPersonal: "names the audit key that signed it"},
	{Name: "signature", NotPersonal: "Ed25519 signature of the head"},
}}

// AuditHolder is the audit log's entry in the data map. Index finds a member's
// entries by the blind index of their id.
type AuditHolder struct{ Index *vault.Index }

// Declaration describes the audit log.
func (AuditHolder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name: "audit_log",
		Description: "Security events of the account: logins, failed logins, password and session changes, " +
			"and what staff did with it. The log is tamper-evident (a hash chain with signed checkpoints).",
		Purpose:     "Protect accounts against takeover, investigate security incidents, and answer for staff actions.",
		LawfulBasis: "legitimate_interest",
		Retention: "Entries are kept: an erasure shreds the account's key, after which their IP and detail cannot be read " +
			"and only a keyed hash of the account's id remains, so the log stays verifiable.",
		Tables: []datamap.Table{auditTable, checkpointTable, verificationTable},
	}
}

// Export returns the subject's audit entries, opened with the subject's key.
func (h AuditHolder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	if h.Index == nil {
		return nil, errors.New("governance: audit export: no blind index")
	}
	sec, err := s.Select(ctx, q, auditTable, "account_idx = $1 ORDER BY id", h.Index.Of(accountIndexKind, s.ID))
	return []datamap.Section{sec}, err
}

// Erase leaves the subject's chained entries as they are: the vault's step shreds
// the key their IP and detail are sealed under, and they name the account only by a
// keyed hash, so no byte of the chain changes. It deletes only rows an earlier
// release wrote with the plain id that the start has not yet converted (never chained).
func (AuditHolder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE account_id = $1 AND seq IS NULL`, s.ID)
	return err
}

// Listed is an entry of the audit log as the auditor's list shows it: an account is
// named only by the start of its blind index, and an account's detail stays sealed
// (its key is the member's; the auditor reads what happened and when, not about whom).
type Listed struct {
	ID      int64
	Seq     int64 // its place in the chain; 0 while unchained
	At      time.Time
	Event   string
	Account string // the first characters of the account's blind index, "" for none
	Detail  string // the fixed detail of an event without an account; "" when sealed
	Hash    string
}

// List returns a page of the audit log, newest first, and how many entries there are.
func (a *Audit) List(ctx context.Context, q store.Querier, offset, limit int) ([]Listed, int, error) {
	var total int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("governance: audit list: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT id, seq, at, event, account_idx, detail, sealed, hash FROM audit_log
		ORDER BY id DESC LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("governance: audit list: %w", err)
	}
	defer rows.Close()
	var out []Listed
	for rows.Next() {
		var e Listed
		var seq sql.NullInt64
		var at int64
		var idx, hash sql.NullString
		var sealed int
		if err := rows.Scan(&e.ID, &seq, &at, &e.Event, &idx, &e.Detail, &sealed, &hash); err != nil {
			return nil, 0, fmt.Errorf("governance: audit list: %w", err)
		}
		e.Seq, e.At, e.Hash = seq.Int64, store.FromMillis(at), hash.String
		if idx.Valid {
			e.Account = idx.String[:min(12, len(idx.String))]
			e.Detail = ""
		} else if sealed == 0 {
			e.Detail = "" // an earlier release's row, not sealed yet: shown once it is
		}
		out = append(out, e)
	}
	return out, total, rows.Err()
}
