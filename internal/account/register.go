package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/governance"
	stmail "steward/internal/mail"
	"steward/internal/store"
	"steward/internal/text"
)

// Registration is what a new member gives.
type Registration struct {
	Email           string
	Password        string
	Name            string
	Phone           string
	HomeAddress     string
	BusinessAddress string
	Birthdate       string // YYYY-MM-DD
	Country         string // ISO 3166-1 alpha-2
	GuardianEmail   string
}

// Registered is the answer to a registration. It is the same whether or not the
// address already had an account, so that registration reveals nothing.
type Registered struct {
	ID     string
	Status Status
}

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// ValidEmail checks an address and returns it normalized, or an error naming field.
func ValidEmail(field, raw string) (string, error) {
	e := normalizeEmail(raw)
	if e == "" {
		return "", apperr.Field(field, "required", "is required")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", apperr.Field(field, "email_invalid", "is not a valid email address")
	}
	return e, nil
}

func validPhone(field, v string) error {
	if err := text.Line(field, v, 40); err != nil {
		return err
	}
	digits := 0
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" +-().", r):
		default:
			return apperr.Field(field, "phone_invalid", "may hold only digits, spaces and + - ( ) .")
		}
	}
	if digits < 5 || digits > 17 {
		return apperr.Field(field, "phone_invalid", "must have 5 to 17 digits")
	}
	return nil
}

// Age returns the age in whole years at now of someone born on birth.
func Age(birth, now time.Time) int {
	years := now.Year() - birth.Year()
	if now.Month() < birth.Month() || (now.Month() == birth.Month() && now.Day() < birth.Day()) {
		years--
	}
	return years
}

func (s *Service) validBirthdate(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, apperr.Field(field, "required", "is required")
	}
	b, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, apperr.Field(field, "date_invalid", "must be a date as YYYY-MM-DD")
	}
	now := s.now()
	if b.After(now) {
		return time.Time{}, apperr.Field(field, "date_future", "is in the future")
	}
	if Age(b, now) > 130 {
		return time.Time{}, apperr.Field(field, "date_invalid", "is more than 130 years ago")
	}
	return b, nil
}

func validCountry(field, v string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(v))
	if c == "" {
		return "", apperr.Field(field, "required", "is required")
	}
	if !config.ValidCountry(c) {
		return "", apperr.Field(field, "country_unknown", "is not an ISO 3166-1 country code such as DE or FR")
	}
	return c, nil
}

// Field limits.
const (
	maxName    = 200
	maxAddress = 500
)

// checkProfileField validates one optional profile field by name.
func checkProfileField(name, v string) error {
	switch name {
	case "name":
		return text.Line(name, v, maxName)
	case "phone":
		return validPhone(name, v)
	default: // the postal addresses
		return text.Lines(name, v, maxAddress)
	}
}

// Register creates an account. Fields the operator turned off are refused; mandatory
// ones must be present. Below the country's digital age of consent the account waits
// for the guardian, and only the mandatory fields are kept until then.
func (s *Service) Register(ctx context.Context, r Registration, meta Meta) (Registered, error) {
	v, err := s.checkRegistration(r)
	if err != nil {
		return Registered{}, err
	}
	hash, err := s.hashPassword(ctx, v.Password)
	if err != nil {
		return Registered{}, err
	}
	out := Registered{ID: newID(), Status: PendingVerification}
	if v.minor {
		out.Status = PendingGuardian
	}
	now := store.Millis(s.now())
	err = s.db.InTx(ctx, func(tx *store.Tx) error { return s.register(ctx, tx, v, out, hash, now, meta) })
	if store.IsUniqueViolation(err) {
		// Two registrations of one address raced: the loser is answered like any other.
		return out, nil
	}
	if err != nil {
		return Registered{}, err
	}
	return out, nil
}

// registration is a Registration checked: its fields trimmed (and, for a minor, the
// optional ones emptied), its addresses normalized and its birthdate parsed.
type registration struct {
	Registration
	email, guardian, country string
	birth                    time.Time
	minor                    bool
}

