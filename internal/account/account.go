// Package account owns members' accounts: registration with the operator's mandatory
// and optional fields, the age gate and guardian consent, email verification, login
// with argon2id, server-side sessions, password reset, and the profile with per-field
// public visibility. Its tables are accounts, sessions, account_tokens and
// account_addresses (blind indexes of the addresses each account proved).
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"time"

	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// Status is the state of an account.
type Status string

// Account states. A new account waits for email verification and, for a child, for the
// guardian; only an active account can log in. Erasing is set when deletion starts.
const (
	PendingVerification Status = "pending_verification"
	PendingGuardian     Status = "pending_guardian"
	Active              Status = "active"
	Erasing             Status = "erasing"
)

// Token lifetimes.
const (
	verifyTTL   = 48 * time.Hour
	guardianTTL = 14 * 24 * time.Hour
	resetTTL    = time.Hour
	// unverifiedTTL is how long a registration may wait for its address to be confirmed
	// (the link lasts 48 hours; a new one can be asked for by registering again).
	unverifiedTTL = 7 * 24 * time.Hour
)

// Token purposes.
const (
	purposeVerify   = "verify"
	purposeGuardian = "guardian"
	purposeReset    = "reset"
	// purposeEmailChange confirms a new address; the old one stays until then.
	purposeEmailChange = "email_change"
)

// Settings are the parts of the configuration the service needs.
type Settings struct {
	BaseURL    string
	Argon2     Argon2
	SessionTTL time.Duration
	// A session that passed the second factor ends StaffSessionTTL after that, or
	// after StaffSessionIdle without a request; ReauthWindow is how long a password
	// or code given counts for a sensitive action.
	StaffSessionTTL, StaffSessionIdle, ReauthWindow time.Duration
	Fields                                          map[string]config.Requirement
	AgeOfConsent                                    func(country string) int
}

// Meta describes the request that asks for something: where from, with what browser.
type Meta struct {
	IP        string
	UserAgent string
}

// Hooks are what the account capability calls in others.
type Hooks struct {
	// Verified runs when an address is proven to be the member's (the newsletter
	// links a subscriber with the same address to the account). It runs in the
	// transaction that proves the address, so the link commits with the proof.
	Verified func(ctx context.Context, tx *store.Tx, accountID, email string) error
	// Erase erases a subject through every holder of the data map (the rights
	// capability), when a guardian declines.
	Erase func(ctx context.Context, subjectID, source string) error
	// Rectified runs when the member changed fields of the profile (the processors
	// that hold them are told): fields are the new values ("" for a field cleared),
	// requestID the privacy request the change answers, if any. It runs in the
	// change's transaction; a new address runs it when confirmed, before the old
	// address is replaced.
	Rectified func(ctx context.Context, tx *store.Tx, accountID string, fields map[string]string, requestID string) error
	// Registered runs in the transaction that creates an account (the member accepts
	// the privacy policy in effect: the policy register records it).
	Registered func(ctx context.Context, tx *store.Tx, accountID string) error
}

// Service is the account capability.
type Service struct {
	db              *store.DB
	outbox          *mail.Outbox
	audit           *governance.Audit
	set             Settings
	now             func() time.Time
	common          map[string]bool
	dummy           string // a hash to verify against when no account matches, for equal timing
	sessStmt        *sql.Stmt
	profileStmt     *sql.Stmt
	sessProfileStmt *sql.Stmt
	eraser          func(ctx context.Context, subjectID, source string) error
	rectified       func(ctx context.Context, tx *store.Tx, accountID string, fields map[string]string, requestID string) error
	vault           *vault.Vault
	index           *vault.Index
	slots           chan struct{} // bounds concurrent password hashing
	slotWait        time.Duration // how long a password check waits for a slot
	verified        func(ctx context.Context, tx *store.Tx, accountID, email string) error
	registered      func(ctx context.Context, tx *store.Tx, accountID string) error
}

