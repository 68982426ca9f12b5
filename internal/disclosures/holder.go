package disclosures

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the register's entry in the data map.
type Holder struct{}

var (
	disclosuresTable = datamap.Table{Name: "disclosures", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random disclosure id (the subject of the disclosure's own data key)"},
		{Name: "authority", NotPersonal: "the authority that asked for the data"},
		{Name: "legal_basis", NotPersonal: "the law or order the disclosure answered"},
		{Name: "categories", NotPersonal: "the categories of data disclosed"},
		{Name: "disclosed_at", NotPersonal: "when the data was disclosed", Time: true},
		{Name: "document_object", NotPersonal: "random name of the document's object, sealed under the disclosure's own key"},
		{Name: "document_type", NotPersonal: "the document's type (PDF, JPEG or PNG)"},
		{Name: "document_size", NotPersonal: "the document's size"},
		{Name: "withheld_reason", NotPersonal: "why the members are not told yet, sealed under the disclosure's own key"},
		{Name: "review_at", NotPersonal: "when the flag is due for review", Time: true},
		{Name: "lifted_at", NotPersonal: "when the members were told after a flag", Time: true},
		{Name: "lifted_by", Categories: []string{"user.unique_id"},
			Plain: "the random account id of the DPO who lifted the flag, blanked when that member is erased"},
		{Name: "recorded_by", Categories: []string{"user.unique_id"},
			Plain: "the random account id of the DPO who recorded the disclosure, blanked when that member is erased"},
		{Name: "recorded_at", NotPersonal: "when the disclosure was recorded", Time: true},
		{Name: "members", NotPersonal: "how many members the disclosure concerned"},
	}}
	subjectsTable = datamap.Table{Name: "disclosure_subjects", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "disclosure_id", NotPersonal: "the disclosure's random id"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
		{Name: "detail", Categories: []string{"user.content"}, Sealed: true},
		{Name: "told_at", NotPersonal: "when you were told", Time: true},
	}}
)

// Declaration describes the register.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        Name,
		Description: "Disclosures of your data to authorities: which authority, on what legal basis, what was disclosed and when.",
		Purpose:     "Answer lawful requests of authorities, keep a record of each, and tell you unless the law allows us to wait.",
		LawfulBasis: "legal_obligation",
		Retention: "Your link to a disclosure goes with your account's erasure; the register keeps the disclosure itself " +
			"(authority, basis, categories, date, the authority's document and how many members it concerned) as the record of the obligation it answered.",
		Tables: []datamap.Table{disclosuresTable, subjectsTable},
	}
}

// Export returns the disclosures the member was told of. One under a "not yet" flag
// is left out until the flag is lifted: the law that allows the delay (GDPR art. 23)
// covers the copy of their data too.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	sec, err := s.Select(ctx, q, subjectsTable, "subject_id = $1 AND told_at IS NOT NULL", s.ID)
	if err != nil {
		return nil, err
	}
	return []datamap.Section{sec}, nil
}

// Erase removes the member's links to disclosures (with what was disclosed of them),
// and blanks them as the DPO who recorded or lifted one.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	for _, q := range []string{`UPDATE disclosures SET recorded_by = NULL WHERE recorded_by = $1`,
		`UPDATE disclosures SET lifted_by = NULL WHERE lifted_by = $1`} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("disclosures: erase: %w", err)
		}
	}
	return nil
}
