package apptest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"steward/internal/account"
	"steward/internal/app"
	"steward/internal/apperr"
	"steward/internal/store"
)

// GrantStaff makes an account staff as a test needs it: it grants the role, sets up
// the account's second factor if it has none, and marks every live session of the
// account as having passed it and re-authenticated now, so that a token or cookie the
// test holds reaches the staff routes. A session made later (a new login) passes the
// second factor itself: TOTPCode gives a code.
func GrantStaff(ctx context.Context, a *app.App, accountID, role string) error {
	if err := a.Staff().Grant(ctx, accountID, role); err != nil {
		return err
	}
	e, err := a.Accounts().Enroll(ctx, accountID, false)
	switch {
	case apperr.KindOf(err) == apperr.Conflict: // set up already
	case err != nil:
		return err
	default:
		// The code of the step before: the current one stays for the test's first login.
		code, err := totp.GenerateCodeCustom(e.Secret, a.Now().Add(-30*time.Second), totpOpts)
		if err != nil {
			return err
		}
		if _, err := a.Accounts().ConfirmEnrollment(ctx, account.Session{AccountID: accountID}, code, account.Meta{}); err != nil {
			return fmt.Errorf("apptest: confirm enrollment: %w", err)
		}
	}
	now := store.Millis(a.Now())
	_, err = a.DB().ExecContext(ctx, `UPDATE sessions SET second_factor_at = $1, reauth_at = $1, last_seen_at = $1 WHERE account_id = $2`, now, accountID)
	return err
}

// GrantStaff is GrantStaff on the harness's Steward.
func (h *Harness) GrantStaff(ctx context.Context, accountID, role string) error {
	return GrantStaff(ctx, h.App, accountID, role)
}

var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPSecret is the account's TOTP secret (opened from the database with its key), as
// its authenticator app would hold it.
func TOTPSecret(ctx context.Context, a *app.App, accountID string) (string, error) {
	var sealed string
	if err := a.DB().QueryRowContext(ctx, `SELECT secret FROM second_factors WHERE account_id = $1`, accountID).Scan(&sealed); err != nil {
		return "", fmt.Errorf("apptest: totp secret: %w", err)
	}
	key, err := a.Vault().KeyIn(ctx, a.DB(), accountID, false)
	if err != nil {
		return "", err
	}
	return key.OpenText("second_factors.secret", sealed)
}

// TOTPCode is the code of the secret at t, as an authenticator app shows it.
func TOTPCode(secret string, t time.Time) string {
	c, err := totp.GenerateCodeCustom(secret, t, totpOpts)
	if err != nil {
		panic(err) // a secret the test made: cannot be malformed
	}
	return c
}

// StaffLogin logs a staff account in with its password and a fresh code of its
// second factor (the code of the next time step, so that no code given earlier in the
// test is replayed), and returns the token.
func (h *Harness) StaffLogin(accountID, email, password string) string {
	h.T.Helper()
	secret, err := TOTPSecret(context.Background(), h.App, accountID)
	if err != nil {
		h.T.Fatal(err)
	}
	h.Clock.Advance(30 * time.Second)
	l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": email, "password": password, "totp": TOTPCode(secret, h.App.Now())}, "")
	if l.Status != http.StatusCreated {
		h.T.Fatalf("staff login %s: status %d: %s", email, l.Status, l.Body)
	}
	return l.JSON()["token"].(string)
}

// KeepStaff marks every live session of a staff account as having passed the second
// factor and re-authenticated now: what its holder does by giving a code, for a test
// that moved the clock past the staff sessions' idle timeout, or logged in again.
func (h *Harness) KeepStaff(ctx context.Context, accountID string) {
	h.T.Helper()
	if _, err := h.App.DB().ExecContext(ctx, `UPDATE sessions SET second_factor_at = $1, reauth_at = $1, last_seen_at = $1 WHERE account_id = $2`,
		store.Millis(h.App.Now()), accountID); err != nil {
		h.T.Fatal(err)
	}
}

// NextCode is a code of the account's second factor that Steward accepts now and has
// not seen: of the earliest time step after the last one used, among the steps a
// code is accepted in (the current one and one either side). A test on the real
// clock gets up to three codes in a row this way (GrantStaff confirms with the
// step before the current one).
func NextCode(ctx context.Context, a *app.App, accountID string) (string, error) {
	secret, err := TOTPSecret(ctx, a, accountID)
	if err != nil {
		return "", err
	}
	var last int64
	if err := a.DB().QueryRowContext(ctx, `SELECT last_step FROM second_factors WHERE account_id = $1`, accountID).Scan(&last); err != nil {
		return "", err
	}
	now := a.Now().Unix() / 30
	step := max(last+1, now-1)
	if step > now+1 {
		return "", fmt.Errorf("apptest: every code of this minute is used; wait %ds", 30*(step-now-1))
	}
	return TOTPCode(secret, time.Unix(step*30, 0)), nil
}
