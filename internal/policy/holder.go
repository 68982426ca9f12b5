package policy

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Name is the data map's name of the policy's holder.
const Name = "policy"

// Holder declares the members' acceptances of the policy's versions. The versions
// themselves hold no personal data (who published one is in the audit log).
type Holder struct{}

var acceptancesTable = datamap.Table{Name: "policy_acceptances", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
	{Name: "version", NotPersonal: "the label of the policy's version accepted"},
	{Name: "source", NotPersonal: "where it was accepted: at registration, or on the policy page"},
	{Name: "at", NotPersonal: "when it was accepted", Time: true},
}}

// Declaration describes the acceptances.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        Name,
		Description: "Which versions of the privacy policy you accepted, and when.",
		Purpose:     "Show which policy you agreed to, tell you of a change that matters to you, and ask again for the choices that depend on it.",
		LawfulBasis: "legal_obligation",
		Retention:   "As long as your account exists.",
		Tables:      []datamap.Table{acceptancesTable},
	}
}

// Export returns the subject's acceptances.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase deletes the subject's acceptances, and takes the member's id out of the
// cursor of a mail to every member under way: the cursor moves back to the id just
// before it, which is no other member's (the member, being erased, is mailed no more).
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE policy_versions SET mail_cursor = $1 WHERE mail_cursor = $2`, before(s.ID), s.ID); err != nil {
		return fmt.Errorf("policy: erase: %w", err)
	}
	return nil
}

// before returns the id just before id in the order of account ids (32 hexadecimal
// digits): every id up to it was mailed, as every id up to id was. An id of another
// form gives its prefix, which sorts before it.
func before(id string) string {
	n, ok := new(big.Int).SetString(id, 16)
	if !ok || len(id) != 32 || strings.ToLower(id) != id {
		return id[:max(len(id)-1, 0)]
	}
	if n.Sign() == 0 {
		return ""
	}
	return fmt.Sprintf("%032x", n.Sub(n, big.NewInt(1)))
}
