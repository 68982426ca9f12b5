package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"steward/internal/store"
	"steward/internal/vault"
)

// guardianIndex is the blind index of a guardian's address (the same as an account's
// email_idx, so that the guardian's account finds the child), or NULL for none.
func (s *Service) guardianIndex(guardian string) any {
	if guardian == "" {
		return nil
	}
	return s.index.Address(guardian)
}

// IndexGuardians fills the guardian index of the accounts registered before it
// existed, each in a transaction of its own, and returns how many it indexed. It runs
// at start, before requests are served.
func (s *Service) IndexGuardians(ctx context.Context) (int, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts WHERE guardian_email IS NOT NULL AND guardian_idx IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("account: guardian index: %w", err)
	}
	n := 0
	for _, id := range ids {
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			var sealed string
			err := tx.QueryRowContext(ctx, `SELECT guardian_email FROM accounts WHERE id = $1 AND guardian_email IS NOT NULL AND guardian_idx IS NULL`, id).
				Scan(&sealed)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // indexed, or erased, since
			}
			if err != nil {
				return err
			}
			key, err := s.vault.KeyIn(ctx, tx, id, false)
			if errors.Is(err, vault.ErrNoKey) {
				return nil // being erased: its key is gone, and the account row goes next
			}
			if err != nil {
				return err
			}
			guardian, err := key.OpenText(labelGuardianEmail, sealed)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET guardian_idx = $1 WHERE id = $2`, s.guardianIndex(guardian), id); err != nil {
				return err
			}
			n++
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("account: guardian index of %s: %w", id, err)
		}
	}
	return n, nil
}

// Children returns the children whose guardian the account is: the active accounts,
// still below the age of consent, that named its confirmed address as their
// guardian's and whose registration the guardian agreed to. An address not yet
// confirmed is nobody's guardian, and a guardian's authority ends when the child comes
// of age (or the account is being erased).
func (s *Service) Children(ctx context.Context, guardianID string) ([]Profile, error) {
	g, err := s.Profile(ctx, guardianID)
	if err != nil {
		return nil, err
	}
	return s.ChildrenOf(ctx, g)
}

// ChildrenOf is Children for a guardian whose profile the caller holds already.
func (s *Service) ChildrenOf(ctx context.Context, g Profile) ([]Profile, error) {
	guardianID := g.ID
	if !g.EmailVerified {
		return nil, nil
	}
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts WHERE guardian_idx = $1 AND guardian_confirmed_at IS NOT NULL
		AND id <> $2 ORDER BY created_at, id`, s.index.Address(g.Email), guardianID)
	if err != nil {
		return nil, fmt.Errorf("account: children: %w", err)
	}
	out := make([]Profile, 0, len(ids))
	for _, id := range ids {
		p, err := s.Profile(ctx, id)
		if errors.Is(err, errNoAccount) {
			continue // erased since
		}
		if err != nil {
			return nil, err
		}
		if p.Status != Active || !s.Minor(p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Child returns a child of the guardian's, or the same "no such account" as for an
// account that does not exist.
func (s *Service) Child(ctx context.Context, guardianID, childID string) (Profile, error) {
	children, err := s.Children(ctx, guardianID)
	if err != nil {
		return Profile{}, err
	}
	for _, c := range children {
		if c.ID == childID {
			return c, nil
		}
	}
	return Profile{}, errNoAccount
}