// New prepares the service's statements; a typo in them fails here.
func New(ctx context.Context, db *store.DB, outbox *mail.Outbox, audit *governance.Audit, v *vault.Vault, index *vault.Index,
	set Settings, hooks Hooks, now func() time.Time) (*Service, error) {
	s := &Service{db: db, outbox: outbox, audit: audit, vault: v, index: index, set: set, now: now, common: commonPasswords(),
		slots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), slotWait: slotWait, verified: hooks.Verified, eraser: hooks.Erase, rectified: hooks.Rectified,
		registered: hooks.Registered}
	s.dummy = dummyHash(set.Argon2)
	var err error
	s.sessStmt, err = db.Prepare(ctx, `SELECT account_id, expires_at, last_seen_at, second_factor_at, reauth_at FROM sessions WHERE id = $1`)
	if err != nil {
		return nil, err
	}
	if s.profileStmt, err = db.Prepare(ctx, profileQuery); err != nil {
		return nil, err
	}
	if s.sessProfileStmt, err = db.Prepare(ctx, sessionProfileQuery); err != nil {
		return nil, err
	}
	return s, nil
}

// newToken returns a random token for a link or a session and the hash stored for it.
func newToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newID returns a random account id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Service) link(path, token string) string {
	return s.set.BaseURL + path + "?token=" + token
}

// issueToken stores a one-time token for the account, replacing any earlier one of
// the same purpose, and returns it.
func (s *Service) issueToken(ctx context.Context, tx *store.Tx, accountID, purpose string, ttl time.Duration) (string, error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE account_id = $1 AND purpose = $2`, accountID, purpose); err != nil {
		return "", fmt.Errorf("account: token: %w", err)
	}
	token, hash := newToken()
	now := s.now()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO account_tokens (id, account_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hash, accountID, purpose, store.Millis(now), store.Millis(now.Add(ttl))); err != nil {
		return "", fmt.Errorf("account: token: %w", err)
	}
	return token, nil
}

var errBadToken = apperr.Field("token", "token_invalid", "this link is invalid, used or expired")

// peekToken returns the account of a valid token without using it up.
func (s *Service) peekToken(ctx context.Context, q store.Querier, token, purpose string) (string, error) {
	if token == "" {
		return "", errBadToken
	}
	var accountID string
	var expires int64
	err := q.QueryRowContext(ctx,
		`SELECT account_id, expires_at FROM account_tokens WHERE id = $1 AND purpose = $2`, hashToken(token), purpose).
		Scan(&accountID, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && s.now().UnixMilli() > expires) {
		return "", errBadToken
	}
	if err != nil {
		return "", fmt.Errorf("account: token: %w", err)
	}
	return accountID, nil
}

// useToken checks a token and deletes it, in tx. Only the transaction whose delete
// removed the row has used it: a concurrent use read the same row, then waited for
// the first's delete and removed nothing.
func (s *Service) useToken(ctx context.Context, tx *store.Tx, token, purpose string) (string, error) {
	accountID, err := s.peekToken(ctx, tx, token, purpose)
	if err != nil {
		return "", err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE id = $1`, hashToken(token))
	if err != nil {
		return "", fmt.Errorf("account: token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", fmt.Errorf("account: token: %w", err)
	} else if n == 0 {
		return "", errBadToken
	}
	return accountID, nil
}

