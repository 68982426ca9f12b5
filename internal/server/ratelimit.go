package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"steward/internal/apperr"
)

// Limiter is a set of token buckets by key (an IP address, an account): each key may
// do burst actions at once and then one every per. Idle keys are forgotten.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	every   rate.Limit
	burst   int
	off     bool
	last    time.Time
	now     func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a limiter of burst actions, refilled at one every per on the
// clock now. A limiter with off set allows everything (benchmarks, tests of other
// things).
func NewLimiter(burst int, per time.Duration, off bool, now func() time.Time) *Limiter {
	return &Limiter{buckets: map[string]*bucket{}, every: rate.Every(per), burst: burst, off: off, now: now}
}

// ErrRateLimited is returned when a limit is hit.
var ErrRateLimited = apperr.New(apperr.RateLimited, "rate_limited", "too many attempts; wait a minute and try again")

// Allow takes one token from every key's bucket and reports whether all had one.
func (l *Limiter) Allow(keys ...string) bool {
	if l.off {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) > time.Minute {
		l.sweep(now)
	}
	ok := true
	for _, k := range keys {
		if k == "" {
			continue
		}
		b := l.buckets[k]
		if b == nil {
			b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
			l.buckets[k] = b
		}
		b.seen = now
		if !b.lim.AllowN(now, 1) {
			ok = false
		}
	}
	return ok
}

// sweep forgets buckets that have been idle long enough to be full again.
func (l *Limiter) sweep(now time.Time) {
	l.last = now
	full := time.Duration(float64(l.burst)/float64(l.every)*float64(time.Second)) + time.Minute
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
}

// errPasswordTries stops a stolen session from guessing the password through the
// routes that ask for it again.
var errPasswordTries = apperr.New(apperr.RateLimited, "rate_limited", "too many password attempts; wait a minute and try again")

// PasswordCheck takes one try from the account's budget of password checks (deletion,
// password change): the same budget the login spends per account.
func (l *Limits) PasswordCheck(accountID string) error {
	if !l.LoginAccount.Allow("check:" + accountID) {
		return errPasswordTries
	}
	return nil
}

// Limits are the rate limits of the account routes.
type Limits struct {
	LoginIP, LoginAccount, Register, Reset *Limiter
}

// NewLimits returns the default limits on the clock now; with off set none of them
// limits.
func NewLimits(off bool, now func() time.Time) *Limits {
	return &Limits{
		LoginIP:      NewLimiter(20, 6*time.Second, off, now), // 10 a minute after a burst of 20
		LoginAccount: NewLimiter(5, 20*time.Second, off, now), // 3 a minute after a burst of 5
		Register:     NewLimiter(5, 2*time.Minute, off, now),  // per IP
		Reset:        NewLimiter(3, 5*time.Minute, off, now),  // per IP and per address
	}
}
