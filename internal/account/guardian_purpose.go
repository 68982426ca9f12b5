package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/governance"
	stmail "steward/internal/mail"
	"steward/internal/store"
)

// purposeGuardianPurpose prefixes the tokens of a guardian's agreement to one purpose
// a child chose: the token's purpose is this and the purpose's key. While such a token
// is valid, the purpose waits for the guardian.
const purposeGuardianPurpose = "guardian_purpose:"

// guardianPurposeTTL is how long a guardian may take to agree to a child's choice.
const guardianPurposeTTL = 14 * 24 * time.Hour

// AskedPurpose is a purpose a child chose that waits for the guardian.
type AskedPurpose struct {
	Key, Name, Description string
}

// ErrNoGuardian refuses what needs a guardian's agreement for an account whose
// guardian never agreed to it.
var ErrNoGuardian = apperr.New(apperr.Conflict, "guardian_not_confirmed",
	"no parent or guardian has agreed to this account: they cannot be asked")

// AskGuardianForPurposes mails a child's guardian, who agreed to the account, a link
// per purpose to agree to what the child chose; until the guardian agrees, the
// purpose stays not granted. Asking again replaces the earlier link.
func (s *Service) AskGuardianForPurposes(ctx context.Context, accountID string, purposes []AskedPurpose, meta Meta) error {
	if len(purposes) == 0 {
		return nil
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.askGuardianPurposes(ctx, tx, accountID, purposes, meta)
	})
}

func (s *Service) askGuardianPurposes(ctx context.Context, tx *store.Tx, accountID string, purposes []AskedPurpose, meta Meta) error {
	c, err := s.guardianContact(ctx, tx, accountID)
	if err != nil {
		return err
	}
	if c.guardian == "" || !c.confirmed {
		return ErrNoGuardian
	}
	email, name, guardian := c.child, c.name, c.guardian
	if name == "" {
		name = "Your child"
	}
	for _, p := range purposes {
		token, err := s.issueToken(ctx, tx, accountID, purposeGuardianPurpose+p.Key, guardianPurposeTTL)
		if err != nil {
			return err
		}
		if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: accountID, To: guardian, Template: stmail.GuardianPurpose,
			Data: map[string]string{"ChildName": name, "ChildEmail": email, "PurposeName": p.Name, "PurposeDescription": p.Description,
				"Link": s.link("/guardian/purpose", token)}}); err != nil {
			return err
		}
	}
	return s.audit.Record(ctx, tx, governance.Event{Name: "guardian_asked", AccountID: accountID, IP: meta.IP,
		Detail: fmt.Sprintf("%d purposes", len(purposes))})
}

// HoldForGuardian is asked, in the transaction that confirms a subscription, whether
// the confirmed address (its blind index) is a child's account, whose own consent does
// not cover marketing (P-CHILD-3). If it is, the opt-in waits: the guardian who agreed
// to the account is mailed a link to agree to purpose (unless a link for it is
// pending), and HoldForGuardian reports true, so nothing is granted now. An address
// that is no account's, or an adult's, is not held.
func (s *Service) HoldForGuardian(ctx context.Context, tx *store.Tx, addressHash string, purpose AskedPurpose) (bool, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM accounts WHERE email_idx = $1 AND email_verified_at IS NOT NULL`, addressHash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("account: guardian hold: %w", err)
	}
	p, err := s.Profile(ctx, id)
	if errors.Is(err, errNoAccount) || apperr.KindOf(err) == apperr.NotFound {
		return false, nil
	}
	if err != nil || !s.Minor(p) {
		return false, err
	}
	var waiting int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM account_tokens WHERE account_id = $1 AND purpose = $2 AND expires_at >= $3`,
		id, purposeGuardianPurpose+purpose.Key, store.Millis(s.now())).Scan(&waiting); err != nil {
		return false, fmt.Errorf("account: guardian hold: %w", err)
	}
	if waiting > 0 || !p.GuardianConfirmed {
		return true, nil // asked already, or no guardian to ask: held all the same
	}
	return true, s.askGuardianPurposes(ctx, tx, id, []AskedPurpose{purpose}, Meta{})
}

