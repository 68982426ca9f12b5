package newsletter

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the newsletter's entry in the data map.
type Holder struct{ S *Service }

// The labels sealed values are bound to. The kept audience (mailable) holds copies of
// a subscriber's sealed address and first name, so its columns share their labels.
const (
	labelEmail     = "subscribers.email"
	labelFirstName = "subscribers.first_name"
	labelLastName  = "subscribers.last_name"
	labelCompany   = "subscribers.company"
	labelEvidence  = "subscriber_tokens.evidence"
)

var (
	subscribersTable = datamap.Table{Name: "subscribers", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random subscriber id"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id (the subscriber's own, or the account's): the subject's key is found by it"},
		{Name: "email", Categories: []string{"user.contact.email"}, Sealed: true},
		{Name: "email_hash", Categories: []string{"user.contact.email"}, Withheld: "a keyed hash of your address, used only to keep it off the list if you leave",
			Plain: "blind index: a keyed hash of the address, for lookups by address and the suppression list"},
		{Name: "first_name", Categories: []string{"user.name"}, Sealed: true},
		{Name: "last_name", Categories: []string{"user.name"}, Sealed: true},
		{Name: "company", Categories: []string{"user.workplace"}, Sealed: true},
		{Name: "status", NotPersonal: "pending or confirmed"},
		{Name: "account_id", Categories: []string{"user.unique_id"}, Plain: "a random account id"},
		{Name: "source", NotPersonal: "how the subscription began"},
		{Name: "created_at", NotPersonal: "time of subscription", Time: true},
		{Name: "confirmed_at", NotPersonal: "time of confirmation", Time: true},
	}}
	// A link's evidence is sealed under the key of its subscriber's subject.
	tokensTable = datamap.Table{Name: "subscriber_tokens", Columns: []datamap.Column{
		{Name: "id", Categories: []string{"user.authorization.credentials"}, Withheld: "the hash of a confirmation link", Plain: "the SHA-256 of a random token"},
		{Name: "subscriber_id", NotPersonal: "random subscriber id"},
		{Name: "evidence", Categories: []string{"user.device.ip_address", "user.device.browser"}, Sealed: true},
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
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "token_id", NotPersonal: "random id inside the opt-out link"},
		{Name: "state", Categories: []string{"user.behavior"}, Plain: "pending, sent, skipped or failed: what sending did, read in SQL"},
		{Name: "at", NotPersonal: "time", Time: true},
	}}
	mailableTable = datamap.Table{Name: "mailable", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "purpose", NotPersonal: "purpose key"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
		{Name: "email", Categories: []string{"user.contact.email"}, Sealed: true, Label: labelEmail},
		{Name: "first_name", Categories: []string{"user.name"}, Sealed: true, Label: labelFirstName},
	}}
	opensTable = datamap.Table{Name: "campaign_opens", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "campaign_id", NotPersonal: "random campaign id"},
		{Name: "subject_id", Categories: []string{"user.unique_id", "user.behavior"}, Plain: "a random id: the row records that the subject opened the campaign"},
		{Name: "at", NotPersonal: "time of the open", Time: true},
	}}
	unsealedTable = datamap.Table{Name: "subscribers_unsealed", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random id of a subscriber an earlier release stored in plain text, until it is sealed at start"},
	}}
)

// Declaration describes the newsletter's tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "newsletter",
		Description: "Your subscription, the campaigns sent to you, and the opens measured (only with your consent to it); for staff, the campaigns you wrote.",
		Purpose:     "Send the marketing mail you agreed to, and nothing you did not.",
		LawfulBasis: "consent",
		Retention: "Until you unsubscribe and ask for erasure, or delete your account; a keyed hash of the address stays on the suppression list. " +
			"A subscription never confirmed is erased after 7 days (the operator may set another period).",
		Tables: []datamap.Table{subscribersTable, tokensTable, suppressionsTable, campaignsTable, deliveriesTable, opensTable, mailableTable, unsealedTable},
	}
}

// Export returns the subject's subscription, deliveries and opens, and the campaigns
// the subject wrote as staff; sealed columns are opened with the subject's key.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return s.SelectParts(ctx, q, datamap.Part{Table: subscribersTable, Where: "subject_id = $1"},
		datamap.Part{Table: deliveriesTable, Where: "subject_id = $1"}, datamap.Part{Table: opensTable, Where: "subject_id = $1"},
		datamap.Part{Table: mailableTable, Where: "subject_id = $1"}, datamap.Part{Table: campaignsTable, Where: "created_by = $1"})
}

// Erase deletes the subscription, its links, deliveries and opens, blanks the subject
// as the author of campaigns (they are the company's and stay), and puts a keyed
// hash of every address the subject proved, the current one and those before, on the
// suppression list for any purpose, taking any subscription still filed under one
// with it. An address the subject only typed (s.Pending) is left alone: it may be
// another person's, whose subscription and consent are theirs. A subscription filed
// under one of the subject's addresses by a subscriber without an account goes with
// that subscriber's data key, so that nothing sealed under it opens again either.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	hashes := s.Proven
	if s.Email != "" {
		hashes = append([]string{h.S.AddressHash(s.Email)}, hashes...)
	}
	if len(hashes) > 0 {
		for _, x := range hashes {
			if err := h.S.suppressHash(ctx, tx, x, "*", "erased"); err != nil {
				return err
			}
		}
		// The member's own row follows their address (LinkAccount), so a row under an
		// earlier one is a subscription made with it since; it goes, and the audience
		// of its subject is refreshed.
		in, args := h.S.db.In("email_hash", 1, hashes)
		rows, err := tx.QueryContext(ctx, `DELETE FROM subscribers WHERE `+in+` RETURNING id, subject_id`, args...)
		if err != nil {
			return fmt.Errorf("newsletter: erase: %w", err)
		}
		var subjects, own []string
		for rows.Next() {
			var id, subject string
			if err := rows.Scan(&id, &subject); err != nil {
				rows.Close()
				return fmt.Errorf("newsletter: erase: %w", err)
			}
			subjects = append(subjects, subject)
			if id == subject && subject != s.ID {
				own = append(own, subject) // a subscriber without an account: its subject is its row
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("newsletter: erase: %w", err)
		}
		for _, subject := range own {
			if err := h.S.vault.Shred(ctx, tx, subject); err != nil {
				return err
			}
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
