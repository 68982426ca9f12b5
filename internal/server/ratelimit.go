package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"steward/internal/account"
	"steward/internal/apperr"
	"steward/internal/ratelimit"
	"steward/internal/vault"
)

// ErrRateLimited is returned when a limit is hit.
var ErrRateLimited = apperr.New(apperr.RateLimited, "rate_limited", "too many attempts; wait a minute and try again")

// errPasswordTries stops a stolen session from guessing the password through the
// routes that ask for it again.
var errPasswordTries = apperr.New(apperr.RateLimited, "rate_limited", "too many password attempts; wait a minute and try again")

// The limits of the account routes (docs/design.md, Accounts). A login is limited per
// client IP across accounts (credential stuffing), per account and IP pair (guessing
// one member's password), and per account across IPs, slowly; a login from a browser
// that holds the account's known-device cookie is limited per account and device
// instead, so that no one elsewhere can lock the owner out. One IP cannot empty an
// account's bucket: its pair bucket refills slower than the account's.
var (
	ruleLoginIP       = ratelimit.Rule{Burst: 20, Every: 6 * time.Second} // 10 a minute after 20
	ruleLoginPair     = ratelimit.Rule{Burst: 5, Every: 5 * time.Minute}  // 12 an hour after 5
	ruleLoginAccount  = ratelimit.Rule{Burst: 20, Every: 2 * time.Minute} // 30 an hour after 20
	ruleLoginDevice   = ratelimit.Rule{Burst: 5, Every: 5 * time.Minute}  // as a pair
	rulePasswordCheck = ratelimit.Rule{Burst: 5, Every: 20 * time.Second} // per account
	ruleSecondFactor  = ratelimit.Rule{Burst: 5, Every: 30 * time.Second} // per account: codes, re-authentication
	ruleRegister      = ratelimit.Rule{Burst: 5, Every: 2 * time.Minute}  // per IP, per address
	ruleReset         = ratelimit.Rule{Burst: 3, Every: 5 * time.Minute}  // per IP, per address
	ruleRequestUpload = ratelimit.Rule{Burst: 6, Every: time.Minute}      // multipart request bodies, per IP
)

// knownDeviceFor is how long a browser stays a known device after its last login.
const knownDeviceFor = 180 * 24 * time.Hour

// Limits are the rate limits of the account routes, kept in the database (every node
// spends from the same buckets). Their keys are blind indexes, never the IP or address.
type Limits struct {
	buckets *ratelimit.Buckets
	index   *vault.Index
	off     bool
	secure  bool // the known-device cookie is sent over HTTPS only
	now     func() time.Time
}

// NewLimits returns the limits kept in buckets, their keys hashed under index; with off
// set none of them limits. secure marks the known-device cookie Secure.
func NewLimits(buckets *ratelimit.Buckets, index *vault.Index, off, secure bool, now func() time.Time) *Limits {
	return &Limits{buckets: buckets, index: index, off: off, secure: secure, now: now}
}

// take spends a token of the bucket of value under the named rule; any refusal is
// ErrRateLimited.
func (l *Limits) take(ctx context.Context, name string, r ratelimit.Rule, value string) error {
	ok, err := l.spend(ctx, name, r, value)
	if err != nil {
		return err
	}
	if !ok {
		return ErrRateLimited
	}
	return nil
}

// spend spends a token of the bucket of value under the named rule, keyed by a blind
// index of the value, and reports whether there was one.
func (l *Limits) spend(ctx context.Context, name string, r ratelimit.Rule, value string) (bool, error) {
	return l.buckets.Take(ctx, name+":"+l.index.Of("ratelimit-"+name, value), r)
}

// takeAll spends a token of every bucket, refused or not (each counts the attempt), and
// answers ErrRateLimited if any was empty.
func (l *Limits) takeAll(ctx context.Context, name string, r ratelimit.Rule, values ...string) error {
	var limited error
	for _, v := range values {
		switch err := l.take(ctx, name, r, v); {
		case errors.Is(err, ErrRateLimited):
			limited = err
		case err != nil:
			return err
		}
	}
	return limited
}

// Login spends the login limits of an attempt on email from ip; device is the id of
// the account's known-device cookie the browser sent, if it is valid.
func (l *Limits) Login(ctx context.Context, ip, email, device string) error {
	if l.off {
		return nil
	}
	acct := account.NormalizeEmail(email)
	if device != "" {
		return l.take(ctx, "login-device", ruleLoginDevice, acct+"\n"+device)
	}
	// In this order, each only once the one before let the attempt through: an IP
	// refused (or a pair refused) spends nothing of the account's bucket.
	if err := l.take(ctx, "login-ip", ruleLoginIP, ip); err != nil {
		return err
	}
	if err := l.take(ctx, "login-pair", ruleLoginPair, acct+"\n"+ip); err != nil {
		return err
	}
	return l.take(ctx, "login-account", ruleLoginAccount, acct)
}

// PasswordCheck takes one try from the account's budget of password checks (deletion,
// password change, a change of address).
func (l *Limits) PasswordCheck(ctx context.Context, accountID string) error {
	if l.off {
		return nil
	}
	err := l.take(ctx, "check", rulePasswordCheck, accountID)
	if errors.Is(err, ErrRateLimited) {
		return errPasswordTries
	}
	return err
}

