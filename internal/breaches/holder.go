package breaches

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the register's entry in the data map.
type Holder struct{}

var (
	breachesTable = datamap.Table{Name: "breaches", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "random breach id"},
		{Name: "description", NotPersonal: "what happened, written about the incident, not about a member (the form says so)"},
		{Name: "discovered_at", NotPersonal: "when the breach was discovered", Time: true},
		{Name: "categories", NotPersonal: "the categories of data concerned"},
		{Name: "consequences", NotPersonal: "the likely consequences, written about the incident"},
		{Name: "measures", NotPersonal: "the measures taken or proposed, written about the incident"},
		{Name: "recorded_by", Categories: []string{"user.unique_id"},
			Plain: "the random account id of the DPO who recorded the breach, blanked when that member is erased"},
		{Name: "recorded_at", NotPersonal: "when the breach was recorded", Time: true},
		{Name: "reported_at", NotPersonal: "when it was reported to the supervisory authority", Time: true},
		{Name: "report_reference", NotPersonal: "the authority's reference of the report"},
		{Name: "delay_reason", NotPersonal: "why the report came after 72 hours"},
		{Name: "reported_by", Categories: []string{"user.unique_id"},
			Plain: "the random account id of the DPO who reported the breach, blanked when that member is erased"},
		{Name: "affected", NotPersonal: "how many members the breach affected"},
	}}
	subjectsTable = datamap.Table{Name: "breach_subjects", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "breach_id", NotPersonal: "the breach's random id"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id, compared in SQL"},
		{Name: "added_at", NotPersonal: "when you were found affected", Time: true},
		{Name: "notified_at", NotPersonal: "when the notice to you was sent", Time: true},
	}}
)

// Declaration describes the register.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        Name,
		Description: "Personal data breaches that affected your data, and when we told you of each.",
		Purpose:     "Document every breach, report it to the supervisory authority and tell the people it affects (GDPR art. 33 and 34).",
		LawfulBasis: "legal_obligation",
		Retention:   "Your link to a breach goes with your account's erasure; the register keeps the breach and how many members it affected.",
		Tables:      []datamap.Table{breachesTable, subjectsTable},
	}
}

// Export returns the breaches that affected the member.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase removes the member's links to breaches, and blanks them as the DPO who
// recorded or reported one.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	for _, q := range []string{`UPDATE breaches SET recorded_by = NULL WHERE recorded_by = $1`,
		`UPDATE breaches SET reported_by = NULL WHERE reported_by = $1`} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("breaches: erase: %w", err)
		}
	}
	return nil
}