// checkRegistration checks a registration's fields and decides whether the member is
// a minor who needs a guardian.
func (s *Service) checkRegistration(r Registration) (registration, error) {
	email, err := ValidEmail("email", r.Email)
	if err != nil {
		return registration{}, err
	}
	values := map[string]*string{"name": &r.Name, "phone": &r.Phone, "home_address": &r.HomeAddress, "business_address": &r.BusinessAddress}
	if err := s.checkProfileFields(values); err != nil {
		return registration{}, err
	}
	if err := s.checkPassword("password", r.Password, email, r.Name); err != nil {
		return registration{}, err
	}
	birth, err := s.validBirthdate("birthdate", r.Birthdate)
	if err != nil {
		return registration{}, err
	}
	country, err := validCountry("country", r.Country)
	if err != nil {
		return registration{}, err
	}
	minor := Age(birth, s.now()) < s.set.AgeOfConsent(country)
	var guardian string
	if minor {
		if r.GuardianEmail == "" {
			return registration{}, apperr.Field("guardian_email", "guardian_required",
				fmt.Sprintf("is required: below %d a parent or guardian must agree", s.set.AgeOfConsent(country)))
		}
		if guardian, err = ValidEmail("guardian_email", r.GuardianEmail); err != nil {
			return registration{}, err
		}
		if guardian == email {
			return registration{}, apperr.Field("guardian_email", "guardian_self", "must be the guardian's own address, not yours")
		}
		// Nothing beyond the minimum before the guardian agrees: optional fields wait.
		for _, f := range config.ProfileFields {
			if s.set.Fields[f] != config.Required {
				*values[f] = ""
			}
		}
	} else if strings.TrimSpace(r.GuardianEmail) != "" {
		return registration{}, apperr.Field("guardian_email", "guardian_not_needed", "is only asked of members below the age of consent")
	}
	return registration{Registration: r, email: email, guardian: guardian, country: country, birth: birth, minor: minor}, nil
}

// checkProfileFields trims the optional profile fields in place and checks each
// against what the operator asks for: required, collected, or off.
func (s *Service) checkProfileFields(values map[string]*string) error {
	for _, f := range config.ProfileFields {
		v := strings.TrimSpace(*values[f])
		*values[f] = v
		switch req := s.set.Fields[f]; {
		case req == config.Required && v == "":
			return apperr.Field(f, "required", "is required")
		case req == config.Off && v != "":
			return apperr.Field(f, "field_disabled", "is not collected by this site")
		case v != "":
			if err := checkProfileField(f, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// register writes a checked registration in tx: the account and its data key, the
// verification mail (and the guardian's), and the audit entry. A taken address gets
// its owner a mail instead, and nothing else changes.
func (s *Service) register(ctx context.Context, tx *store.Tx, r registration, out Registered, hash string, now int64, meta Meta) error {
	email, guardian := r.email, r.guardian
	var existing string
	// An account being erased is gone already: its key is shredded, and no mail is
	// made about it (the insert below then fails on the address, answered alike).
	var unconfirmed bool
	err := tx.QueryRowContext(ctx, `SELECT id, email_verified_at IS NULL FROM accounts WHERE email_idx = $1 AND status <> $2`,
		s.index.Address(email), Erasing).Scan(&existing, &unconfirmed)
	if err == nil {
		// Taken: answer as for a new account and tell the owner instead. An account
		// whose address was never confirmed gets a new confirmation link in that mail.
		data := map[string]string{"LoginLink": s.set.BaseURL + "/login", "ResetLink": s.set.BaseURL + "/password/forgot"}
		if unconfirmed {
			token, err := s.issueToken(ctx, tx, existing, purposeVerify, verifyTTL)
			if err != nil {
				return err
			}
			data["ConfirmLink"] = s.link("/verify", token)
		}
		return s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: existing, To: email, Template: stmail.AccountExists, Data: data})
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("account: register: %w", err)
	}
	key, err := s.vault.KeyIn(ctx, tx, out.ID, true)
	if err != nil {
		return fmt.Errorf("account: register: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO accounts (id, email, email_idx, password_hash, status, name, phone, home_address,
		business_address, birthdate, country, guardian_email, guardian_idx, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)`,
		out.ID, key.SealText(labelEmail, email), s.index.Address(email), hash, out.Status, key.SealOptional(labelName, r.Name),
		key.SealOptional(labelPhone, r.Phone), key.SealOptional(labelHomeAddress, r.HomeAddress),
		key.SealOptional(labelBusinessAddress, r.BusinessAddress), key.SealText(labelBirthdate, r.birth.Format("2006-01-02")),
		key.SealText(labelCountry, r.country), key.SealOptional(labelGuardianEmail, guardian), s.guardianIndex(guardian), now)
	if err != nil {
		return fmt.Errorf("account: register: %w", err)
	}
	token, err := s.issueToken(ctx, tx, out.ID, purposeVerify, verifyTTL)
	if err != nil {
		return err
	}
	if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: out.ID, To: email, Template: stmail.VerifyEmail, Data: map[string]string{
		"Name": r.Name, "Link": s.link("/verify", token),
	}}); err != nil {
		return err
	}
	if s.registered != nil {
		if err := s.registered(ctx, tx, out.ID); err != nil {
			return err
		}
	}
	// A minor's guardian is asked only once the child has proven the address (askGuardian):
	// mailed now, the guardian's mailbox, which anyone can name, would learn whether the
	// address was free.
	return s.audit.Record(ctx, tx, governance.Event{Name: "registered", AccountID: out.ID, IP: meta.IP, Detail: string(out.Status)})
}

// VerifyEmail uses a verification token: the address is confirmed and, unless a
// guardian still has to agree, the account becomes active. The same link confirms a
// changed address, which then replaces the old one.
func (s *Service) VerifyEmail(ctx context.Context, token string, meta Meta) (Status, error) {
	var status Status
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if id, err := s.useToken(ctx, tx, token, purposeEmailChange); err == nil {
			return s.confirmEmailChange(ctx, tx, id, &status, meta)
		} else if !errors.Is(err, errBadToken) {
			return err
		}
		id, err := s.useToken(ctx, tx, token, purposeVerify)
		if err != nil {
			return err
		}
		var email string
		var guardianNeeded, firstProof bool
		if err := tx.QueryRowContext(ctx, `SELECT status, email, guardian_email IS NOT NULL AND guardian_confirmed_at IS NULL,
			email_verified_at IS NULL FROM accounts WHERE id = $1`, id).
			Scan(&status, &email, &guardianNeeded, &firstProof); err != nil {
			return fmt.Errorf("account: verify: %w", err)
		}
		key, err := s.vault.KeyIn(ctx, tx, id, false)
		if err != nil {
			return fmt.Errorf("account: verify: %w", err)
		}
		if email, err = key.OpenText(labelEmail, email); err != nil {
			return fmt.Errorf("account: verify: %w", err)
		}
		if status == PendingVerification && !guardianNeeded {
			status = Active
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET email_verified_at = $1, status = $2, updated_at = $1 WHERE id = $3`,
			store.Millis(s.now()), status, id); err != nil {
			return fmt.Errorf("account: verify: %w", err)
		}
		if err := s.proven(ctx, tx, id, email); err != nil {
			return err
		}
		if guardianNeeded && firstProof {
			if err := s.askGuardian(ctx, tx, id); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "email_verified", AccountID: id, IP: meta.IP})
	})
	return status, err
}

