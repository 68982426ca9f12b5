package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"steward/internal/apperr"
	"steward/internal/governance"
	stmail "steward/internal/mail"
	"steward/internal/store"
	"steward/internal/text"
)

// Session is an authenticated session.
type Session struct {
	ID        string // the SHA-256 of the token: safe to show and to name in a revocation
	AccountID string
	ExpiresAt time.Time
	// SecondFactorAt is when the session passed the second factor (zero: not yet); a
	// staff role is usable only in a session that did.
	SecondFactorAt time.Time
	// ReauthAt is when its holder last gave the password or a code (at login, at the
	// second factor, or when a sensitive action asked again).
	ReauthAt time.Time
}

// SessionInfo is a session as its owner sees it in the list.
type SessionInfo struct {
	ID         string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	IP         string
	UserAgent  string
	Current    bool
}

var errLogin = apperr.New(apperr.Unauthorized, "login_failed", "wrong email or password")

// touchEvery is how stale last_seen_at may get before a request refreshes it: a
// write on every request would cost more than the session check itself.
const touchEvery = time.Minute

// Login checks the password and starts a new session with a new token (a session id
// is never carried over from before login). A hash made with older parameters is
// replaced.
func (s *Service) Login(ctx context.Context, email, password string, meta Meta) (string, Session, error) {
	email = normalizeEmail(email)
	var id, hash string
	var status Status
	err := s.db.QueryRowContext(ctx, `SELECT id, password_hash, status FROM accounts WHERE email_idx = $1`, s.index.Address(email)).Scan(&id, &hash, &status)
	if errors.Is(err, sql.ErrNoRows) || status == Erasing {
		// The same work and answer as for a real account; an account being erased is
		// treated as gone, so nothing new is recorded against it.
		if _, _, err := s.verifyPassword(ctx, s.dummy, password); errors.Is(err, errBusy) {
			return "", Session{}, err // as a known account would be answered
		}
		return "", Session{}, s.loginFailed(ctx, governance.Event{Name: "login_failed", IP: meta.IP, Detail: "unknown account"})
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("account: login: %w", err)
	}
	ok, stale, err := s.verifyPassword(ctx, hash, password)
	if err != nil {
		return "", Session{}, err
	}
	if !ok {
		return "", Session{}, s.loginFailed(ctx, governance.Event{Name: "login_failed", AccountID: id, IP: meta.IP, Detail: "wrong password"})
	}
	if status == PendingVerification || status == PendingGuardian {
		// Answered as a wrong password: anyone may register any address with a password
		// of their choosing, and an answer of its own here would tell them whether the
		// address was free (their registration made an account) or taken (it did not).
		return "", Session{}, s.loginFailed(ctx, governance.Event{Name: "login_failed", AccountID: id, IP: meta.IP, Detail: "not active yet"})
	}
	token, sessID := newToken()
	now := s.now()
	sess := Session{ID: sessID, AccountID: id, ExpiresAt: now.Add(s.set.SessionTTL), ReauthAt: now}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		key, err := s.vault.KeyIn(ctx, tx, id, false)
		if err != nil {
			return fmt.Errorf("account: session: %w", err)
		}
		if stale {
			// A rehash that finds no slot waits for the next login.
			if newHash, err := s.hashPassword(ctx, password); err == nil {
				if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $1 WHERE id = $2`, newHash, id); err != nil {
					return fmt.Errorf("account: rehash: %w", err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, account_id, created_at, last_seen_at, expires_at, ip, user_agent, reauth_at)
			VALUES ($1, $2, $3, $3, $4, $5, $6, $3)`, sessID, id, store.Millis(now), store.Millis(sess.ExpiresAt),
			key.SealText(labelIP, meta.IP), key.SealText(labelUserAgent, text.Cut(meta.UserAgent, 300))); err != nil {
			return fmt.Errorf("account: session: %w", err)
		}
		// A login ends any warning that the account would be erased for inactivity.
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET last_login_at = $1, inactive_warned_at = NULL WHERE id = $2`, store.Millis(now), id); err != nil {
			return fmt.Errorf("account: session: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "login", AccountID: id, IP: meta.IP})
	})
	if err != nil {
		return "", Session{}, err
	}
	return token, sess, nil
}

// loginFailed records a refused login and answers it. A refusal that cannot be
// recorded is not answered as a plain refusal: the audit trail is what shows a guessing
// attack, and an attempt it misses must not look like one it kept.
func (s *Service) loginFailed(ctx context.Context, e governance.Event) error {
	if err := s.audit.Record(ctx, s.db, e); err != nil {
		return fmt.Errorf("account: login: recording the failure: %w", err)
	}
	return errLogin
}

var errNoSession = apperr.New(apperr.Unauthorized, "unauthenticated", "log in first")

// Authenticate returns the live session of a token. It is on every authenticated
// request's path: one prepared point query, and a write at most once a minute.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, errNoSession
	}
	id := hashToken(token)
	var accountID string
	var expires, seen int64
	var factor, reauth sql.NullInt64
	err := s.sessStmt.QueryRowContext(ctx, id).Scan(&accountID, &expires, &seen, &factor, &reauth)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, errNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("account: authenticate: %w", err)
	}
	return s.liveSession(ctx, id, accountID, expires, seen, factor, reauth)
}

// liveSession ends an expired session, or one that passed the second factor and was
// idle longer than staff sessions may be, and refreshes last_seen_at when it is stale.
func (s *Service) liveSession(ctx context.Context, id, accountID string, expires, seen int64, factor, reauth sql.NullInt64) (Session, error) {
	now := s.now()
	idle := factor.Valid && s.set.StaffSessionIdle > 0 && now.UnixMilli()-seen >= s.set.StaffSessionIdle.Milliseconds()
	if now.UnixMilli() >= expires || idle {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
			return Session{}, fmt.Errorf("account: ending an expired session: %w", err)
		}
		return Session{}, errNoSession
	}
	if now.UnixMilli()-seen > touchEvery.Milliseconds() {
		if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id = $2`, now.UnixMilli(), id); err != nil {
			return Session{}, fmt.Errorf("account: authenticate: %w", err)
		}
	}
	sess := Session{ID: id, AccountID: accountID, ExpiresAt: store.FromMillis(expires)}
	if factor.Valid {
		sess.SecondFactorAt = store.FromMillis(factor.Int64)
	}
	if reauth.Valid {
		sess.ReauthAt = store.FromMillis(reauth.Int64)
	}
	return sess, nil
}

