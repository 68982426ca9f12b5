// Package newsletter owns the people Steward mails for marketing, with or without an
// account: subscriptions with double opt-in, the suppression list of keyed address
// hashes, imports, and campaigns that send only to whom the consent ledger allows, each
// mail with a signed one-click opt-out. Its tables are subscribers, subscriber_tokens,
// suppressions, campaigns, campaign_deliveries, campaign_opens, mailable (whom each
// purpose may mail now) and subscribers_unsealed (rows of an earlier release still to
// seal). A subscriber's address, names and company, and a link's evidence, are sealed
// under the data key of the subscriber's subject: its own id, or the account's once
// the address is proven a member's; lookups by address go through its blind index.
package newsletter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/datamap"
	"steward/internal/mail"
	"steward/internal/ratelimit"
	"steward/internal/store"
	"steward/internal/text"
	"steward/internal/vault"
)

// Subscriber states.
const (
	StatusPending   = "pending"
	StatusConfirmed = "confirmed"
)

// Purpose is the purpose a subscription consents to.
const Purpose = "newsletter"

// confirmTTL is how long a confirmation link works.
const confirmTTL = 7 * 24 * time.Hour

// Service is the newsletter capability.
type Service struct {
	db      *store.DB
	outbox  *mail.Outbox
	consent *consent.Service
	members Accounts // whose address an address is
	sender  mail.BulkSender
	key     []byte
	baseURL string
	site    string // the site's name, in the campaigns' layout
	unsub   string // the unsubscribe address's domain
	now     func() time.Time
	log     *slog.Logger
	group   groupCommit
	index   *vault.Index
	vault   *vault.Vault
	// limits holds the bucket per address of the confirmation links mailed for
	// unauthenticated unsubscribe mail.
	limits *ratelimit.Buckets
	// tagSites are the operator's own sites (hosts): links to them in a campaign carry
	// its UTM parameters (utm.go).
	tagSites map[string]bool
	// sendBudget is how long one run of Send works (0: defaultSendBudget).
	sendBudget time.Duration
	// importRead and importStoring, when set (by tests), run when an import's batch
	// has been read and checked, and within the transaction that stores it, once the
	// count of suppressions was read.
	importRead, importStoring func()
}

// Config is what the service needs to know.
type Config struct {
	Key               []byte // keys opt-out tokens
	Index             *vault.Index
	Vault             *vault.Vault // seals subscribers' values under their subjects' keys
	BaseURL           string
	SiteName          string // shown in the campaigns' layout ("Steward" when empty)
	UnsubscribeDomain string
	Accounts          Accounts // whose address an unsubscribe mail came from
	// Limits holds how many confirmation links each address was mailed.
	Limits *ratelimit.Buckets
	// TagSites are the operator's own sites (--analytics-sites): a campaign's links to
	// them carry utm_source=newsletter, utm_medium=email and the campaign's slug.
	TagSites []string
}

// New returns the newsletter service.
func New(db *store.DB, outbox *mail.Outbox, c *consent.Service, sender mail.BulkSender, cfg Config, now func() time.Time, log *slog.Logger) *Service {
	m := hmac.New(sha256.New, cfg.Key)
	m.Write([]byte("steward newsletter v1"))
	s := &Service{db: db, outbox: outbox, consent: c, members: cfg.Accounts, sender: sender, key: m.Sum(nil), index: cfg.Index, vault: cfg.Vault, baseURL: cfg.BaseURL,
		unsub: cfg.UnsubscribeDomain, limits: cfg.Limits, now: now, log: log, site: cfg.SiteName}
	if s.site == "" {
		s.site = "Steward"
	}
	s.tagSites = map[string]bool{}
	for _, h := range cfg.TagSites {
		s.tagSites[strings.ToLower(strings.TrimSpace(h))] = true
	}
	// SQLite has one writer: one batch at a time. PostgreSQL commits several at once.
	s.group.max = 1
	if db.Dialect == store.Postgres {
		s.group.max = 4
	}
	return s
}

// AddressHash is the keyed hash under which an address is suppressed: its blind index.
func (s *Service) AddressHash(email string) string { return s.index.Address(email) }

func (s *Service) newID() string { return store.SortedID(s.now()) }

// Subscription is what the form and the API take.
type Subscription struct {
	FirstName string
	LastName  string
	Email     string
	Company   string
}

