package account

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// testArgon2 is cheap enough for tests; the parameters are what the tests look at.
var testArgon2 = Argon2{MemoryKiB: 1024, Time: 1, Threads: 1}

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// noMail is a sender that is never reached: the tests only queue mail.
type noMail struct{}

func (noMail) SendAll(context.Context, []mail.Message) error {
	return errors.New("no mail in unit tests")
}

// newService builds the account service on db as the app does, on the clock c.
func newService(t *testing.T, db *store.DB, c *clock) *Service {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	v, err := vault.Open(ctx, db, vault.Config{KeyFile: filepath.Join(t.TempDir(), "master.key"), Create: true, Grace: -1}, c.Now, log)
	if err != nil {
		t.Fatalf("vault: %v", err)
	}
	outbox, err := mail.NewOutbox(ctx, db, v, noMail{}, "Test", c.Now, log)
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	index := vault.NewIndex([]byte("0123456789abcdef0123456789abcdef"))
	s, err := New(ctx, db, outbox, governance.NewAudit(v, index, governance.GenerateAuditKey(), c.Now), v, index, Settings{
		BaseURL:    "https://steward.test",
		Argon2:     testArgon2,
		SessionTTL: 24 * time.Hour,
		Fields:     map[string]config.Requirement{"name": config.Optional, "phone": config.Optional, "home_address": config.Optional, "business_address": config.Optional},
		AgeOfConsent: func(country string) int {
			if country == "DE" {
				return 16
			}
			return 13
		},
	}, Hooks{}, c.Now)
	if err != nil {
		t.Fatalf("account.New: %v", err)
	}
	return s
}

const testPassword = "tangerine-orbit-42"

// register creates an account of an adult and returns its id.
func register(t *testing.T, s *Service, email string) string {
	t.Helper()
	r, err := s.Register(context.Background(), Registration{Email: email, Password: testPassword, Name: "Ada Lovelace",
		Birthdate: "1990-05-01", Country: "FR"}, Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if r.Status != PendingVerification {
		t.Fatalf("status = %s, want %s", r.Status, PendingVerification)
	}
	return r.ID
}

// activate verifies the account's address with a token issued for it.
func activate(t *testing.T, s *Service, id string) {
	t.Helper()
	ctx := context.Background()
	token := issue(t, s, id, purposeVerify, verifyTTL)
	if status, err := s.VerifyEmail(ctx, token, Meta{}); err != nil || status != Active {
		t.Fatalf("VerifyEmail = %s, %v; want %s", status, err, Active)
	}
}

func issue(t *testing.T, s *Service, id, purpose string, ttl time.Duration) string {
	t.Helper()
	var token string
	err := s.db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		token, err = s.issueToken(context.Background(), tx, id, purpose, ttl)
		return err
	})
	if err != nil {
		t.Fatalf("issueToken: %v", err)
	}
	return token
}

func use(s *Service, token, purpose string) (string, error) {
	var id string
	err := s.db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		id, err = s.useToken(context.Background(), tx, token, purpose)
		return err
	})
	return id, err
}

// fieldCode returns the field and code of an apperr.Error, or fails.
func fieldCode(t *testing.T, err error) (string, string) {
	t.Helper()
	e, ok := apperr.As(err)
	if !ok {
		t.Fatalf("error %v is not an apperr.Error", err)
	}
	return e.Field, e.Code
}

func TestHashAndVerifyPassword(t *testing.T) {
	h := HashPassword(testArgon2, "correct horse")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash = %q, want the PHC string of argon2id with the parameters", h)
	}
	if h2 := HashPassword(testArgon2, "correct horse"); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not fresh")
	}
	ok, stale, err := VerifyPassword(testArgon2, h, "correct horse")
	if !ok || stale || err != nil {
		t.Errorf("right password: ok=%v stale=%v err=%v, want true false nil", ok, stale, err)
	}
	ok, _, err = VerifyPassword(testArgon2, h, "correct horsE")
	if ok || err != nil {
		t.Errorf("wrong password: ok=%v err=%v, want false nil", ok, err)
	}
	for _, p := range []Argon2{{2048, 1, 1}, {1024, 2, 1}, {1024, 1, 2}} {
		ok, stale, err := VerifyPassword(p, h, "correct horse")
		if !ok || !stale || err != nil {
			t.Errorf("configured %+v, hash of %+v: ok=%v stale=%v err=%v, want true true nil", p, testArgon2, ok, stale, err)
		}
	}
}