// Sessions lists the account's live sessions, newest first; current marks the caller's.
func (s *Service) Sessions(ctx context.Context, accountID, current string) ([]SessionInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
		WHERE account_id = $1 AND expires_at > $2 ORDER BY created_at DESC`, accountID, store.Millis(s.now()))
	if err != nil {
		return nil, fmt.Errorf("account: sessions: %w", err)
	}
	defer rows.Close()
	key, err := s.vault.KeyIn(ctx, s.db, accountID, false)
	if err != nil {
		return nil, fmt.Errorf("account: sessions: %w", err)
	}
	var out []SessionInfo
	for rows.Next() {
		var si SessionInfo
		var c, l, e int64
		if err := rows.Scan(&si.ID, &c, &l, &e, &si.IP, &si.UserAgent); err != nil {
			return nil, fmt.Errorf("account: sessions: %w", err)
		}
		if si.IP, err = key.OpenText(labelIP, si.IP); err != nil {
			return nil, fmt.Errorf("account: sessions: %w", err)
		}
		if si.UserAgent, err = key.OpenText(labelUserAgent, si.UserAgent); err != nil {
			return nil, fmt.Errorf("account: sessions: %w", err)
		}
		si.CreatedAt, si.LastSeenAt, si.ExpiresAt = store.FromMillis(c), store.FromMillis(l), store.FromMillis(e)
		si.Current = si.ID == current
		out = append(out, si)
	}
	return out, rows.Err()
}

// RevokeSession ends one of the account's sessions. Another account's session id is
// answered as not found.
func (s *Service) RevokeSession(ctx context.Context, accountID, sessionID string, meta Meta) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = $1 AND account_id = $2`, sessionID, accountID)
		if err != nil {
			return fmt.Errorf("account: revoke: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("account: revoke: %w", err)
		} else if n == 0 {
			return apperr.New(apperr.NotFound, "session_not_found", "no such session")
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "session_revoked", AccountID: accountID, IP: meta.IP})
	})
}

// Logout ends the session of a token.
func (s *Service) Logout(ctx context.Context, sess Session, meta Meta) error {
	return s.RevokeSession(ctx, sess.AccountID, sess.ID, meta)
}

// LogoutEverywhere ends every session of the account, the caller's included.
func (s *Service) LogoutEverywhere(ctx context.Context, accountID string, meta Meta) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = $1`, accountID)
		if err != nil {
			return fmt.Errorf("account: logout everywhere: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("account: logout everywhere: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "logout_everywhere", AccountID: accountID, IP: meta.IP,
			Detail: fmt.Sprintf("%d sessions", n)})
	})
	return int(n), err
}

// LogoutOthers ends every session of the account but the caller's, and returns how
// many it ended.
func (s *Service) LogoutOthers(ctx context.Context, sess Session, meta Meta) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = $1 AND id <> $2`, sess.AccountID, sess.ID)
		if err != nil {
			return fmt.Errorf("account: logout others: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("account: logout others: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "logout_others", AccountID: sess.AccountID, IP: meta.IP,
			Detail: fmt.Sprintf("%d sessions", n)})
	})
	return int(n), err
}