func checkName(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && required:
		return "", apperr.Field(field, "required", "is required")
	case strings.ContainsAny(v, "<>"):
		return "", apperr.Field(field, "text_invalid", "must be plain text on one line")
	}
	return v, text.Line(field, v, 100)
}

func (sub Subscription) check() (Subscription, error) {
	var err error
	if sub.FirstName, err = checkName("first_name", sub.FirstName, false); err != nil {
		return sub, err
	}
	if sub.LastName, err = checkName("last_name", sub.LastName, false); err != nil {
		return sub, err
	}
	if sub.Company, err = checkName("company", sub.Company, false); err != nil {
		return sub, err
	}
	if sub.Email, err = account.ValidEmail("email", sub.Email); err != nil {
		return sub, err
	}
	return sub, nil
}

var errBadLink = apperr.Field("token", "token_invalid", "this link is invalid, used or expired")

// Confirm completes a double opt-in: the subscriber is confirmed and the consent to the
// newsletter is recorded, with the evidence of both the request and the confirmation.
// A fresh confirmation lifts an earlier unsubscribe's suppression of the address.
func (s *Service) Confirm(ctx context.Context, token string, evidence map[string]string) (Confirmation, error) {
	if token == "" {
		return Confirmation{}, errBadLink
	}
	sum := sha256.Sum256([]byte(token))
	var out Confirmation
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		out = Confirmation{}
		var subID, subject, hash, reqEv string
		var expires int64
		var wrapped []byte
		var epoch sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT t.subscriber_id, s.subject_id, s.email_hash, t.evidence, t.expires_at, `+vault.KeyColumns("k")+`
			FROM subscriber_tokens t JOIN subscribers s ON s.id = t.subscriber_id `+vault.KeyJoin("k", "s.subject_id")+`
			WHERE t.id = $1`, hex.EncodeToString(sum[:])).Scan(&subID, &subject, &hash, &reqEv, &expires, &wrapped, &epoch)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (s.now().UnixMilli() > expires || !epoch.Valid)) {
			return errBadLink // no key: the subscriber is being erased
		}
		if err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		key, err := s.vault.Unwrap(subject, wrapped, epoch.Int64)
		if err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		if reqEv, err = key.OpenText(labelEvidence, reqEv); err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscriber_tokens WHERE subscriber_id = $1`, subID); err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		now := store.Millis(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET status = $1, confirmed_at = COALESCE(confirmed_at, $2) WHERE id = $3`,
			StatusConfirmed, now, subID); err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM suppressions WHERE hash = $1 AND purpose IN ($2, '*')`, hash, Purpose); err != nil {
			return fmt.Errorf("newsletter: confirm: %w", err)
		}
		ev := map[string]string{}
		var req map[string]string
		if err := json.Unmarshal([]byte(reqEv), &req); err != nil {
			return fmt.Errorf("newsletter: confirm: the request's evidence: %w", err)
		}
		for k, v := range req {
			ev["request_"+k] = v
		}
		for k, v := range evidence {
			ev["confirm_"+k] = v
		}
		ev["method"] = "double opt-in"
		if s.members != nil {
			p, _ := s.consent.Register().Purpose(Purpose)
			held, err := s.members.HoldForGuardian(ctx, tx, hash, account.AskedPurpose{Key: p.Key, Name: p.Name, Description: p.Description})
			if err != nil {
				return err
			}
			if held {
				// The address is proven, but a child's own consent does not cover
				// marketing: nothing is granted until the guardian agrees.
				out.WaitsForGuardian = true
				return s.Refresh(ctx, tx, subject)
			}
		}
		if _, err := s.consent.RecordTx(ctx, tx, subject, Purpose, consent.Granted, consent.SourceEmailLink, ev); err != nil {
			return err
		}
		return s.Refresh(ctx, tx, subject)
	})
	return out, err
}

// Confirmation is what a confirmed subscription became.
type Confirmation struct {
	// WaitsForGuardian: the address is a child's, whose parent or guardian was asked
	// to agree; the newsletter is not sent until they do.
	WaitsForGuardian bool
}