func TestVerifyPasswordRefusesMalformedHashes(t *testing.T) {
	good := strings.Split(HashPassword(testArgon2, "pw"), "$")
	with := func(i int, v string) string {
		parts := append([]string(nil), good...)
		parts[i] = v
		return strings.Join(parts, "$")
	}
	for name, encoded := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuuQ5x8bF8Cj6s0S3e6pyvV0v1M2Wb8y3O",
		"argon2i":       with(1, "argon2i"),
		"version 16":    with(2, "v=16"),
		"no parameters": with(3, "m=x"),
		"salt":          with(4, "not base64!"),
		"key":           with(5, "not base64!"),
	} {
		t.Run(name, func(t *testing.T) {
			ok, _, err := VerifyPassword(testArgon2, encoded, "pw")
			if err == nil || ok {
				t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", encoded, ok, err)
			}
		})
	}
}

func TestDummyHash(t *testing.T) {
	d := dummyHash(testArgon2)
	if d == dummyHash(testArgon2) {
		t.Error("two dummy hashes are equal")
	}
	parts := strings.Split(d, "$")
	if len(parts) != 6 || parts[3] != "m=1024,t=1,p=1" {
		t.Fatalf("dummy = %q, want the configured parameters", d)
	}
	// A key of full length: verifying computes as long a key as for a real hash.
	if key, err := base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) != keyLen {
		t.Errorf("dummy key: %d bytes, %v; want %d", len(key), err, keyLen)
	}
	for _, pw := range []string{"", "password", testPassword} {
		ok, stale, err := VerifyPassword(testArgon2, d, pw)
		if ok || stale || err != nil {
			t.Errorf("verify %q against the dummy: ok=%v stale=%v err=%v, want false false nil", pw, ok, stale, err)
		}
	}
}

func TestValidEmail(t *testing.T) {
	for _, tc := range []struct {
		raw, want, code string
	}{
		{" Ada.Lovelace@Example.ORG ", "ada.lovelace@example.org", ""},
		{"a+tag@sub.example.org", "a+tag@sub.example.org", ""},
		{"", "", "required"},
		{"   ", "", "required"},
		{"ada", "", "email_invalid"},
		{"ada@localhost", "", "email_invalid"},
		{"Ada <ada@example.org>", "", "email_invalid"},
		{"ada@example.org, bob@example.org", "", "email_invalid"},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".org", "", "email_invalid"},
	} {
		got, err := ValidEmail("guardian_email", tc.raw)
		if tc.code == "" {
			if err != nil || got != tc.want {
				t.Errorf("ValidEmail(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidEmail(%q) = %q, want error %s", tc.raw, got, tc.code)
			continue
		}
		if f, c := fieldCode(t, err); f != "guardian_email" || c != tc.code {
			t.Errorf("ValidEmail(%q): field %q code %q, want guardian_email %s", tc.raw, f, c, tc.code)
		}
	}
	if got := NormalizeEmail("  MiXed@Case.Org\t"); got != "mixed@case.org" {
		t.Errorf("NormalizeEmail = %q", got)
	}
}

