package newsletter

import (
	"context"
	"fmt"
	"strings"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the newsletter's entry in the data map.
type Holder struct{ S *Service }

var (
	subscribersTable = datamap.Table{Name: "subscribers", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random subscriber id"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "email", Categories: []string{"user.contact.email"}},
		{Name: "email_hash", Categories: []string{"user.contact.email"}, Withheld: "a keyed hash of your address, used only to keep it off the list if you leave"},
		{Name: "first_name", Categories: []string{"user.name"}},
		{Name: "last_name", Categories: []string{"user.name"}},
		{Name: "company", Categories: []string{"user.workplace"}},
		{Name: "status", NotPersonal: "pending or confirmed"},
		{Name: "account_id", Categories: []string{"user.unique_id"}},
		{Name: "source", NotPersonal: "how the subscription began"},
		{Name: "created_at", NotPersonal: "time of subscription", Time: true},
		{Name: "confirmed_at", NotPersonal: "time of confirmation", Time: true},
	}}
	tokensTable = datamap.Table{Name: "subscriber_tokens", Columns: []datamap.Column{
		{Name: "id", Categories: []string{"user.authorization.credentials"}, Withheld: "the hash of a confirmation link"},
		{Name: "subscriber_id", NotPersonal: "random subscriber id"},
		{Name: "evidence", Categories: []string{"user.device.ip_address", "user.device.browser"}},
		{Name: "created_at", NotPersonal: "time of the request", Time: true},
		{Name: "expires_at", NotPersonal: "end of the link", Time: true},
	}}
	suppressionsTable = datamap.Table{Name: "suppressions", Columns: []datamap.Column{
		{Name: "hash", NotPersonal: "HMAC-SHA-256 of an address under a secret key: kept after an unsubscribe or erasure so that an old import cannot mail the address again; cannot be reversed"},
		{Name: "purpose", NotPersonal: "purpose key, or * for any"},
		{Name: "reason", NotPersonal: "unsubscribed or erased"},
		{Name: "at", NotPersonal: "time", Time: true},
	}}
	campaignsTable = datamap.Table{Name: "campaigns", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random campaign id"},
		{Name: "purpose", NotPersonal: "purpose key"},
		{Name: "subject", NotPersonal: "the campaign's subject line, written by staff"},
		{Name: "body", NotPersonal: "the campaign's text, written by staff"},
		{Name: "status", NotPersonal: "draft, sending or sent"},
		{Name: "created_by", Categories: []string{"user.unique_id"}, Plain: "a random account id, compared in SQL; blanked when that staff member is erased, as the campaign is the company's"},
		{Name: "created_at", NotPersonal: "time", Time: true},
		{Name: "sent_at", NotPersonal: "time", Time: true},
	}}
	deliveriesTable = datamap.Table{Name: "campaign_deliveries", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "campaign_id", NotPersonal: "random campaign id"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "token_id", NotPersonal: "random id inside the opt-out link"},
		{Name: "state", Categories: []string{"user.behavior"}},
		{Name: "at", NotPersonal: "time", Time: true},
	}}
	mailableTable = datamap.Table{Name: "mailable", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "purpose", NotPersonal: "purpose key"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "email", Categories: []string{"user.contact.email"}},
		{Name: "first_name", Categories: []string{"user.name"}},
	}}
	opensTable = datamap.Table{Name: "campaign_opens", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "campaign_id", NotPersonal: "random campaign id"},
		{Name: "subject_id", Categories: []string{"user.unique_id", "user.behavior"}},
		{Name: "at", NotPersonal: "time of the open", Time: true},
	}}
)

// Declaration describes the newsletter's tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "newsletter",
		Description: "Your subscription, the campaigns sent to you, and the opens measured (only with your consent to it); for staff, the campaigns you wrote.",
		Purpose:     "Send the marketing mail you agreed to, and nothing you did not.",
		LawfulBasis: "consent",
		Retention:   "Until you unsubscribe and ask for erasure, or delete your account; a keyed hash of the address stays on the suppression list.",
		Tables:      []datamap.Table{subscribersTable, tokensTable, suppressionsTable, campaignsTable, deliveriesTable, opensTable, mailableTable},
	}
}

