package account

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"steward/internal/apperr"
	"steward/internal/config"
	"steward/internal/datamap"
	"steward/internal/governance"
	stmail "steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// PublicFields are the profile fields a member can show on the public profile, in the
// order of their bit in public_mask.
var PublicFields = []string{"name", "email", "phone", "home_address", "business_address", "country"}

// Profile is everything a member gave, as the member sees and edits it.
type Profile struct {
	ID                string
	Email             string
	PendingEmail      string
	EmailVerified     bool
	Status            Status
	Name              string
	Phone             string
	HomeAddress       string
	BusinessAddress   string
	Birthdate         string
	Country           string
	GuardianEmail     string
	GuardianConfirmed bool
	Public            map[string]bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Value returns a field of the profile by its name in PublicFields.
func (p Profile) Value(field string) string {
	switch field {
	case "name":
		return p.Name
	case "email":
		return p.Email
	case "phone":
		return p.Phone
	case "home_address":
		return p.HomeAddress
	case "business_address":
		return p.BusinessAddress
	case "country":
		return p.Country
	}
	return ""
}

var errNoAccount = apperr.New(apperr.NotFound, "account_not_found", "no such account")

// profileColumns are read by Profile and by SessionProfile.
const profileColumns = `a.id, a.email, a.pending_email, a.email_verified_at, a.status, a.name, a.phone, a.home_address,
	a.business_address, a.birthdate, a.country, a.guardian_email, a.guardian_confirmed_at, a.public_mask, a.created_at, a.updated_at`

// Labels of the sealed columns. The current and the pending address share one: a
// confirmed change moves the sealed value from one column to the other.
const (
	labelEmail           = "accounts.email"
	labelName            = "accounts.name"
	labelPhone           = "accounts.phone"
	labelHomeAddress     = "accounts.home_address"
	labelBusinessAddress = "accounts.business_address"
	labelBirthdate       = "accounts.birthdate"
	labelCountry         = "accounts.country"
	labelGuardianEmail   = "accounts.guardian_email"
	labelIP              = "sessions.ip"
	labelUserAgent       = "sessions.user_agent"
)

// profileQuery reads a profile; it is prepared at start.
const profileQuery = `SELECT ` + profileColumns + `, k.wrapped, k.epoch FROM accounts a LEFT JOIN vault_keys k ON k.subject_id = a.id WHERE a.id = $1`

// sessionProfileQuery checks a session and reads its profile in one statement: GET /me
// is the hottest authenticated route, and on SQLite every statement opens a read
// transaction of its own.
const sessionProfileQuery = `SELECT s.expires_at, s.last_seen_at, s.second_factor_at, s.reauth_at, ` + profileColumns +
	`, k.wrapped, k.epoch FROM sessions s JOIN accounts a ON a.id = s.account_id LEFT JOIN vault_keys k ON k.subject_id = a.id WHERE s.id = $1`

// profileRow receives the profile columns of a query.
type profileRow struct {
	p                                        Profile
	pending, name, phone, home, business, gd sql.NullString
	verified, guardianAt                     sql.NullInt64
	mask, created, updated                   int64
	birth, country                           string
	wrapped                                  []byte
	epoch                                    sql.NullInt64
}

// dest returns the scan destinations: lead first (columns selected before the
// profile's), then the profile columns.
func (r *profileRow) dest(lead ...any) []any {
	return append(lead, &r.p.ID, &r.p.Email, &r.pending, &r.verified, &r.p.Status, &r.name, &r.phone, &r.home,
		&r.business, &r.birth, &r.country, &r.gd, &r.guardianAt, &r.mask, &r.created, &r.updated, &r.wrapped, &r.epoch)
}

// profile opens the sealed columns with the member's key. An account whose key is
// gone is being erased: it is no account any more.
func (s *Service) profile(r *profileRow) (Profile, error) {
	if !r.epoch.Valid {
		return Profile{}, errNoAccount
	}
	key, err := s.vault.Unwrap(r.p.ID, r.wrapped, r.epoch.Int64)
	if err != nil {
		return Profile{}, fmt.Errorf("account: profile: %w", err)
	}
	p := r.p
	for _, f := range []struct {
		label  string
		sealed string
		out    *string
	}{
		{labelEmail, r.p.Email, &p.Email}, {labelEmail, r.pending.String, &p.PendingEmail},
		{labelName, r.name.String, &p.Name}, {labelPhone, r.phone.String, &p.Phone},
		{labelHomeAddress, r.home.String, &p.HomeAddress}, {labelBusinessAddress, r.business.String, &p.BusinessAddress},
		{labelBirthdate, r.birth, &p.Birthdate}, {labelCountry, r.country, &p.Country},
		{labelGuardianEmail, r.gd.String, &p.GuardianEmail},
	} {
		if *f.out, err = key.OpenText(f.label, f.sealed); err != nil {
			return Profile{}, fmt.Errorf("account: profile: %w", err)
		}
	}
	p.EmailVerified, p.GuardianConfirmed = r.verified.Valid, r.guardianAt.Valid
	p.CreatedAt, p.UpdatedAt = store.FromMillis(r.created), store.FromMillis(r.updated)
	p.Public = make(map[string]bool, len(PublicFields))
	for i, f := range PublicFields {
		p.Public[f] = r.mask&(1<<i) != 0
	}
	return p, nil
}

// Profile returns the member's profile.
func (s *Service) Profile(ctx context.Context, accountID string) (Profile, error) {
	var r profileRow
	err := s.profileStmt.QueryRowContext(ctx, accountID).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, errNoAccount
	}
	if err != nil {
		return Profile{}, fmt.Errorf("account: profile: %w", err)
	}
	return s.profile(&r)
}

