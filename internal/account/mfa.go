package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"steward/internal/apperr"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/store"
)

// The second factor (issue 14, item 1): a TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s
// steps, as every authenticator app reads it) sealed under the account's data key, and
// ten single-use recovery codes kept as keyed hashes. A session passes the second
// factor once; from then on it lives as a staff session (StaffSessionTTL,
// StaffSessionIdle).

const (
	labelTOTPSecret = "second_factors.secret"
	totpPeriod      = 30 // seconds
	// RecoveryCodes is how many recovery codes an enrollment gives.
	RecoveryCodes = 10
	// recoveryAlphabet leaves out letters and digits read as one another.
	recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"
)

var (
	secondFactorsTable = datamap.Table{Name: "second_factors", Subject: "account_id", Columns: []datamap.Column{
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "secret", Categories: []string{"user.authorization.credentials"}, Sealed: true,
			Withheld: "the secret your authenticator app holds; giving it out would let whoever reads the export make your codes"},
		{Name: "created_at", NotPersonal: "time the enrollment began", Time: true},
		{Name: "confirmed_at", NotPersonal: "time the enrollment was confirmed with a code", Time: true},
		{Name: "last_step", NotPersonal: "the 30-second step of the last code accepted (a code is accepted once)"},
	}}
	recoveryCodesTable = datamap.Table{Name: "recovery_codes", Subject: "account_id", Columns: []datamap.Column{
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "code_hash", Categories: []string{"user.authorization.credentials"}, Plain: "a keyed hash of a recovery code, compared in SQL",
			Withheld: "a keyed hash of a recovery code"},
		{Name: "created_at", NotPersonal: "time the code was made", Time: true},
		{Name: "used_at", NotPersonal: "time the code was used", Time: true},
	}}
)

var (
	errCodeWrong     = apperr.Field("totp", "code_wrong", "is not the current code of your authenticator app")
	errCodeUsed      = apperr.Field("totp", "code_used", "was used already; wait for the next code")
	errRecoveryWrong = apperr.Field("recovery_code", "code_wrong", "is not an unused recovery code of yours")
	errNotEnrolled   = apperr.New(apperr.Conflict, "second_factor_not_enrolled", "set up the second factor first")
	errEnrolled      = apperr.New(apperr.Conflict, "second_factor_enrolled", "the second factor is set up already")
	errNoCode        = apperr.Field("totp", "required", "is required: a code of your authenticator app, or a recovery code")
)

// SecondFactorStatus says whether an account has a second factor.
type SecondFactorStatus struct {
	Enrolled     bool
	EnrolledAt   time.Time
	RecoveryLeft int // unused recovery codes
}

// SecondFactor returns the account's second factor status.
func (s *Service) SecondFactor(ctx context.Context, accountID string) (SecondFactorStatus, error) {
	var st SecondFactorStatus
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT confirmed_at FROM second_factors WHERE account_id = $1`, accountID).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("account: second factor: %w", err)
	}
	if !at.Valid {
		return st, nil
	}
	st.Enrolled, st.EnrolledAt = true, store.FromMillis(at.Int64)
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL`,
		accountID).Scan(&st.RecoveryLeft); err != nil {
		return st, fmt.Errorf("account: second factor: %w", err)
	}
	return st, nil
}

// Enrollment is a TOTP secret being set up: the secret in base32 (to type into an
// app), its otpauth:// URI, and the URI as a QR code (a PNG data URI).
type Enrollment struct {
	Secret string
	URI    string
	QR     string
}

