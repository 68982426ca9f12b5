package account

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"steward/internal/apperr"
)

// Argon2 holds argon2id parameters; a stored hash records its own, so a change of
// configuration rehashes at the next login.
type Argon2 struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

const (
	saltLen = 16
	keyLen  = 32
)

// HashMemory is the most memory password hashing holds at once: every one of New's
// slots (two per core) busy with a hash of memKiB. It is the process's memory budget
// beyond its steady state.
func HashMemory(memKiB uint32) int64 { return int64(2*runtime.GOMAXPROCS(0)) * int64(memKiB) << 10 }

// hashPassword and verifyPassword bound how many argon2id computations the service
// runs at once. Each takes the configured memory (64 MiB by default), so 200
// concurrent logins would otherwise ask for 12 GiB; beyond two per core they only
// queue for the CPU anyway.
// A request waits at most slotWait for a slot: past it, the node is answering more
// sign-ins than it can hash, and the request is told to come back (429, Retry-After)
// instead of queueing towards a client's time-out.
func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	if err := s.acquireSlot(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.slots }()
	return HashPassword(s.set.Argon2, pw), nil
}

func (s *Service) verifyPassword(ctx context.Context, encoded, pw string) (ok, stale bool, err error) {
	if err := s.acquireSlot(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-s.slots }()
	return VerifyPassword(s.set.Argon2, encoded, pw)
}

// slotWait is the longest a password check waits for a hashing slot (the service's
// slotWait, which a test shortens).
const slotWait = 10 * time.Second

// errBusy answers a password check that found no hashing slot in time.
var errBusy = apperr.New(apperr.RateLimited, "busy", "too many sign-ins at this moment: try again in a minute")

func (s *Service) acquireSlot(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.slotWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HashPassword returns the PHC string of an argon2id hash of pw with a fresh salt.
func HashPassword(p Argon2, pw string) string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// dummyHash returns a PHC string of p's parameters with a random salt and key: what
// verifying against it costs is what verifying a real hash costs, and no password
// matches it. It is made without hashing, so the service holds no argon2 memory from
// the moment it starts (hashing at start left 64 MiB resident in an idle process).
func dummyHash(p Argon2) string {
	salt, key := make([]byte, saltLen), make([]byte, keyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword checks pw against a stored PHC string in constant time and reports
// whether the hash was made with parameters other than p (and so wants a rehash).
func VerifyPassword(p Argon2, encoded, pw string) (ok, stale bool, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, errors.New("account: stored hash is not argon2id")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, false, errors.New("account: unsupported argon2 version")
	}
	var h Argon2
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.MemoryKiB, &h.Time, &h.Threads); err != nil {
		return false, false, fmt.Errorf("account: stored hash parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, false, fmt.Errorf("account: stored hash salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, false, fmt.Errorf("account: stored hash: %w", err)
	}
	got := argon2.IDKey([]byte(pw), salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, h != p, nil
}

//go:embed common-passwords.txt
var commonPasswordsFile []byte

// commonPasswords is the shipped list of passwords refused outright.
func commonPasswords() map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsFile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}

const (
	minPasswordLen = 10
	maxPasswordLen = 256
)

// checkPassword refuses a password that is too short, too long, on the common list,
// or made of the member's own email or name.
func (s *Service) checkPassword(field, pw, email, name string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < minPasswordLen:
		return apperr.Field(field, "password_too_short", fmt.Sprintf("must be at least %d characters", minPasswordLen))
	case len(pw) > maxPasswordLen:
		return apperr.Field(field, "password_too_long", fmt.Sprintf("must be at most %d bytes", maxPasswordLen))
	}
	lower := strings.ToLower(pw)
	if s.common[lower] {
		return apperr.Field(field, "password_common", "is one of the most common passwords; choose another")
	}
	if allSame(lower) {
		return apperr.Field(field, "password_common", "repeats one character; choose another")
	}
	local, _, _ := strings.Cut(email, "@")
	for _, part := range personalParts(local, name) {
		if strings.Contains(lower, part) {
			return apperr.Field(field, "password_personal", "must not contain your name or the part of your email address before the @")
		}
	}
	return nil
}

// minPersonalPart is the shortest part of a name or address a password may not hold:
// shorter ones ("Al", "li") are common inside ordinary words.
const minPersonalPart = 4

// personalParts are the lower-case parts of the email's local part and of the name
// that a password must not contain: the whole local part, the whole name without
// spaces, and each of their words, of minPersonalPart characters or more.
func personalParts(local, name string) []string {
	notWord := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	var out []string
	add := func(p string) {
		if p = strings.ToLower(p); utf8.RuneCountInString(p) >= minPersonalPart {
			out = append(out, p)
		}
	}
	add(local)
	add(strings.Join(strings.Fields(name), ""))
	for _, p := range strings.FieldsFunc(local, notWord) {
		add(p)
	}
	for _, p := range strings.FieldsFunc(name, notWord) {
		add(p)
	}
	return out
}

func allSame(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] != s[0] {
			return false
		}
	}
	return true
}