func TestCheckProfileField(t *testing.T) {
	for _, tc := range []struct {
		field, v, code string
	}{
		{"name", "Ada Lovelace", ""},
		{"name", "Ada\nLovelace", "text_invalid"},
		{"name", "Ada\u202eLovelace", "text_invalid"},
		{"name", strings.Repeat("a", maxName+1), "too_long"},
		{"phone", "+44 (20) 7946-0958", ""},
		{"phone", "+44 20 CALL ME", "phone_invalid"},
		{"phone", "1234", "phone_invalid"},
		{"phone", strings.Repeat("1", 18), "phone_invalid"},
		{"home_address", "12 Analytical Row\nLondon", ""},
		{"home_address", "12 Analytical Row\x00", "text_invalid"},
		{"business_address", strings.Repeat("a", maxAddress+1), "too_long"},
	} {
		err := checkProfileField(tc.field, tc.v)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s %q: %v, want nil", tc.field, tc.v, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s %q: nil, want %s", tc.field, tc.v, tc.code)
			continue
		}
		if f, c := fieldCode(t, err); f != tc.field || c != tc.code {
			t.Errorf("%s %q: field %q code %q, want %s %s", tc.field, tc.v, f, c, tc.field, tc.code)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	s := &Service{common: commonPasswords()}
	if len(s.common) < 100 {
		t.Fatalf("common passwords: %d, want the shipped list", len(s.common))
	}
	for _, tc := range []struct {
		pw, code string
	}{
		{testPassword, ""},
		{"short", "password_too_short"},
		{"ééééééééé", "password_too_short"}, // nine characters, eighteen bytes
		{strings.Repeat("ab", maxPasswordLen/2+1), "password_too_long"},
		{"Password123", "password_common"},
		{"zzzzzzzzzzzz", "password_common"},
		{"my-lovelace-pass", "password_personal"},   // the email's local part
		{"xx-adabyron-xx", "password_personal"},     // the name without spaces
		{"mister BYRON rides", "password_personal"}, // one part of the name, any case
		{"Augusta the great", "password_personal"},  // one part of the full name
		{"gracious ada 1815", ""},                   // "Ada" is too short a part to refuse
		{"dear lord lovelace", "password_personal"},
		{"smith-and-jones!", "password_personal"}, // a part of a dotted local part
	} {
		email, name := "lovelace@example.org", "Ada Byron"
		switch tc.pw {
		case "Augusta the great":
			name = "Augusta Ada King"
		case "smith-and-jones!":
			email = "j.smith@example.org"
		}
		err := s.checkPassword("password", tc.pw, email, name)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%q: %v, want nil", tc.pw, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: nil, want %s", tc.pw, tc.code)
			continue
		}
		if f, c := fieldCode(t, err); f != "password" || c != tc.code {
			t.Errorf("%q: field %q code %q, want password %s", tc.pw, f, c, tc.code)
		}
	}
}

func TestAgeAndMinor(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		birth, now string
		want       int
	}{
		{"2010-03-01", "2026-03-01", 16},
		{"2010-03-02", "2026-03-01", 15},
		{"2010-04-01", "2026-03-01", 15},
		{"2010-02-28", "2026-03-01", 16},
		{"2008-02-29", "2026-02-28", 17},
		{"2008-02-29", "2026-03-01", 18},
	} {
		if got := Age(day(tc.birth), day(tc.now)); got != tc.want {
			t.Errorf("Age(%s, %s) = %d, want %d", tc.birth, tc.now, got, tc.want)
		}
	}
	c := newClock() // 2026-03-01
	s := &Service{now: c.Now, set: Settings{AgeOfConsent: func(country string) int {
		if country == "DE" {
			return 16
		}
		return 13
	}}}
	for _, tc := range []struct {
		birth, country string
		want           bool
	}{
		{"2010-03-02", "DE", true}, // 15 tomorrow 16
		{"2010-03-01", "DE", false},
		{"2010-03-02", "FR", false}, // 15, above 13
		{"2013-03-02", "FR", true},
		{"", "DE", false},
		{"not a date", "DE", false},
	} {
		if got := s.Minor(Profile{Birthdate: tc.birth, Country: tc.country}); got != tc.want {
			t.Errorf("Minor(%s, %s) = %v, want %v", tc.birth, tc.country, got, tc.want)
		}
	}
	for _, tc := range []struct{ v, code string }{
		{"", "required"}, {"01/03/2000", "date_invalid"}, {"2026-03-02", "date_future"}, {"1890-01-01", "date_invalid"},
	} {
		_, err := s.validBirthdate("birthdate", tc.v)
		if err == nil {
			t.Errorf("validBirthdate(%q): nil, want %s", tc.v, tc.code)
			continue
		}
		if f, code := fieldCode(t, err); f != "birthdate" || code != tc.code {
			t.Errorf("validBirthdate(%q): %s %s, want birthdate %s", tc.v, f, code, tc.code)
		}
	}
}