// Subject returns the data-map subject of an account: its address once verified, and
// the addresses it proved before. A registration never verified, like a change of
// address never confirmed, may have been made with someone else's address: it is only
// Pending. An address another account proved since is that account's now.
func (s *Service) Subject(ctx context.Context, accountID string) (datamap.Subject, error) {
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return datamap.Subject{}, err
	}
	key, err := s.vault.KeyIn(ctx, s.db, accountID, false)
	if err != nil {
		return datamap.Subject{}, fmt.Errorf("account: subject: %w", err)
	}
	subj := datamap.Subject{ID: accountID, Email: p.Email, Pending: p.PendingEmail, Key: key}
	if !p.EmailVerified {
		subj.Email, subj.Pending = "", p.Email
	}
	current := ""
	if subj.Email != "" {
		current = s.index.Address(subj.Email)
	}
	subj.Proven, err = store.Strings(ctx, s.db, `SELECT a.address_hash FROM account_addresses a
		WHERE a.account_id = $1 AND a.address_hash <> $2 AND NOT EXISTS (SELECT 1 FROM account_addresses b
			WHERE b.address_hash = a.address_hash AND b.account_id <> a.account_id AND b.proven_at > a.proven_at)
		ORDER BY a.address_hash`, accountID, current)
	if err != nil {
		return datamap.Subject{}, fmt.Errorf("account: subject: %w", err)
	}
	return subj, nil
}

// ErasureSubject returns the account as erasure knows it, without opening anything
// sealed (its key may be gone, or at an epoch this node no longer holds, in a
// database restored from a backup): its id and the blind indexes of every address it
// proved, the current one first if it is verified. An address another account proved
// since is that account's now.
func (s *Service) ErasureSubject(ctx context.Context, accountID string) (datamap.Subject, error) {
	var current sql.NullString
	var verified bool
	err := s.db.QueryRowContext(ctx, `SELECT email_idx, email_verified_at IS NOT NULL FROM accounts WHERE id = $1`, accountID).
		Scan(&current, &verified)
	if errors.Is(err, sql.ErrNoRows) {
		return datamap.Subject{}, errNoAccount
	}
	if err != nil {
		return datamap.Subject{}, fmt.Errorf("account: subject: %w", err)
	}
	subj := datamap.Subject{ID: accountID}
	cur := ""
	if verified && current.Valid {
		cur = current.String
		subj.Proven = append(subj.Proven, cur)
	}
	earlier, err := store.Strings(ctx, s.db, `SELECT a.address_hash FROM account_addresses a
		WHERE a.account_id = $1 AND a.address_hash <> $2 AND NOT EXISTS (SELECT 1 FROM account_addresses b
			WHERE b.address_hash = a.address_hash AND b.account_id <> a.account_id AND b.proven_at > a.proven_at)
		ORDER BY a.address_hash`, accountID, cur)
	if err != nil {
		return datamap.Subject{}, fmt.Errorf("account: subject: %w", err)
	}
	subj.Proven = append(subj.Proven, earlier...)
	return subj, nil
}

// proven records, in the transaction that proves it (a verification, a confirmed
// change), that the address is the account's: its blind index only. What follows from
// the proof (the verified hook) runs in the same transaction.
func (s *Service) proven(ctx context.Context, tx *store.Tx, accountID, email string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO account_addresses (account_id, address_hash, proven_at) VALUES ($1, $2, $3)
		ON CONFLICT (account_id, address_hash) DO UPDATE SET proven_at = excluded.proven_at`,
		accountID, s.index.Address(email), store.Millis(s.now())); err != nil {
		return fmt.Errorf("account: proven address: %w", err)
	}
	if s.verified == nil {
		return nil
	}
	return s.verified(ctx, tx, accountID, email)
}

// Lookup finds an account by email or id.
func (s *Service) Lookup(ctx context.Context, emailOrID string) (datamap.Subject, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT id FROM accounts WHERE id = $1 OR email_idx = $2`,
		emailOrID, s.index.Address(emailOrID)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return datamap.Subject{}, apperr.New(apperr.NotFound, "account_not_found", "no account with that email or id")
	}
	if err != nil {
		return datamap.Subject{}, fmt.Errorf("account: lookup: %w", err)
	}
	return s.Subject(ctx, id)
}

