package account

import (
	"context"
	"fmt"
	"time"

	stmail "steward/internal/mail"
	"steward/internal/store"
)

// What the retention rules (internal/retention) remove of the account's tables: each
// method selects or deletes by a cutoff the rule computes from its period.

// Abandoned returns the accounts whose registration was never completed: an address
// not confirmed since before, or a guardian who did not answer within the link's
// lifetime (and since before). They are erased, as the guardian mail promises.
func (s *Service) Abandoned(ctx context.Context, before time.Time) ([]string, error) {
	guardian := s.now().Add(-guardianTTL)
	if before.Before(guardian) {
		guardian = before
	}
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts WHERE (status = $1 AND created_at < $2) OR (status = $3 AND created_at < $4)`,
		PendingGuardian, store.Millis(guardian), PendingVerification, store.Millis(before))
	if err != nil {
		return nil, fmt.Errorf("account: abandoned: %w", err)
	}
	return ids, nil
}

// UnverifiedTTL is how long a registration waits for its address by default.
const UnverifiedTTL = unverifiedTTL

// DeleteExpired deletes the sessions and one-time links that expired before before,
// and returns how many. A session is also ended when it is next used after expiry;
// this removes those never used again.
func (s *Service) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		n = 0
		for _, q := range []string{`DELETE FROM sessions WHERE expires_at < $1`, `DELETE FROM account_tokens WHERE expires_at < $1`} {
			res, err := tx.ExecContext(ctx, q, store.Millis(before))
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("account: delete expired: %w", err)
	}
	return int(n), nil
}

// Inactivity is what the inactive-accounts rule asks of the accounts.
//
// An account is inactive since its last login (or, before one, its registration) when
// none of its sessions was used since either. A warned account that logs in or uses a
// session is warned no more (ClearReturned); one still inactive a while after its
// warning is due for erasure (WarnedBefore).

// Inactive returns the active accounts not used since before and not yet warned.
func (s *Service) Inactive(ctx context.Context, before time.Time) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts a WHERE status = $1 AND inactive_warned_at IS NULL
		AND COALESCE(last_login_at, created_at) < $2
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.account_id = a.id AND s.last_seen_at >= $2) ORDER BY id`,
		Active, store.Millis(before))
	if err != nil {
		return nil, fmt.Errorf("account: inactive: %w", err)
	}
	return ids, nil
}

// ClearReturned forgets the warning of every warned account used since its warning,
// and returns how many.
func (s *Service) ClearReturned(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE accounts SET inactive_warned_at = NULL WHERE inactive_warned_at IS NOT NULL
		AND (COALESCE(last_login_at, 0) > inactive_warned_at
		OR EXISTS (SELECT 1 FROM sessions s WHERE s.account_id = accounts.id AND s.last_seen_at > accounts.inactive_warned_at))`)
	if err != nil {
		return 0, fmt.Errorf("account: clear returned: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("account: clear returned: %w", err)
	}
	return int(n), nil
}

// WarnedBefore returns the active accounts warned before before and not used since
// their warning: due for erasure.
func (s *Service) WarnedBefore(ctx context.Context, before time.Time) ([]string, error) {
	ids, err := store.Strings(ctx, s.db, `SELECT id FROM accounts a WHERE status = $1 AND inactive_warned_at < $2
		AND COALESCE(last_login_at, 0) <= inactive_warned_at
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.account_id = a.id AND s.last_seen_at > a.inactive_warned_at) ORDER BY id`,
		Active, store.Millis(before))
	if err != nil {
		return nil, fmt.Errorf("account: warned: %w", err)
	}
	return ids, nil
}

// WarnInactive marks the account warned now and mails it, through the outbox as a
// transactional mail, that it will be erased on eraseOn unless the member logs in.
func (s *Service) WarnInactive(ctx context.Context, accountID string, eraseOn time.Time) error {
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET inactive_warned_at = $1 WHERE id = $2 AND status = $3 AND inactive_warned_at IS NULL`,
			store.Millis(s.now()), accountID, Active)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // warned meanwhile, or no longer active: nothing to mail
		}
		return s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: p.ID, To: p.Email, Template: stmail.InactiveWarning,
			Data: map[string]string{"Name": p.Name, "Date": eraseOn.UTC().Format("2 January 2006"), "LoginLink": s.set.BaseURL + "/login"}})
	})
	if err != nil {
		return fmt.Errorf("account: warn inactive: %w", err)
	}
	return nil
}