func (s *Service) confirmEmailChange(ctx context.Context, tx *store.Tx, id string, status *Status, meta Meta) error {
	var pending sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT status, pending_email FROM accounts WHERE id = $1`, id).Scan(status, &pending); err != nil {
		return fmt.Errorf("account: verify: %w", err)
	}
	if !pending.Valid {
		return errBadToken
	}
	key, err := s.vault.KeyIn(ctx, tx, id, false)
	if err != nil {
		return fmt.Errorf("account: verify: %w", err)
	}
	addr, err := key.OpenText(labelEmail, pending.String)
	if err != nil {
		return fmt.Errorf("account: verify: %w", err)
	}
	// The processors are told while the old address, which they know, is the member's.
	if err := s.onRectified(ctx, tx, id, map[string]string{"email": addr}, ""); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE accounts SET email = pending_email, email_idx = $1, pending_email = NULL, email_verified_at = $2,
		updated_at = $2 WHERE id = $3`, s.index.Address(addr), store.Millis(s.now()), id)
	if store.IsUniqueViolation(err) {
		return apperr.Field("email", "email_taken", "this address now belongs to another account")
	}
	if err != nil {
		return fmt.Errorf("account: verify: %w", err)
	}
	if err := s.proven(ctx, tx, id, addr); err != nil {
		return err
	}
	return s.audit.Record(ctx, tx, governance.Event{Name: "email_changed", AccountID: id, IP: meta.IP})
}

// askGuardian mails a minor's guardian the link to agree or decline. It is called when
// the child first proves the address (the verification link, or a password reset),
// never at registration: what the guardian's mailbox receives then depends only on what
// the holder of the child's address did, not on whether the address had an account.
// The link lasts until the registration would be erased as abandoned.
func (s *Service) askGuardian(ctx context.Context, tx *store.Tx, id string) error {
	c, err := s.guardianContact(ctx, tx, id)
	if err != nil {
		return err
	}
	email, name, guardian, created := c.child, c.name, c.guardian, c.created
	ttl := store.FromMillis(created).Add(guardianTTL).Sub(s.now())
	if ttl <= 0 {
		return nil // abandoned already: the registration is about to be erased
	}
	token, err := s.issueToken(ctx, tx, id, purposeGuardian, ttl)
	if err != nil {
		return err
	}
	return s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: id, To: guardian, Template: stmail.GuardianConsent, Data: map[string]string{
		"ChildName": name, "ChildEmail": email, "Link": s.link("/guardian", token),
	}})
}