// Identifiers returns every identifier of the account a residue scan should look for.
func (s *Service) Identifiers(ctx context.Context, accountID string) ([]datamap.Term, error) {
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return nil, err
	}
	terms := []datamap.Term{{Kind: "id", Value: p.ID}, {Kind: "email", Value: p.Email}}
	add := func(kind, v string) {
		if v != "" {
			terms = append(terms, datamap.Term{Kind: kind, Value: v})
		}
	}
	add("name", p.Name)
	add("phone", p.Phone)
	add("home address", p.HomeAddress)
	add("business address", p.BusinessAddress)
	add("guardian email", p.GuardianEmail)
	add("pending email", p.PendingEmail)
	return terms, nil
}

// MarkErasing stops an account from being used while its erasure runs: it can no
// longer log in, every session ends and every pending link dies, so nothing new is
// written about the member behind the erasure's back.
func (s *Service) MarkErasing(ctx context.Context, tx *store.Tx, accountID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET status = $1 WHERE id = $2`, Erasing, accountID); err != nil {
		return fmt.Errorf("account: mark erasing: %w", err)
	}
	for _, q := range []string{`DELETE FROM sessions WHERE account_id = $1`, `DELETE FROM account_tokens WHERE account_id = $1`} {
		if _, err := tx.ExecContext(ctx, q, accountID); err != nil {
			return fmt.Errorf("account: mark erasing: %w", err)
		}
	}
	return nil
}

// Active reports whether the account exists and is active (not pending, not erasing).
func (s *Service) Active(ctx context.Context, accountID string) (bool, error) {
	var st Status
	err := s.db.QueryRowContext(ctx, `SELECT status FROM accounts WHERE id = $1`, accountID).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("account: active: %w", err)
	}
	return st == Active, nil
}

// SealLegacy seals the accounts an earlier release stored in plain text (their
// email_idx is NULL) and their sessions, each account in a transaction of its own,
// and returns how many it sealed. It runs at start, before requests are served.
func (s *Service) SealLegacy(ctx context.Context) (int, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts WHERE email_idx IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("account: seal: %w", err)
	}
	for _, id := range ids {
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			var email, birth, country string
			var pending, name, phone, home, business, guardian sql.NullString
			err := tx.QueryRowContext(ctx, `SELECT email, pending_email, name, phone, home_address, business_address, birthdate,
				country, guardian_email FROM accounts WHERE id = $1 AND email_idx IS NULL`, id).
				Scan(&email, &pending, &name, &phone, &home, &business, &birth, &country, &guardian)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			key, err := s.vault.KeyIn(ctx, tx, id, true)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET email = $1, email_idx = $2, pending_email = $3, name = $4, phone = $5,
				home_address = $6, business_address = $7, birthdate = $8, country = $9, guardian_email = $10, guardian_idx = $11 WHERE id = $12`,
				key.SealText(labelEmail, email), s.index.Address(email), key.SealOptional(labelEmail, pending.String),
				key.SealOptional(labelName, name.String), key.SealOptional(labelPhone, phone.String),
				key.SealOptional(labelHomeAddress, home.String), key.SealOptional(labelBusinessAddress, business.String),
				key.SealText(labelBirthdate, birth), key.SealText(labelCountry, country),
				key.SealOptional(labelGuardianEmail, guardian.String), s.guardianIndex(guardian.String), id); err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, `SELECT id, ip, user_agent FROM sessions WHERE account_id = $1`, id)
			if err != nil {
				return err
			}
			type sess struct{ id, ip, ua string }
			var all []sess
			for rows.Next() {
				var x sess
				if err := rows.Scan(&x.id, &x.ip, &x.ua); err != nil {
					rows.Close()
					return err
				}
				all = append(all, x)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, x := range all {
				if _, err := tx.ExecContext(ctx, `UPDATE sessions SET ip = $1, user_agent = $2 WHERE id = $3`,
					key.SealText(labelIP, x.ip), key.SealText(labelUserAgent, x.ua), x.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("account: seal %s: %w", id, err)
		}
	}
	return len(ids), nil
}