// LinkAccount is called when an address is proven to be a member's (at registration
// or after an email change). A subscriber with that address and the member become one
// subject: the subscriber row, its links, deliveries, opens and consent ledger move to
// the account's id, its values are sealed again under the account's key, and the
// subscriber's own key is shredded. And the member's own place on the list follows
// their address: a row under an old address takes the new one (or, if the new address
// had a row of its own, gives way to it, handing on its confirmation), so campaigns
// reach the address the member uses now. It runs in tx, the transaction that proves
// the address, so the proof and the link commit together.
func (s *Service) LinkAccount(ctx context.Context, tx *store.Tx, accountID, email string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	hash := s.AddressHash(email)
	var id, subject, status string
	var owner sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT id, subject_id, status, account_id FROM subscribers WHERE email_hash = $1`, hash).
		Scan(&id, &subject, &status, &owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("newsletter: link: %w", err)
	}
	found := err == nil
	refresh := []string{accountID}
	if found && owner.Valid && owner.String != accountID {
		// Left by another account that had this address before (an address is one
		// account's at a time): that account's row, not a subscription to merge.
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscribers WHERE id = $1`, id); err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
		refresh = append(refresh, subject)
		found = false
	}
	// The member's rows under other addresses, a confirmed one first.
	var stale []string
	var staleConfirmed bool
	rows, err := tx.QueryContext(ctx, `SELECT id, status FROM subscribers WHERE subject_id = $1 AND email_hash <> $2
		ORDER BY CASE status WHEN 'confirmed' THEN 0 ELSE 1 END, id`, accountID, hash)
	if err != nil {
		return fmt.Errorf("newsletter: link: %w", err)
	}
	for rows.Next() {
		var sid, st string
		if err := rows.Scan(&sid, &st); err != nil {
			rows.Close()
			return fmt.Errorf("newsletter: link: %w", err)
		}
		stale = append(stale, sid)
		staleConfirmed = staleConfirmed || st == StatusConfirmed
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("newsletter: link: %w", err)
	}
	switch {
	case !found && len(stale) > 0:
		// The address changed: the member's row takes the new one, and a pending
		// confirmation link mailed to the old address stops working.
		key, err := s.vault.KeyIn(ctx, tx, accountID, true)
		if err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET email = $1, email_hash = $2 WHERE id = $3`,
			key.SealText(labelEmail, email), hash, stale[0]); err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscriber_tokens WHERE subscriber_id = $1`, stale[0]); err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
		stale = stale[1:]
	case found && subject != accountID:
		if err := s.moveSubject(ctx, tx, subject, accountID); err != nil {
			return err
		}
		refresh = append(refresh, subject)
	}
	if found && staleConfirmed && status != StatusConfirmed {
		// The member was on the list under the old address; the new one is verified.
		if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET status = $1, confirmed_at = $2 WHERE id = $3`,
			StatusConfirmed, store.Millis(s.now()), id); err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
	}
	for _, sid := range stale {
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscribers WHERE id = $1`, sid); err != nil {
			return fmt.Errorf("newsletter: link: %w", err)
		}
	}
	return s.Refresh(ctx, tx, refresh...)
}

// EnsureMember gives a member who opts in to marketing from the preferences page a
// place on the mailing list (their address is verified: no second opt-in). A
// subscription already filed under the address becomes the member's, as LinkAccount
// does: its values are sealed again under the account's key. It runs in tx, the
// transaction of the opt-in.
func (s *Service) EnsureMember(ctx context.Context, tx *store.Tx, accountID, email, name string) error {
	first, last, _ := strings.Cut(strings.TrimSpace(name), " ")
	email = strings.ToLower(strings.TrimSpace(email))
	hash := s.AddressHash(email)
	var id, subject string
	var owner sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT id, subject_id, account_id FROM subscribers WHERE email_hash = $1`, hash).Scan(&id, &subject, &owner)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("newsletter: member: %w", err)
	}
	refresh := []string{accountID}
	if err == nil && owner.Valid && owner.String != accountID {
		// Another account's row, left from when the address was theirs.
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscribers WHERE id = $1`, id); err != nil {
			return fmt.Errorf("newsletter: member: %w", err)
		}
		refresh = append(refresh, subject)
		err = sql.ErrNoRows
	}
	now := store.Millis(s.now())
	switch {
	case err != nil:
		key, err := s.vault.KeyIn(ctx, tx, accountID, true)
		if err != nil {
			return fmt.Errorf("newsletter: member: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company,
			status, account_id, source, created_at, confirmed_at) VALUES ($1, $2, $3, $4, $5, $6, '', $7, $2, 'account', $8, $8)`,
			s.newID(), accountID, key.SealText(labelEmail, email), hash, key.SealText(labelFirstName, first),
			key.SealText(labelLastName, last), StatusConfirmed, now); err != nil {
			return fmt.Errorf("newsletter: member: %w", err)
		}
		return s.Refresh(ctx, tx, refresh...)
	case subject != accountID:
		if err := s.moveSubject(ctx, tx, subject, accountID); err != nil {
			return err
		}
		refresh = append(refresh, subject)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET status = $1, account_id = $2, confirmed_at = COALESCE(confirmed_at, $3)
		WHERE id = $4`, StatusConfirmed, accountID, now, id); err != nil {
		return fmt.Errorf("newsletter: member: %w", err)
	}
	return s.Refresh(ctx, tx, refresh...)
}