func TestRegisterMinorWaitsForGuardian(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, newClock())
		child := Registration{Email: "kid@example.org", Password: testPassword, Name: "Kid", Phone: "+33 1 23 45 67 89",
			Birthdate: "2012-01-01", Country: "DE"}
		_, err := s.Register(ctx, child, Meta{})
		if f, c := fieldCode(t, err); f != "guardian_email" || c != "guardian_required" {
			t.Fatalf("a child without guardian: %s %s, want guardian_email guardian_required", f, c)
		}
		child.GuardianEmail = "KID@example.org"
		_, err = s.Register(ctx, child, Meta{})
		if f, c := fieldCode(t, err); f != "guardian_email" || c != "guardian_self" {
			t.Fatalf("a child as own guardian: %s %s, want guardian_email guardian_self", f, c)
		}
		child.GuardianEmail = "parent@example.org"
		r, err := s.Register(ctx, child, Meta{})
		if err != nil || r.Status != PendingGuardian {
			t.Fatalf("Register = %+v, %v; want %s", r, err, PendingGuardian)
		}
		p, err := s.Profile(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != "" || p.Phone != "" || p.GuardianEmail != "parent@example.org" || p.Country != "DE" {
			t.Errorf("profile = %+v; want optional fields dropped until the guardian agrees", p)
		}
		adult := Registration{Email: "adult@example.org", Password: testPassword, Birthdate: "1990-01-01", Country: "DE", GuardianEmail: "x@example.org"}
		_, err = s.Register(ctx, adult, Meta{})
		if f, c := fieldCode(t, err); f != "guardian_email" || c != "guardian_not_needed" {
			t.Errorf("an adult with a guardian: %s %s, want guardian_email guardian_not_needed", f, c)
		}
	})
}

func TestTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, db, c)
		id := register(t, s, "ada@example.org")

		t.Run("single use", func(t *testing.T) {
			token := issue(t, s, id, purposeReset, resetTTL)
			if got, err := s.peekToken(ctx, db, token, purposeReset); err != nil || got != id {
				t.Fatalf("peek = %q, %v; want %q", got, err, id)
			}
			if got, err := use(s, token, purposeReset); err != nil || got != id {
				t.Fatalf("first use = %q, %v; want %q", got, err, id)
			}
			if _, err := use(s, token, purposeReset); !errors.Is(err, errBadToken) {
				t.Errorf("second use: %v, want %v", err, errBadToken)
			}
		})
		t.Run("wrong purpose", func(t *testing.T) {
			token := issue(t, s, id, purposeReset, resetTTL)
			if _, err := use(s, token, purposeGuardian); !errors.Is(err, errBadToken) {
				t.Errorf("use for another purpose: %v, want %v", err, errBadToken)
			}
			// The failed use left it usable for its own purpose.
			if got, err := use(s, token, purposeReset); err != nil || got != id {
				t.Errorf("use for its purpose = %q, %v; want %q", got, err, id)
			}
		})
		t.Run("expiry", func(t *testing.T) {
			token := issue(t, s, id, purposeReset, resetTTL)
			c.Advance(resetTTL)
			if _, err := s.peekToken(ctx, db, token, purposeReset); err != nil {
				t.Fatalf("at its last millisecond: %v, want valid", err)
			}
			c.Advance(time.Millisecond)
			if _, err := use(s, token, purposeReset); !errors.Is(err, errBadToken) {
				t.Errorf("expired: %v, want %v", err, errBadToken)
			}
		})
		t.Run("a new token replaces the old", func(t *testing.T) {
			old := issue(t, s, id, purposeReset, resetTTL)
			other := issue(t, s, id, purposeGuardian, guardianTTL)
			fresh := issue(t, s, id, purposeReset, resetTTL)
			if _, err := use(s, old, purposeReset); !errors.Is(err, errBadToken) {
				t.Errorf("replaced token: %v, want %v", err, errBadToken)
			}
			if _, err := use(s, other, purposeGuardian); err != nil {
				t.Errorf("token of another purpose: %v, want still valid", err)
			}
			if _, err := use(s, fresh, purposeReset); err != nil {
				t.Errorf("new token: %v", err)
			}
		})
		t.Run("garbage", func(t *testing.T) {
			for _, token := range []string{"", "nope", strings.Repeat("A", 43)} {
				if _, err := use(s, token, purposeReset); !errors.Is(err, errBadToken) {
					t.Errorf("token %q: %v, want %v", token, err, errBadToken)
				}
			}
		})
		if db.Dialect == store.Postgres {
			t.Run("concurrent use", func(t *testing.T) { concurrentUse(t, s, id) })
		}
	})
}

// concurrentUse uses one token in two transactions at once: the second reads the row
// before the first commits its removal, then waits on the first's row lock. Only one
// may succeed.
func concurrentUse(t *testing.T, s *Service, id string) {
	ctx := context.Background()
	token := issue(t, s, id, purposeReset, resetTTL)
	used, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.db.InTx(ctx, func(tx *store.Tx) error {
			_, err := s.useToken(ctx, tx, token, purposeReset)
			close(used)
			<-release
			return err
		})
	}()
	<-used
	second := make(chan error, 1)
	go func() {
		_, err := use(s, token, purposeReset)
		second <- err
	}()
	// Wait until the second transaction is blocked on the first's lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM account_tokens%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-second:
			t.Fatalf("the second use finished before the first committed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second use never waited for the first")
		}
		<-time.After(5 * time.Millisecond) // poll: the order is fixed by the lock, not by the wait
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := <-second; !errors.Is(err, errBadToken) {
		t.Errorf("second, concurrent use: %v, want %v", err, errBadToken)
	}
}