// GuardianRequest is what the guardian sees before deciding.
type GuardianRequest struct {
	ChildName  string
	ChildEmail string
}

// GuardianRequestFor shows the guardian what the token is about, without using it.
func (s *Service) GuardianRequestFor(ctx context.Context, token string) (GuardianRequest, error) {
	id, err := s.peekToken(ctx, s.db, token, purposeGuardian)
	if err != nil {
		return GuardianRequest{}, err
	}
	p, err := s.Profile(ctx, id)
	if err != nil {
		return GuardianRequest{}, fmt.Errorf("account: guardian: %w", err)
	}
	return GuardianRequest{ChildName: p.Name, ChildEmail: p.Email}, nil
}

// GuardianDecide records the guardian's answer. Agreeing activates the account once
// the child's address is verified; declining erases the registration at once.
func (s *Service) GuardianDecide(ctx context.Context, token string, agree bool, meta Meta) error {
	var id, email string
	var verified bool
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if id, err = s.useToken(ctx, tx, token, purposeGuardian); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT email, email_verified_at IS NOT NULL FROM accounts WHERE id = $1`, id).
			Scan(&email, &verified); err != nil {
			return fmt.Errorf("account: guardian: %w", err)
		}
		key, err := s.vault.KeyIn(ctx, tx, id, false)
		if err != nil {
			return fmt.Errorf("account: guardian: %w", err)
		}
		if email, err = key.OpenText(labelEmail, email); err != nil {
			return fmt.Errorf("account: guardian: %w", err)
		}
		if !agree {
			return nil
		}
		status := PendingVerification
		if verified {
			status = Active
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET guardian_confirmed_at = $1, status = $2, updated_at = $1 WHERE id = $3`,
			store.Millis(s.now()), status, id); err != nil {
			return fmt.Errorf("account: guardian: %w", err)
		}
		if verified {
			if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: id, To: email, Template: stmail.AccountActive,
				Data: map[string]string{"LoginLink": s.set.BaseURL + "/login"}}); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "guardian_agreed", AccountID: id, IP: meta.IP})
	})
	if err != nil || agree {
		return err
	}
	if s.eraser == nil {
		return fmt.Errorf("account: guardian declined but no eraser is wired")
	}
	return s.eraser(ctx, id, "guardian_declined")
}

// NormalizeEmail returns the form in which addresses are stored and compared.
func NormalizeEmail(e string) string { return normalizeEmail(e) }

// VerifyLinkValid reports whether a confirmation link (of a registration or of a
// changed address, then emailChange) is live, without using it: the page checks it
// before offering its button. It returns the same error VerifyEmail would.
func (s *Service) VerifyLinkValid(ctx context.Context, token string) (emailChange bool, err error) {
	if _, err := s.peekToken(ctx, s.db, token, purposeEmailChange); err == nil || !errors.Is(err, errBadToken) {
		return err == nil, err
	}
	_, err = s.peekToken(ctx, s.db, token, purposeVerify)
	return false, err
}

// ResetLinkValid reports whether a password-reset link is live, without using it.
func (s *Service) ResetLinkValid(ctx context.Context, token string) error {
	_, err := s.peekToken(ctx, s.db, token, purposeReset)
	return err
}

// ResendConfirmation mails a new confirmation link if the address belongs to an
// account that has not confirmed it yet, and for a child whose address is confirmed
// but whose guardian has not answered, mails the guardian again. It answers the same
// whatever the address is, no sooner than resetFloor, like a password reset.
func (s *Service) ResendConfirmation(ctx context.Context, rawEmail string, meta Meta) error {
	email, err := ValidEmail("email", rawEmail)
	if err != nil {
		return err
	}
	defer waitUntil(ctx, time.Now().Add(resetFloor))
	var id string
	var status Status
	var unverified, guardianPending bool
	err = s.db.QueryRowContext(ctx, `SELECT id, status, email_verified_at IS NULL,
		guardian_email IS NOT NULL AND guardian_confirmed_at IS NULL FROM accounts WHERE email_idx = $1`, s.index.Address(email)).
		Scan(&id, &status, &unverified, &guardianPending)
	if errors.Is(err, sql.ErrNoRows) || (status != PendingVerification && status != PendingGuardian) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account: resend: %w", err)
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if unverified {
			token, err := s.issueToken(ctx, tx, id, purposeVerify, verifyTTL)
			if err != nil {
				return err
			}
			if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: id, To: email, Template: stmail.VerifyEmail,
				Data: map[string]string{"Link": s.link("/verify", token)}}); err != nil {
				return err
			}
		} else if guardianPending {
			if err := s.askGuardian(ctx, tx, id); err != nil {
				return err
			}
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "confirmation_resent", AccountID: id, IP: meta.IP})
	})
}