// Members returns up to limit active accounts whose id sorts after after, in the order
// of their ids: a mail to every member goes through them a batch at a time.
func (s *Service) Members(ctx context.Context, after string, limit int) ([]Profile, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+profileColumns+`, k.wrapped, k.epoch FROM accounts a LEFT JOIN vault_keys k ON k.subject_id = a.id
		WHERE a.status = $1 AND a.id > $2 ORDER BY a.id LIMIT $3`, Active, after, limit)
	if err != nil {
		return nil, fmt.Errorf("account: members: %w", err)
	}
	defer rows.Close()
	var out []Profile
	for rows.Next() {
		var r profileRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("account: members: %w", err)
		}
		p, err := s.profile(&r)
		if errors.Is(err, errNoAccount) {
			continue // its key is gone: being erased
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SessionProfile authenticates a token and returns the member's profile, in one query.
func (s *Service) SessionProfile(ctx context.Context, token string) (Session, Profile, error) {
	if token == "" {
		return Session{}, Profile{}, errNoSession
	}
	id := hashToken(token)
	var r profileRow
	var expires, seen int64
	var factor, reauth sql.NullInt64
	err := s.sessProfileStmt.QueryRowContext(ctx, id).Scan(r.dest(&expires, &seen, &factor, &reauth)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, Profile{}, errNoSession
	}
	if err != nil {
		return Session{}, Profile{}, fmt.Errorf("account: authenticate: %w", err)
	}
	p, err := s.profile(&r)
	if errors.Is(err, errNoAccount) {
		return Session{}, Profile{}, errNoSession
	}
	if err != nil {
		return Session{}, Profile{}, err
	}
	sess, err := s.liveSession(ctx, id, r.p.ID, expires, seen, factor, reauth)
	if err != nil {
		return Session{}, Profile{}, err
	}
	return sess, p, nil
}

// Minor reports whether the member is below the digital age of consent of their
// country today.
func (s *Service) Minor(p Profile) bool {
	b, err := time.Parse("2006-01-02", p.Birthdate)
	return err == nil && Age(b, s.now()) < s.set.AgeOfConsent(p.Country)
}

// Patch is a profile change: nil leaves a field as it is, "" clears an optional one.
type Patch struct {
	Email           *string
	Name            *string
	Phone           *string
	HomeAddress     *string
	BusinessAddress *string
	Birthdate       *string
	Country         *string
	Public          map[string]bool
	// CurrentPassword is required to change the email address.
	CurrentPassword string
	// RequestID is the privacy request (a rectification) the change answers, if any.
	RequestID string
	// Staff: the change is staff's answer to a rectification request, whose evidence
	// they checked; a minor's birthdate and country may change then.
	Staff bool
}

// Update applies a patch. A new email address takes effect once it is verified by the
// link mailed to it; until then the old one stays.
func (s *Service) Update(ctx context.Context, accountID string, patch Patch, meta Meta) (Profile, error) {
	p, err := s.Profile(ctx, accountID)
	if err != nil {
		return Profile{}, err
	}
	before := p
	if err := s.patchProfile(&p, patch); err != nil {
		return Profile{}, err
	}
	mask, err := publicMask(p, patch.Public)
	if err != nil {
		return Profile{}, err
	}
	if s.Minor(p) {
		// A child has no public profile (Public): nothing can be made to show on it.
		for _, f := range PublicFields {
			if patch.Public[f] {
				return Profile{}, apperr.Field("public."+f, "public_minor", "cannot be shown: members below the age of consent have no public profile")
			}
		}
		mask = 0
	}
	newEmail, err := s.patchedEmail(ctx, p, patch)
	if err != nil {
		return Profile{}, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		key, err := s.vault.KeyIn(ctx, tx, accountID, false)
		if err != nil {
			return fmt.Errorf("account: update: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET name = $1, phone = $2, home_address = $3, business_address = $4,
			birthdate = $5, country = $6, public_mask = $7, updated_at = $8 WHERE id = $9`,
			key.SealOptional(labelName, p.Name), key.SealOptional(labelPhone, p.Phone), key.SealOptional(labelHomeAddress, p.HomeAddress),
			key.SealOptional(labelBusinessAddress, p.BusinessAddress), key.SealText(labelBirthdate, p.Birthdate),
			key.SealText(labelCountry, p.Country), mask, store.Millis(s.now()), accountID)
		if err != nil {
			return fmt.Errorf("account: update: %w", err)
		}
		if newEmail != "" {
			if err := s.requestEmailChange(ctx, tx, key, p, newEmail); err != nil {
				return err
			}
		}
		if err := s.onRectified(ctx, tx, accountID, rectified(before, p), patch.RequestID); err != nil {
			return err
		}
		return s.audit.Record(ctx, tx, governance.Event{Name: "profile_updated", AccountID: accountID, IP: meta.IP,
			Detail: changedFields(before, p, before.publicMask() != mask, newEmail != "")})
	})
	if err != nil {
		return Profile{}, err
	}
	return s.Profile(ctx, accountID)
}

// Rectified names the profile fields that differ between two versions of a profile,
// in the order the profile lists them (what a rectification changed).
func Rectified(before, after Profile) []string {
	changed := rectified(before, after)
	var out []string
	for _, f := range []string{"name", "phone", "home_address", "business_address", "country", "birthdate"} {
		if _, ok := changed[f]; ok {
			out = append(out, f)
		}
	}
	return out
}

// rectified are the profile fields an update changed, with their new values.
func rectified(before, after Profile) map[string]string {
	out := map[string]string{}
	for _, f := range []string{"name", "phone", "home_address", "business_address", "country"} {
		if before.Value(f) != after.Value(f) {
			out[f] = after.Value(f)
		}
	}
	if before.Birthdate != after.Birthdate {
		out["birthdate"] = after.Birthdate
	}
	return out
}

// onRectified tells the rectified hook of the changed fields, if any.
func (s *Service) onRectified(ctx context.Context, tx *store.Tx, accountID string, fields map[string]string, requestID string) error {
	if len(fields) == 0 || s.rectified == nil {
		return nil
	}
	return s.rectified(ctx, tx, accountID, fields, requestID)
}

// patchProfile checks the patch's profile fields, birthdate and country against what
// the operator asks for and what the member's age allows, and applies them to p.
func (s *Service) patchProfile(p *Profile, patch Patch) error {
	fields := map[string]struct {
		in  *string
		cur *string
	}{
		"name": {patch.Name, &p.Name}, "phone": {patch.Phone, &p.Phone},
		"home_address": {patch.HomeAddress, &p.HomeAddress}, "business_address": {patch.BusinessAddress, &p.BusinessAddress},
	}
	for _, f := range config.ProfileFields {
		in := fields[f].in
		if in == nil {
			continue
		}
		v := strings.TrimSpace(*in)
		switch req := s.set.Fields[f]; {
		case v == "" && req == config.Required:
			return apperr.Field(f, "required", "is required")
		case v != "" && req == config.Off && v != *fields[f].cur:
			return apperr.Field(f, "field_disabled", "is not collected by this site")
		case v != "":
			if err := checkProfileField(f, v); err != nil {
				return err
			}
		}
		if p.Status == PendingGuardian && v != "" && s.set.Fields[f] != config.Required {
			return apperr.Field(f, "guardian_pending", "can be added once your parent or guardian has agreed")
		}
		*fields[f].cur = v
	}
	// A minor's age rests on what their guardian agreed to: the birthdate and the
	// country (whose age of consent applies) change only with the guardian, through
	// support, or the child could make themselves an adult. Sending the values as they
	// are (as the profile form does) is no change.
	minor := s.Minor(*p)
	if patch.Birthdate != nil {
		if _, err := s.validBirthdate("birthdate", *patch.Birthdate); err != nil {
			return err
		}
		if minor && !patch.Staff && *patch.Birthdate != p.Birthdate {
			return errMinorLocked("birthdate")
		}
		p.Birthdate = *patch.Birthdate
	}
	if patch.Country != nil {
		c, err := validCountry("country", *patch.Country)
		if err != nil {
			return err
		}
		if minor && !patch.Staff && c != p.Country {
			return errMinorLocked("country")
		}
		p.Country = c
	}
	if (patch.Birthdate != nil || patch.Country != nil) && s.Minor(*p) && !p.GuardianConfirmed {
		return apperr.Field("birthdate", "guardian_required",
			"puts you below the age of consent of your country; a parent or guardian must agree first, please contact support")
	}
	return nil
}

// errMinorLocked refuses a minor's change of a field their age rests on.
func errMinorLocked(field string) error {
	return apperr.Field(field, "guardian_required",
		"can be changed only with your parent or guardian: ask them to contact support")
}

// changedFields names what an update changed, for the security log: the names of the
// fields, comma separated, never their values; "public" when what the public profile
// shows changed, "email" when a new address waits for its confirmation.
func changedFields(before, after Profile, public, email bool) string {
	var out []string
	for _, f := range []string{"name", "phone", "home_address", "business_address", "country"} {
		if before.Value(f) != after.Value(f) {
			out = append(out, f)
		}
	}
	if before.Birthdate != after.Birthdate {
		out = append(out, "birthdate")
	}
	if email {
		out = append(out, "email")
	}
	if public {
		out = append(out, "public")
	}
	return strings.Join(out, ",")
}

// publicMask is the stored mask of the fields the profile shows now.
func (p Profile) publicMask() int64 {
	m, _ := publicMask(p, nil)
	return m
}

// publicMask is the bit mask of PublicFields the member shows once patch is applied.
func publicMask(p Profile, patch map[string]bool) (int64, error) {
	var mask int64
	for i, f := range PublicFields {
		on := p.Public[f]
		if v, ok := patch[f]; ok {
			on = v
		}
		if on {
			mask |= 1 << i
		}
	}
	for f := range patch {
		if !slices.Contains(PublicFields, f) {
			return 0, apperr.Field("public."+f, "field_unknown", "is not a field that can be shown publicly")
		}
	}
	return mask, nil
}

// patchedEmail is the new address a patch asks for, or "" when it asks for none or for
// the current one. Changing it takes the current password.
func (s *Service) patchedEmail(ctx context.Context, p Profile, patch Patch) (string, error) {
	if patch.Email == nil {
		return "", nil
	}
	e, err := ValidEmail("email", *patch.Email)
	if err != nil {
		return "", err
	}
	if e == p.Email {
		return "", nil
	}
	if err := s.CheckPassword(ctx, p.ID, "current_password", patch.CurrentPassword); err != nil {
		return "", err
	}
	return e, nil
}

// requestEmailChange keeps the new address as pending and mails it a link to confirm
// it; the old address hears of it, so a change nobody asked for is noticed.
func (s *Service) requestEmailChange(ctx context.Context, tx *store.Tx, key *vault.Key, p Profile, newEmail string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET pending_email = $1 WHERE id = $2`, key.SealText(labelEmail, newEmail), p.ID); err != nil {
		return fmt.Errorf("account: update: %w", err)
	}
	token, err := s.issueToken(ctx, tx, p.ID, purposeEmailChange, verifyTTL)
	if err != nil {
		return err
	}
	if err := s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: p.ID, To: newEmail, Template: stmail.VerifyEmail, Data: map[string]string{
		"Name": p.Name, "Link": s.link("/verify", token),
	}}); err != nil {
		return err
	}
	return s.outbox.Enqueue(ctx, tx, stmail.Transactional{SubjectID: p.ID, To: p.Email, Template: stmail.EmailChanging, Data: map[string]string{
		"ResetLink": s.set.BaseURL + "/password/forgot",
	}})
}

// PublicProfile is what anyone may see of a member.
type PublicProfile struct {
	ID     string
	Fields []PublicField
}

// PublicField is one field a member chose to show.
type PublicField struct {
	Name  string
	Value string
}

// Public returns the public profile of an active member: only the fields they chose to
// show. Members below the age of consent have no public profile.
func (s *Service) Public(ctx context.Context, accountID string) (PublicProfile, error) {
	p, err := s.Profile(ctx, accountID)
	if err != nil || p.Status != Active || s.Minor(p) {
		return PublicProfile{}, errNoAccount
	}
	out := PublicProfile{ID: p.ID}
	for _, f := range PublicFields {
		if p.Public[f] && p.Value(f) != "" {
			out.Fields = append(out.Fields, PublicField{Name: f, Value: p.Value(f)})
		}
	}
	return out, nil
}

// Holder is the account's entry in the data map.
type Holder struct{}

var (
	accountsTable = datamap.Table{Name: "accounts", Subject: "id", Columns: []datamap.Column{
		{Name: "id", Categories: []string{"user.unique_id"}, Plain: "a random id: the subject's key is found by it"},
		{Name: "email", Categories: []string{"user.contact.email"}, Sealed: true},
		{Name: "email_idx", Categories: []string{"user.contact.email"}, Plain: "blind index: a keyed hash of the address, for login", Withheld: "a keyed hash of your address"},
		{Name: "pending_email", Categories: []string{"user.contact.email"}, Sealed: true, Label: labelEmail},
		{Name: "email_verified_at", NotPersonal: "time of verification", Time: true},
		{Name: "password_hash", Categories: []string{"user.authorization.credentials"}, Plain: "a slow salted hash (argon2id), useless without the password", Withheld: "a salted argon2id hash of your password; giving it out would only help someone guess it"},
		{Name: "status", NotPersonal: "state of the account"},
		{Name: "name", Categories: []string{"user.name"}, Sealed: true},
		{Name: "phone", Categories: []string{"user.contact.phone_number"}, Sealed: true},
		{Name: "home_address", Categories: []string{"user.contact.address"}, Sealed: true},
		{Name: "business_address", Categories: []string{"user.contact.address"}, Sealed: true},
		{Name: "birthdate", Categories: []string{"user.demographic.date_of_birth"}, Sealed: true},
		{Name: "country", Categories: []string{"user.contact.address.country"}, Sealed: true},
		{Name: "guardian_email", Categories: []string{"user.contact.email"}, Sealed: true},
		{Name: "guardian_idx", Categories: []string{"user.contact.email"}, Plain: "blind index: a keyed hash of the guardian's address, for the guardian's own account to find the child", Withheld: "a keyed hash of your guardian's address"},
		{Name: "guardian_confirmed_at", NotPersonal: "time the guardian agreed", Time: true},
		{Name: "public_mask", NotPersonal: "which fields are public"},
		{Name: "created_at", NotPersonal: "time of registration", Time: true},
		{Name: "updated_at", NotPersonal: "time of the last change", Time: true},
		{Name: "last_login_at", NotPersonal: "time of the last login, for the inactive-accounts retention rule", Time: true},
		{Name: "inactive_warned_at", NotPersonal: "time the member was warned the account would be erased for inactivity", Time: true},
	}}
	sessionsTable = datamap.Table{Name: "sessions", Subject: "account_id", Columns: []datamap.Column{
		{Name: "id", Categories: []string{"user.authorization.credentials"}, Plain: "the SHA-256 of a random token", Withheld: "the hash of a session token"},
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "created_at", NotPersonal: "time of login", Time: true},
		{Name: "last_seen_at", NotPersonal: "time of the last request", Time: true},
		{Name: "expires_at", NotPersonal: "end of the session", Time: true},
		{Name: "ip", Categories: []string{"user.device.ip_address"}, Sealed: true},
		{Name: "user_agent", Categories: []string{"user.device.browser"}, Sealed: true},
		{Name: "second_factor_at", NotPersonal: "time the session passed the second factor", Time: true},
		{Name: "reauth_at", NotPersonal: "time the password or a code was last given again", Time: true},
	}}
	tokensTable = datamap.Table{Name: "account_tokens", Subject: "account_id", Columns: []datamap.Column{
		{Name: "id", Categories: []string{"user.authorization.credentials"}, Plain: "the SHA-256 of a random token", Withheld: "the hash of a one-time link"},
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "purpose", NotPersonal: "what the link is for"},
		{Name: "created_at", NotPersonal: "time the link was made", Time: true},
		{Name: "expires_at", NotPersonal: "end of the link", Time: true},
	}}
	addressesTable = datamap.Table{Name: "account_addresses", Subject: "account_id", Columns: []datamap.Column{
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "address_hash", Categories: []string{"user.contact.email"},
			Plain:    "a keyed hash (blind index) of an address, compared with the hashes of addresses held elsewhere; the address itself is not kept",
			Withheld: "a keyed hash of an address you proved, kept only so that deleting your account erases what is filed under it"},
		{Name: "proven_at", NotPersonal: "time the address was proven", Time: true},
	}}
)