// Enroll returns the account's enrollment in progress, or begins one with a new
// secret (fresh: a new secret replaces the one in progress). An account with a
// confirmed second factor is refused: an administrator resets it first.
func (s *Service) Enroll(ctx context.Context, accountID string, fresh bool) (Enrollment, error) {
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return Enrollment{}, err
	}
	var secret string
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		key, err := s.vault.KeyIn(ctx, tx, accountID, false)
		if err != nil {
			return fmt.Errorf("account: enroll: %w", err)
		}
		var sealed string
		var confirmed sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT secret, confirmed_at FROM second_factors WHERE account_id = $1`, accountID).Scan(&sealed, &confirmed)
		switch {
		case err == nil && confirmed.Valid:
			return errEnrolled
		case err == nil && !fresh:
			secret, err = key.OpenText(labelTOTPSecret, sealed)
			return err
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("account: enroll: %w", err)
		}
		var raw [20]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		secret = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:])
		_, err = tx.ExecContext(ctx, `INSERT INTO second_factors (account_id, secret, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at`,
			accountID, key.SealText(labelTOTPSecret, secret), store.Millis(s.now()))
		if err != nil {
			return fmt.Errorf("account: enroll: %w", err)
		}
		return nil
	})
	if err != nil {
		return Enrollment{}, err
	}
	return s.enrollment(secret, p.Email)
}

// enrollment describes a secret for an authenticator app.
func (s *Service) enrollment(secret, email string) (Enrollment, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return Enrollment{}, fmt.Errorf("account: enroll: %w", err)
	}
	issuer := "Steward"
	if u, err := url.Parse(s.set.BaseURL); err == nil && u.Host != "" {
		issuer = u.Host
	}
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: email, Period: totpPeriod, Secret: raw,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrollment{}, fmt.Errorf("account: enroll: %w", err)
	}
	e := Enrollment{Secret: k.Secret(), URI: k.URL()}
	img, err := k.Image(240, 240)
	if err != nil {
		return Enrollment{}, fmt.Errorf("account: enroll: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, fmt.Errorf("account: enroll: %w", err)
	}
	e.QR = "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	return e, nil
}

// ConfirmEnrollment confirms the enrollment in progress with a code of the app, makes
// the account's recovery codes (returned once, kept only as hashes) and counts as the
// session's second factor.
func (s *Service) ConfirmEnrollment(ctx context.Context, sess Session, code string, meta Meta) ([]string, error) {
	if strings.TrimSpace(code) == "" {
		return nil, apperr.Field("totp", "required", "is required: the code your authenticator app shows")
	}
	var codes []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var confirmed sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT confirmed_at FROM second_factors WHERE account_id = $1`, sess.AccountID).Scan(&confirmed)
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.New(apperr.Conflict, "enrollment_not_started", "begin the enrollment first: a secret is made for you then")
		}
		if err != nil {
			return fmt.Errorf("account: confirm enrollment: %w", err)
		}
		if confirmed.Valid {
			return errEnrolled
		}
		if err := s.useCode(ctx, tx, sess.AccountID, code, false); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE second_factors SET confirmed_at = $1 WHERE account_id = $2`, store.Millis(s.now()), sess.AccountID); err != nil {
			return fmt.Errorf("account: confirm enrollment: %w", err)
		}
		if codes, err = s.newRecoveryCodes(ctx, tx, sess.AccountID); err != nil {
			return err
		}
		if err := s.passed(ctx, tx, sess); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "second_factor_enrolled", AccountID: sess.AccountID, IP: meta.IP})
	})
	if err != nil {
		if apperr.KindOf(err) == apperr.Invalid {
			return nil, s.factorFailed(ctx, sess.AccountID, "second_factor_failed", meta, err)
		}
		return nil, err
	}
	return codes, nil
}

// PassSecondFactor checks a code of the app, or a recovery code (which is then used
// up), and marks the session as having passed the second factor: from then on it
// lives as a staff session.
func (s *Service) PassSecondFactor(ctx context.Context, sess Session, code, recovery string, meta Meta) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		event := "second_factor_passed"
		switch {
		case strings.TrimSpace(code) != "":
			if err := s.useCode(ctx, tx, sess.AccountID, code, true); err != nil {
				return err
			}
		case strings.TrimSpace(recovery) != "":
			if err := s.useRecoveryCode(ctx, tx, sess.AccountID, recovery); err != nil {
				return err
			}
			event = "recovery_code_used"
		default:
			return errNoCode
		}
		if err := s.passed(ctx, tx, sess); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: event, AccountID: sess.AccountID, IP: meta.IP})
	})
	if err != nil && apperr.KindOf(err) == apperr.Invalid && !errors.Is(err, errNoCode) {
		return s.factorFailed(ctx, sess.AccountID, "second_factor_failed", meta, err)
	}
	return err
}

// Reauthenticate records that the session's holder proved again who they are, with
// the password or a code of the app, before a sensitive action.
func (s *Service) Reauthenticate(ctx context.Context, sess Session, password, code string, meta Meta) error {
	if password == "" && strings.TrimSpace(code) == "" {
		return apperr.Field("password", "required", "is required to confirm it is you (or a code of your authenticator app)")
	}
	if password != "" {
		if err := s.CheckPassword(ctx, sess.AccountID, "password", password); err != nil {
			if apperr.KindOf(err) == apperr.Invalid {
				return s.factorFailed(ctx, sess.AccountID, "reauth_failed", meta, err)
			}
			return err
		}
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if password == "" {
			if err := s.useCode(ctx, tx, sess.AccountID, code, true); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET reauth_at = $1 WHERE id = $2`, store.Millis(s.now()), sess.ID); err != nil {
			return fmt.Errorf("account: reauthenticate: %w", err)
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "reauthenticated", AccountID: sess.AccountID, IP: meta.IP})
	})
	if err != nil && apperr.KindOf(err) == apperr.Invalid {
		return s.factorFailed(ctx, sess.AccountID, "reauth_failed", meta, err)
	}
	return err
}