// Export returns the subject's subscription, deliveries and opens, and the campaigns
// the subject wrote as staff.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.SelectParts(ctx, q, s.ID, datamap.Part{Table: subscribersTable, Where: "subject_id = $1"},
		datamap.Part{Table: deliveriesTable, Where: "subject_id = $1"}, datamap.Part{Table: opensTable, Where: "subject_id = $1"},
		datamap.Part{Table: mailableTable, Where: "subject_id = $1"}, datamap.Part{Table: campaignsTable, Where: "created_by = $1"})
}

// Erase deletes the subscription, its links, deliveries and opens, blanks the subject
// as the author of campaigns (they are the company's and stay), and puts a keyed
// hash of every address the subject proved, the current one and those before, on the
// suppression list for any purpose, taking any subscription still filed under one
// with it. An address the subject only typed (s.Pending) is left alone: it may be
// another person's, whose subscription and consent are theirs.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if s.Email != "" {
		if err := h.S.Suppress(ctx, tx, s.Email, "*", "erased"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscribers WHERE email = $1`, strings.ToLower(strings.TrimSpace(s.Email))); err != nil {
			return fmt.Errorf("newsletter: erase: %w", err)
		}
	}
	if len(s.Proven) > 0 {
		for _, x := range s.Proven {
			if err := h.S.suppressHash(ctx, tx, x, "*", "erased"); err != nil {
				return err
			}
		}
		// The member's own row follows their address (LinkAccount), so a row under an
		// earlier one is a subscription made with it since; it goes, and the audience
		// of its subject is refreshed. email_hash has no index: this reads the table,
		// and only for members who changed their address.
		in, args := h.S.db.In("email_hash", 1, s.Proven)
		subjects, err := store.Strings(ctx, tx, `DELETE FROM subscribers WHERE `+in+` RETURNING subject_id`, args...)
		if err != nil {
			return fmt.Errorf("newsletter: erase: %w", err)
		}
		if err := h.S.Refresh(ctx, tx, subjects...); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`DELETE FROM subscriber_tokens WHERE subscriber_id IN (SELECT id FROM subscribers WHERE subject_id = $1)`,
		`DELETE FROM subscribers WHERE subject_id = $1`,
		`DELETE FROM campaign_deliveries WHERE subject_id = $1`,
		`DELETE FROM campaign_opens WHERE subject_id = $1`,
		`DELETE FROM mailable WHERE subject_id = $1`,
		`UPDATE campaigns SET created_by = '' WHERE created_by = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("newsletter: erase: %w", err)
		}
	}
	return nil
}

var _ datamap.AddressIndexed = Holder{}

// SubjectsByAddress returns the subjects subscribed with an address of one of the blind
// indexes (email_hash is vault.Index.Address of the address).
func (h Holder) SubjectsByAddress(ctx context.Context, q store.Querier, hashes []string) ([]string, error) {
	set := map[string]bool{}
	var out []string
	err := h.S.inChunks(hashes, func(chunk []string) error {
		in, args := h.S.db.In("email_hash", 1, chunk)
		ids, err := store.Strings(ctx, q, `SELECT DISTINCT subject_id FROM subscribers WHERE `+in, args...)
		if err != nil {
			return fmt.Errorf("newsletter: subjects by address: %w", err)
		}
		for _, id := range ids {
			if !set[id] {
				set[id] = true
				out = append(out, id)
			}
		}
		return nil
	})
	return out, err
}

// AddressesErased puts the addresses back on the suppression list for any purpose, as
// Erase did before the database was restored to a time before it: the ledger gives
// their blind indexes, which are what the list keeps. It raises the count of
// suppressions under its lock, and refreshes whom the list may mail, as Suppress does.
func (h Holder) AddressesErased(ctx context.Context, tx *store.Tx, hashes []string) error {
	if len(hashes) == 0 {
		return nil
	}
	if err := tx.Lock(ctx, suppressionsCounter, false); err != nil {
		return fmt.Errorf("newsletter: suppress: %w", err)
	}
	now := store.Millis(h.S.now())
	for _, hash := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO suppressions (hash, purpose, reason, at) VALUES ($1, '*', 'erased', $2)
			ON CONFLICT (hash, purpose) DO UPDATE SET reason = excluded.reason, at = excluded.at`, hash, now); err != nil {
			return fmt.Errorf("newsletter: suppress: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE change_counters SET value = value + 1 WHERE name = $1`, suppressionsCounter); err != nil {
		return fmt.Errorf("newsletter: suppress: %w", err)
	}
	subjects, err := h.SubjectsByAddress(ctx, tx, hashes)
	if err != nil {
		return err
	}
	return h.S.Refresh(ctx, tx, subjects...)
}