// Suppress records, in tx, that the address must not be mailed for the purpose ("*":
// any), and refreshes whom the list may mail.
func (s *Service) Suppress(ctx context.Context, tx *store.Tx, email, purpose, reason string) error {
	return s.suppressAddress(ctx, tx, s.AddressHash(email), purpose, reason)
}

// suppressAddress is Suppress for an address known by its blind index.
func (s *Service) suppressAddress(ctx context.Context, tx *store.Tx, hash, purpose, reason string) error {
	if err := s.suppressHash(ctx, tx, hash, purpose, reason); err != nil {
		return err
	}
	ids, err := store.Strings(ctx, tx, `SELECT subject_id FROM subscribers WHERE email_hash = $1`, hash)
	if err != nil {
		return fmt.Errorf("newsletter: refresh: %w", err)
	}
	return s.Refresh(ctx, tx, ids...)
}

// suppressHash records a suppression without the refresh: the caller refreshes the
// subjects it touches. It raises the count of suppressions made, holding the lock that
// an import's transaction shares while it relies on that count: an import that checked
// its batch before this suppression either sees the count change and checks again, or
// commits first, and then the refresh takes its new subscriber off the list.
func (s *Service) suppressHash(ctx context.Context, tx *store.Tx, hash, purpose, reason string) error {
	if err := tx.Lock(ctx, suppressionsCounter, false); err != nil {
		return fmt.Errorf("newsletter: suppress: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO suppressions (hash, purpose, reason, at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (hash, purpose) DO UPDATE SET reason = excluded.reason, at = excluded.at`,
		hash, purpose, reason, store.Millis(s.now()))
	if err != nil {
		return fmt.Errorf("newsletter: suppress: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE change_counters SET value = value + 1 WHERE name = $1`, suppressionsCounter); err != nil {
		return fmt.Errorf("newsletter: suppress: %w", err)
	}
	return nil
}

// Suppressed reports whether the address may not be mailed for the purpose.
func (s *Service) Suppressed(ctx context.Context, email, purpose string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM suppressions WHERE hash = $1 AND purpose IN ($2, '*')`,
		s.AddressHash(email), purpose).Scan(&n); err != nil {
		return false, fmt.Errorf("newsletter: suppressed: %w", err)
	}
	return n > 0, nil
}

// Lookup finds a subscriber (without an account) by address, for the command line.
func (s *Service) Lookup(ctx context.Context, email string) (string, error) {
	var subject string
	err := s.db.QueryRowContext(ctx, `SELECT subject_id FROM subscribers WHERE email_hash = $1`, s.AddressHash(email)).Scan(&subject)
	if errors.Is(err, sql.ErrNoRows) {
		return "", apperr.New(apperr.NotFound, "subscriber_not_found", "no subscriber with that address")
	}
	if err != nil {
		return "", fmt.Errorf("newsletter: lookup: %w", err)
	}
	return subject, nil
}

// Subject is the data-map subject of a subscriber without an account, found by
// address (the command line's export and erasure): its id, the address it is known
// by, and its data key, which opens what is sealed for an export.
func (s *Service) Subject(ctx context.Context, email string) (datamap.Subject, error) {
	id, err := s.Lookup(ctx, email)
	if err != nil {
		return datamap.Subject{}, err
	}
	subj := datamap.Subject{ID: id, Email: strings.ToLower(strings.TrimSpace(email))}
	key, err := s.vault.KeyIn(ctx, s.db, id, false)
	switch {
	case err == nil:
		subj.Key = key
	case !errors.Is(err, vault.ErrNoKey): // none: being erased, or not sealed yet (an export says so)
		return datamap.Subject{}, fmt.Errorf("newsletter: subject: %w", err)
	}
	return subj, nil
}