// Declaration describes the account's tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "account",
		Description: "Your account, profile, sessions, pending one-time links, and keyed hashes of the addresses you proved.",
		Purpose:     "Provide the account you registered for: login, profile, public profile.",
		LawfulBasis: "contract",
		Retention: "Until you delete the account; sessions and one-time links are deleted once expired (1 hour to 14 days for links); " +
			"a registration never confirmed is erased after 7 days (the operator may set another period); where the operator sets a period of inactivity, " +
			"an account not used for that long is warned by mail and erased if you do not log in within 30 days.",
		Tables: []datamap.Table{accountsTable, sessionsTable, tokensTable, addressesTable, secondFactorsTable, recoveryCodesTable},
	}
}

// Export returns the account row, its sessions, its pending links and when it proved
// each address. The public fields are written by name, not as the stored bit mask.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	secs, err := s.SelectParts(ctx, q, datamap.Part{Table: accountsTable, Where: "id = $1"},
		datamap.Part{Table: sessionsTable, Where: "account_id = $1"}, datamap.Part{Table: tokensTable, Where: "account_id = $1"},
		datamap.Part{Table: addressesTable, Where: "account_id = $1 ORDER BY proven_at"},
		datamap.Part{Table: secondFactorsTable, Where: "account_id = $1"}, datamap.Part{Table: recoveryCodesTable, Where: "account_id = $1 ORDER BY created_at"})
	if err != nil {
		return nil, err
	}
	for _, sec := range secs {
		if sec.Table != accountsTable.Name {
			continue
		}
		i := slices.Index(sec.Columns, "public_mask")
		if i < 0 {
			continue
		}
		sec.Columns[i] = "public_fields"
		for _, row := range sec.Rows {
			row[i] = publicNames(row[i])
		}
	}
	return secs, nil
}

// publicNames says a stored public_mask as the names of the fields it shows, comma
// separated ("" for none).
func publicNames(mask string) string {
	m, err := strconv.ParseInt(mask, 10, 64)
	if err != nil {
		return mask
	}
	var names []string
	for i, f := range PublicFields {
		if m&(1<<i) != 0 {
			names = append(names, f)
		}
	}
	return strings.Join(names, ",")
}

// Erase deletes the account and everything hanging from it.
func (Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	for _, q := range []string{
		`DELETE FROM account_tokens WHERE account_id = $1`,
		`DELETE FROM sessions WHERE account_id = $1`,
		`DELETE FROM recovery_codes WHERE account_id = $1`,
		`DELETE FROM second_factors WHERE account_id = $1`,
		`DELETE FROM account_addresses WHERE account_id = $1`,
		`DELETE FROM accounts WHERE id = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("account: erase: %w", err)
		}
	}
	return nil
}