// Recent reports whether the session's holder gave the password or a code within the
// re-authentication window.
func (s *Service) Recent(sess Session) bool {
	return !sess.ReauthAt.IsZero() && s.now().Sub(sess.ReauthAt) < s.set.ReauthWindow
}

// RegenerateRecoveryCodes replaces the account's recovery codes with new ones,
// returned once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, accountID string, meta Meta) ([]string, error) {
	var codes []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var confirmed sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT confirmed_at FROM second_factors WHERE account_id = $1`, accountID).Scan(&confirmed)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !confirmed.Valid) {
			return errNotEnrolled
		}
		if err != nil {
			return fmt.Errorf("account: recovery codes: %w", err)
		}
		if codes, err = s.newRecoveryCodes(ctx, tx, accountID); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "recovery_codes_regenerated", AccountID: accountID, IP: meta.IP})
	})
	return codes, err
}

// ResetSecondFactor removes the account's second factor and recovery codes (an
// administrator's reset, for a lost phone): every session of the account loses its
// second factor, and the account enrolls again at its next staff page. by is the
// administrator's account id ("" from the command line).
func (s *Service) ResetSecondFactor(ctx context.Context, accountID, by string, meta Meta) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, q := range []string{`DELETE FROM recovery_codes WHERE account_id = $1`, `DELETE FROM second_factors WHERE account_id = $1`,
			`UPDATE sessions SET second_factor_at = NULL WHERE account_id = $1`} {
			if _, err := tx.ExecContext(ctx, q, accountID); err != nil {
				return fmt.Errorf("account: reset second factor: %w", err)
			}
		}
		detail := "by the command line"
		if by != "" {
			detail = "by administrator " + by
			if err := s.audit.Record(ctx, tx, governance.Event{Name: "staff_second_factor_reset", AccountID: by, IP: meta.IP,
				Detail: "of account " + accountID}); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "second_factor_reset", AccountID: accountID, IP: meta.IP, Detail: detail})
	})
}

// passed marks the session as having passed the second factor now: it gives the
// password-or-code time too, and shortens the session to a staff session's lifetime.
func (s *Service) passed(ctx context.Context, tx *store.Tx, sess Session) error {
	now := s.now()
	end := store.Millis(now.Add(s.set.StaffSessionTTL))
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET second_factor_at = $1, reauth_at = $1, last_seen_at = $1,
		expires_at = CASE WHEN expires_at > $2 THEN $2 ELSE expires_at END WHERE id = $3`, store.Millis(now), end, sess.ID); err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	}
	return nil
}