// CancelGuardianPurposes withdraws the child's asks for these purposes: their links
// stop working, so a guardian cannot agree to what the child no longer wants.
func (s *Service) CancelGuardianPurposes(ctx context.Context, accountID string, purposes []string) error {
	for _, k := range purposes {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM account_tokens WHERE account_id = $1 AND purpose = $2`,
			accountID, purposeGuardianPurpose+k); err != nil {
			return fmt.Errorf("account: guardian purpose: %w", err)
		}
	}
	return nil
}

// PurposesAwaitingGuardian returns the keys of the purposes the child chose that wait
// for the guardian's agreement.
func (s *Service) PurposesAwaitingGuardian(ctx context.Context, accountID string) ([]string, error) {
	purposes, err := store.Strings(ctx, s.db, `SELECT purpose FROM account_tokens
		WHERE account_id = $1 AND purpose LIKE 'guardian_purpose:%' AND expires_at >= $2 ORDER BY purpose`,
		accountID, store.Millis(s.now()))
	if err != nil {
		return nil, fmt.Errorf("account: guardian purpose: %w", err)
	}
	for i, p := range purposes {
		purposes[i] = strings.TrimPrefix(p, purposeGuardianPurpose)
	}
	return purposes, nil
}

// GuardianPurposeRequest is what a guardian's link asks: the child's agreement to a
// purpose.
type GuardianPurposeRequest struct {
	AccountID  string
	ChildName  string
	ChildEmail string
	Purpose    string // the purpose's key
}

// GuardianPurposeFor shows what a guardian's link asks, without using it.
func (s *Service) GuardianPurposeFor(ctx context.Context, token string) (GuardianPurposeRequest, error) {
	if token == "" {
		return GuardianPurposeRequest{}, errBadToken
	}
	var out GuardianPurposeRequest
	var purpose string
	var expires int64
	err := s.db.QueryRowContext(ctx, `SELECT account_id, purpose, expires_at FROM account_tokens
		WHERE id = $1 AND purpose LIKE 'guardian_purpose:%'`, hashToken(token)).Scan(&out.AccountID, &purpose, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && s.now().UnixMilli() > expires) {
		return out, errBadToken
	}
	if err != nil {
		return out, fmt.Errorf("account: guardian purpose: %w", err)
	}
	p, err := s.Profile(ctx, out.AccountID)
	if err != nil {
		return out, fmt.Errorf("account: guardian purpose: %w", err)
	}
	out.ChildName, out.ChildEmail, out.Purpose = p.Name, p.Email, strings.TrimPrefix(purpose, purposeGuardianPurpose)
	return out, nil
}

// CloseGuardianPurpose uses up a guardian's link once the answer is recorded, and
// audits the answer. A link a concurrent answer used already is no error: the answer
// was recorded once, by the ledger's own rule that a repeated decision changes nothing.
func (s *Service) CloseGuardianPurpose(ctx context.Context, req GuardianPurposeRequest, token string, agreed bool, meta Meta) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE id = $1`, hashToken(token)); err != nil {
			return fmt.Errorf("account: guardian purpose: %w", err)
		}
		name := "guardian_purpose_declined"
		if agreed {
			name = "guardian_purpose_agreed"
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: name, AccountID: req.AccountID, IP: meta.IP, Detail: req.Purpose})
	})
}

// guardianContact is what a mail to a child's guardian needs: the child's address and
// name and the guardian's address, opened, and whether and since when the guardian
// was asked.
type guardianContact struct {
	child, name, guardian string
	created               int64 // the registration's time, Unix milliseconds
	confirmed             bool  // the guardian agreed to the account
}

// guardianContact reads an account's guardianContact in tx.
func (s *Service) guardianContact(ctx context.Context, tx *store.Tx, id string) (guardianContact, error) {
	var c guardianContact
	err := tx.QueryRowContext(ctx, `SELECT email, COALESCE(name, ''), COALESCE(guardian_email, ''), created_at,
		guardian_confirmed_at IS NOT NULL FROM accounts WHERE id = $1`, id).Scan(&c.child, &c.name, &c.guardian, &c.created, &c.confirmed)
	if errors.Is(err, sql.ErrNoRows) {
		return c, errNoAccount
	}
	if err != nil {
		return c, fmt.Errorf("account: guardian: %w", err)
	}
	key, err := s.vault.KeyIn(ctx, tx, id, false)
	if err != nil {
		return c, fmt.Errorf("account: guardian: %w", err)
	}
	for _, f := range []struct {
		label string
		v     *string
	}{{labelEmail, &c.child}, {labelName, &c.name}, {labelGuardianEmail, &c.guardian}} {
		if *f.v, err = key.OpenText(f.label, *f.v); err != nil {
			return c, fmt.Errorf("account: guardian: %w", err)
		}
	}
	return c, nil
}