// errCodeTries stops a guesser of second-factor codes (a million of them).
var errCodeTries = apperr.New(apperr.RateLimited, "rate_limited", "too many codes tried; wait a minute and try again")

// SecondFactor takes one try from the account's budget of second-factor codes and
// re-authentications (5, then one every 30 s: a guesser of 6-digit codes, three of
// which are accepted at any time, needs about 80 days for an even chance).
func (l *Limits) SecondFactor(ctx context.Context, accountID string) error {
	if l.off {
		return nil
	}
	err := l.take(ctx, "second-factor", ruleSecondFactor, accountID)
	if errors.Is(err, ErrRateLimited) {
		return errCodeTries
	}
	return err
}

// ipAndAddress spends a named limit's buckets of the client's IP and of the address
// (kind tells the address's use apart where two uses share the limit's name).
func (l *Limits) ipAndAddress(ctx context.Context, name string, r ratelimit.Rule, ip, kind, email string) error {
	if l.off {
		return nil
	}
	return l.takeAll(ctx, name, r, "ip\n"+ip, kind+"\n"+account.NormalizeEmail(email))
}

// InboundMail spends one mail transaction of an inbound SMTP client (its IP, or /64)
// at perMinute a minute, and reports whether it had one. It holds whether or not the
// account routes' limits are off: it protects the listener, not a form.
func (l *Limits) InboundMail(ctx context.Context, client string, perMinute int) (bool, error) {
	return l.spend(ctx, "inbound-mail", ratelimit.Rule{Burst: perMinute, Every: time.Minute / time.Duration(perMinute)}, client)
}

// Register spends the registration limits, per IP and per address (a taken address
// mails its owner, who must not be flooded from many IPs).
func (l *Limits) Register(ctx context.Context, ip, email string) error {
	return l.ipAndAddress(ctx, "register", ruleRegister, ip, "addr", email)
}

// Subscribe spends the limits of a newsletter subscription: the registration's, per IP
// (one budget for both), and per address.
func (l *Limits) Subscribe(ctx context.Context, ip, email string) error {
	return l.ipAndAddress(ctx, "register", ruleRegister, ip, "news", email)
}

// Reset spends the limits of a password reset request, per IP and per address.
func (l *Limits) Reset(ctx context.Context, ip, email string) error {
	return l.ipAndAddress(ctx, "reset", ruleReset, ip, "addr", email)
}

// Resend spends the limits of a request for a new confirmation mail: a budget of its
// own, as large as the reset's (per IP and per address).
func (l *Limits) Resend(ctx context.Context, ip, email string) error {
	return l.ipAndAddress(ctx, "resend", ruleReset, ip, "addr", email)
}

// RequestUpload spends, per IP, the budget of multipart bodies of requests made without
// logging in (with an identity document, up to megabytes each): before the body is
// read, so that a client cannot make the node read them faster than that.
func (l *Limits) RequestUpload(ctx context.Context, ip string) error {
	if l.off {
		return nil
	}
	return l.take(ctx, "request-upload", ruleRequestUpload, "ip\n"+ip)
}

// Request spends the limits of a request made without logging in (its confirmation
// mail), per IP and per address: a budget of its own, as large as the reset's.
func (l *Limits) Request(ctx context.Context, ip, email string) error {
	return l.ipAndAddress(ctx, "request", ruleReset, ip, "addr", email)
}

// The known-device cookie: set when a login succeeds, one per account on a browser,
// named by a blind index of the address and holding a random device id, its expiry and
// a keyed hash of the three. It proves that this browser logged in to the account
// before; it authenticates no one (the password is still asked).
const deviceCookiePrefix = "steward_device_"

func (l *Limits) deviceCookieName(acct string) string {
	return deviceCookiePrefix + l.index.Of("known-device-name", acct)[:16]
}

func (l *Limits) deviceMAC(acct, device string, expires int64) string {
	return l.index.Of("known-device", acct+"\n"+device+"\n"+strconv.FormatInt(expires, 10))
}

// KnownDevice returns the device id of the account's known-device cookie that r
// carries, or "" when it carries none that is valid and unexpired.
func (l *Limits) KnownDevice(r *http.Request, email string) string {
	acct := account.NormalizeEmail(email)
	c, err := r.Cookie(l.deviceCookieName(acct))
	if err != nil {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 || len(parts[0]) != 32 {
		return ""
	}
	expires, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || l.now().Unix() > expires {
		return ""
	}
	if !hmac.Equal([]byte(parts[2]), []byte(l.deviceMAC(acct, parts[0], expires))) {
		return ""
	}
	return parts[0]
}

// RememberDevice sets the account's known-device cookie after a successful login,
// keeping the device id the browser already had.
func (l *Limits) RememberDevice(w http.ResponseWriter, r *http.Request, email string) {
	acct := account.NormalizeEmail(email)
	device := l.KnownDevice(r, acct)
	if device == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		device = hex.EncodeToString(b[:])
	}
	expires := l.now().Add(knownDeviceFor).Unix()
	http.SetCookie(w, &http.Cookie{
		Name:     l.deviceCookieName(acct),
		Value:    device + "." + strconv.FormatInt(expires, 10) + "." + l.deviceMAC(acct, device, expires),
		Path:     "/",
		MaxAge:   int(knownDeviceFor / time.Second),
		HttpOnly: true,
		Secure:   l.secure,
		SameSite: http.SameSiteLaxMode,
	})
}