func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, db, c)
		id := register(t, s, "ada@example.org")
		// Before the address is proven, the right password is answered as a wrong one:
		// a taken address must not be told from a new one by its login's answer.
		if _, _, err := s.Login(ctx, "ada@example.org", testPassword, Meta{}); !errors.Is(err, errLogin) {
			t.Errorf("login before verification: %v, want the refusal of a wrong password", err)
		}
		activate(t, s, id)

		token, sess, err := s.Login(ctx, " ADA@example.org ", testPassword, Meta{IP: "192.0.2.7", UserAgent: "Test/1.0"})
		if err != nil {
			t.Fatalf("Login: %v", err)
		}
		if sess.ID != hashToken(token) || sess.ID == token || !sess.ExpiresAt.Equal(c.Now().Add(24*time.Hour)) {
			t.Errorf("session = %+v; want the token's hash, expiring in 24h", sess)
		}
		lastSeen := func() time.Time {
			t.Helper()
			var ms int64
			if err := db.QueryRowContext(ctx, `SELECT last_seen_at FROM sessions WHERE id = $1`, sess.ID).Scan(&ms); err != nil {
				t.Fatal(err)
			}
			return store.FromMillis(ms)
		}
		start := c.Now()

		c.Advance(touchEvery)
		if got, err := s.Authenticate(ctx, token); err != nil || got.AccountID != id {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
		if got := lastSeen(); !got.Equal(start) {
			t.Errorf("last seen after a minute = %v, want %v (not yet refreshed)", got, start)
		}
		c.Advance(time.Millisecond)
		if _, err := s.Authenticate(ctx, token); err != nil {
			t.Fatal(err)
		}
		if got := lastSeen(); !got.Equal(c.Now()) {
			t.Errorf("last seen after a minute and a millisecond = %v, want %v", got, c.Now())
		}

		infos, err := s.Sessions(ctx, id, sess.ID)
		if err != nil || len(infos) != 1 || !infos[0].Current || infos[0].IP != "192.0.2.7" || infos[0].UserAgent != "Test/1.0" {
			t.Errorf("Sessions = %+v, %v; want the one session, current, its IP and browser opened", infos, err)
		}

		c.Advance(24*time.Hour - touchEvery)
		if _, err := s.Authenticate(ctx, token); !errors.Is(err, errNoSession) {
			t.Errorf("expired session: %v, want %v", err, errNoSession)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE id = $1`, sess.ID).Scan(&n); err != nil || n != 0 {
			t.Errorf("expired session rows = %d, %v; want it removed", n, err)
		}
		if _, err := s.Authenticate(ctx, ""); !errors.Is(err, errNoSession) {
			t.Errorf("no token: %v, want %v", err, errNoSession)
		}
	})
}

func TestLogin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, newClock())
		id := register(t, s, "ada@example.org")
		activate(t, s, id)
		failures := func() int {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_log WHERE event = 'login_failed'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if _, _, err := s.Login(ctx, "ada@example.org", "wrong-password-1", Meta{}); !errors.Is(err, errLogin) {
			t.Errorf("wrong password: %v, want %v", err, errLogin)
		}
		if _, _, err := s.Login(ctx, "nobody@example.org", testPassword, Meta{}); !errors.Is(err, errLogin) {
			t.Errorf("unknown address: %v, want %v", err, errLogin)
		}
		if got := failures(); got != 2 {
			t.Errorf("failed logins recorded = %d, want 2", got)
		}

		// A hash of older parameters is replaced at the next login.
		s.set.Argon2 = Argon2{MemoryKiB: 2048, Time: 1, Threads: 1}
		if _, _, err := s.Login(ctx, "ada@example.org", testPassword, Meta{}); err != nil {
			t.Fatalf("login: %v", err)
		}
		var hash string
		if err := db.QueryRowContext(ctx, `SELECT password_hash FROM accounts WHERE id = $1`, id).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if ok, stale, err := VerifyPassword(s.set.Argon2, hash, testPassword); !ok || stale || err != nil {
			t.Errorf("after login: ok=%v stale=%v err=%v; want the hash remade with the new parameters", ok, stale, err)
		}
		if _, err := s.Profile(ctx, "no-such-id"); !errors.Is(err, errNoAccount) {
			t.Errorf("Profile of an unknown id: %v, want not found", err)
		}
	})
}

// A node asked for more password checks than it can hash tells the client to come back
// (429) after slotWait instead of queueing it towards its time-out, for a known and an
// unknown address alike; once a slot is free, logins work again.
func TestBusyHashing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, newClock())
		id := register(t, s, "busy@example.org")
		activate(t, s, id)
		s.slotWait = 50 * time.Millisecond
		for range cap(s.slots) {
			s.slots <- struct{}{}
		}
		for _, addr := range []string{"busy@example.org", "nobody@example.org"} {
			_, _, err := s.Login(ctx, addr, testPassword, Meta{})
			if !errors.Is(err, errBusy) || apperr.KindOf(err) != apperr.RateLimited {
				t.Errorf("login of %s with every slot taken: %v, want busy", addr, err)
			}
		}
		for range cap(s.slots) {
			<-s.slots
		}
		if _, _, err := s.Login(ctx, "busy@example.org", testPassword, Meta{}); err != nil {
			t.Errorf("login once a slot is free: %v", err)
		}
	})
}