// useCode checks a code of the app against the account's secret (confirmed, or the
// one being enrolled) at the current step or one step either side (clocks drift), and
// records its step: a code is accepted once, and no code of an earlier step after it.
func (s *Service) useCode(ctx context.Context, tx *store.Tx, accountID, code string, confirmed bool) error {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	var sealed string
	var at sql.NullInt64
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT secret, confirmed_at, last_step FROM second_factors WHERE account_id = $1`, accountID).Scan(&sealed, &at, &last)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && confirmed && !at.Valid) {
		return errNotEnrolled
	}
	if err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	}
	key, err := s.vault.KeyIn(ctx, tx, accountID, false)
	if err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	}
	secret, err := key.OpenText(labelTOTPSecret, sealed)
	if err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	}
	now := s.now()
	step := int64(-1)
	for _, d := range []int64{0, -1, 1} {
		t := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return fmt.Errorf("account: second factor: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step = t.Unix() / totpPeriod
			break
		}
	}
	if step < 0 {
		return errCodeWrong
	}
	// Conditional on the step, under the row's lock: of two requests with one code,
	// one wins.
	res, err := tx.ExecContext(ctx, `UPDATE second_factors SET last_step = $1 WHERE account_id = $2 AND last_step < $1`, step, accountID)
	if err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("account: second factor: %w", err)
	} else if n == 0 {
		return errCodeUsed
	}
	return nil
}

// useRecoveryCode uses up one of the account's recovery codes.
func (s *Service) useRecoveryCode(ctx context.Context, tx *store.Tx, accountID, code string) error {
	res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL`,
		store.Millis(s.now()), accountID, s.recoveryHash(accountID, code))
	if err != nil {
		return fmt.Errorf("account: recovery code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("account: recovery code: %w", err)
	} else if n == 0 {
		return errRecoveryWrong
	}
	return nil
}

// newRecoveryCodes replaces the account's recovery codes and returns the new ones.
func (s *Service) newRecoveryCodes(ctx context.Context, tx *store.Tx, accountID string) ([]string, error) {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE account_id = $1`, accountID); err != nil {
		return nil, fmt.Errorf("account: recovery codes: %w", err)
	}
	codes := make([]string, 0, RecoveryCodes)
	for len(codes) < RecoveryCodes {
		var b [10]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		c := make([]byte, 0, 11)
		for i, x := range b {
			if i == 5 {
				c = append(c, '-')
			}
			c = append(c, recoveryAlphabet[int(x)%len(recoveryAlphabet)])
		}
		code := string(c)
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (account_id, code_hash) DO NOTHING`, accountID, s.recoveryHash(accountID, code), store.Millis(s.now())); err != nil {
			return nil, fmt.Errorf("account: recovery codes: %w", err)
		}
		codes = append(codes, code)
	}
	return codes, nil
}

// recoveryHash is the keyed hash a recovery code is kept as, the same for any way
// it is typed (case, spaces, the dash).
func (s *Service) recoveryHash(accountID, code string) string {
	c := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(code)))
	return s.index.Of("recovery_code", accountID+"\n"+c)
}

// factorFailed records a refused code or password, and answers err.
func (s *Service) factorFailed(ctx context.Context, accountID, event string, meta Meta, err error) error {
	d := "wrong code"
	if errors.Is(err, errCodeUsed) {
		d = "code replayed"
	} else if e, ok := apperr.As(err); ok && e.Field == "password" {
		d = "wrong password"
	}
	if rerr := s.audit.Record(ctx, s.db, governance.Event{Name: event, AccountID: accountID, IP: meta.IP, Detail: d}); rerr != nil {
		return fmt.Errorf("account: recording a refused code: %w", rerr)
	}
	return err
}