// RequestPasswordReset mails a reset link if the address has a usable account, and
// answers the same either way.
func (s *Service) RequestPasswordReset(ctx context.Context, rawEmail string, meta Meta) error {
	email, err := ValidEmail("email", rawEmail)
	if err != nil {
		return err
	}
	// A known address costs a transaction more than an unknown one (about 0.3 ms): so
	// that the time of the answer does not tell which, both are answered no sooner
	// than resetFloor after they arrived (measured on the monotonic clock: this is
	// latency, not the time of day the service's clock tells).
	defer waitUntil(ctx, time.Now().Add(resetFloor))
	var id string
	var status Status
	err = s.db.QueryRowContext(ctx, `SELECT id, status FROM accounts WHERE email_idx = $1`, s.index.Address(email)).Scan(&id, &status)
	if errors.Is(err, sql.ErrNoRows) || status == Erasing {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account: reset: %w", err)
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		token, err := s.issueToken(ctx, tx, id, purposeReset, resetTTL)
		if err != nil {
			return err
		}
		if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: id, To: email, Template: stmail.PasswordReset,
			Data: map[string]string{"Link": s.link("/password/reset", token)}}); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "password_reset_requested", AccountID: id, IP: meta.IP})
	})
}

// resetFloor is the least time a password-reset request is answered in: well above
// what either path takes on a loaded machine.
const resetFloor = 40 * time.Millisecond

// waitUntil returns at t, or when ctx ends.
func waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// ResetPassword sets a new password with a reset token and ends every session.
func (s *Service) ResetPassword(ctx context.Context, token, password string, meta Meta) error {
	id, err := s.peekToken(ctx, s.db, token, purposeReset)
	if err != nil {
		return err
	}
	p, err := s.Profile(ctx, id)
	if err != nil {
		return err
	}
	if err := s.checkPassword("password", password, p.Email, p.Name); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.useToken(ctx, tx, token, purposeReset); err != nil {
			return err
		}
		// The reset link reached the mailbox: the address is verified, so a member
		// whose confirmation link expired (or whose address someone else registered
		// first) gets in this way. A minor's guardian is asked at the first proof.
		var askGuardian bool
		if err := tx.QueryRowContext(ctx, `SELECT email_verified_at IS NULL AND guardian_email IS NOT NULL AND guardian_confirmed_at IS NULL
			FROM accounts WHERE id = $1`, p.ID).Scan(&askGuardian); err != nil {
			return fmt.Errorf("account: reset: %w", err)
		}
		if askGuardian {
			if err := s.askGuardian(ctx, tx, p.ID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $1),
			status = CASE WHEN status = $2 AND (guardian_email IS NULL OR guardian_confirmed_at IS NOT NULL) THEN $3 ELSE status END
			WHERE id = $4`, store.Millis(s.now()), PendingVerification, Active, p.ID); err != nil {
			return fmt.Errorf("account: reset: %w", err)
		}
		return s.setPassword(ctx, tx, p, hash, "password_reset", "", meta)
	})
}

// ChangePassword sets a new password for a logged-in member who knows the current one.
// Every other session ends; the caller's goes on.
func (s *Service) ChangePassword(ctx context.Context, sess Session, current, password string, meta Meta) error {
	accountID := sess.AccountID
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return err
	}
	if err := s.CheckPassword(ctx, accountID, "current_password", current); err != nil {
		return err
	}
	if err := s.checkPassword("password", password, p.Email, p.Name); err != nil {
		return err
	}
	newHash, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.setPassword(ctx, tx, p, newHash, "password_changed", sess.ID, meta)
	})
}

// setPassword stores a new hash and ends every session but keep ("" for none).
func (s *Service) setPassword(ctx context.Context, tx *store.Tx, p Profile, hash, event, keep string, meta Meta) error {
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3`,
		hash, store.Millis(s.now()), p.ID); err != nil {
		return fmt.Errorf("account: password: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = $1 AND id <> $2`, p.ID, keep); err != nil {
		return fmt.Errorf("account: password: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE account_id = $1 AND purpose = $2`, p.ID, purposeReset); err != nil {
		return fmt.Errorf("account: password: %w", err)
	}
	if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: p.ID, To: p.Email, Template: stmail.PasswordChanged,
		Data: map[string]string{"ResetLink": s.set.BaseURL + "/password/forgot"}}); err != nil {
		return err
	}
	return s.audit.Record(ctx, tx, governance.Event{Name: event, AccountID: p.ID, IP: meta.IP})
}

// CheckPassword confirms that the logged-in member knows the password, before a
// change that a stolen session must not be enough for (a new password, deletion).
func (s *Service) CheckPassword(ctx context.Context, accountID, field, password string) error {
	if password == "" {
		return apperr.Field(field, "required", "is required to confirm it is you")
	}
	var hash string
	if err := s.db.QueryRowContext(ctx, `SELECT password_hash FROM accounts WHERE id = $1`, accountID).Scan(&hash); err != nil {
		return fmt.Errorf("account: check password: %w", err)
	}
	ok, _, err := s.verifyPassword(ctx, hash, password)
	if errors.Is(err, errBusy) {
		return err
	}
	if err != nil || !ok {
		return apperr.Field(field, "password_wrong", "is not your current password")
	}
	return nil
}

// Activity returns the newest security events of the account, for its owner.
func (s *Service) Activity(ctx context.Context, accountID string, limit int) ([]governance.Entry, error) {
	return s.audit.ForAccount(ctx, s.db, accountID, limit)
}
