package consent

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the consent ledger's entry in the data map.
type Holder struct{}

var (
	eventsTable = datamap.Table{Name: "consent_events", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "sequence number"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "decision", Categories: []string{"user.privacy_preferences"}},
		{Name: "source", NotPersonal: "where the decision came from"},
		{Name: "policy_version", NotPersonal: "version of the policy in force"},
		{Name: "evidence", Categories: []string{"user.device.ip_address", "user.device.browser"}},
		{Name: "at", NotPersonal: "time of the decision", Time: true},
	}}
	stateTable = datamap.Table{Name: "consent_state", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "decision", Categories: []string{"user.privacy_preferences"}},
		{Name: "event_id", NotPersonal: "the ledger event it comes from"},
		{Name: "at", NotPersonal: "time of the decision", Time: true},
	}}
	conflictsTable = datamap.Table{Name: "consent_conflicts", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "sequence number"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "earlier_id", NotPersonal: "ledger event"},
		{Name: "later_id", NotPersonal: "ledger event"},
		{Name: "at", NotPersonal: "time of the later decision", Time: true},
	}}
	flagsTable = datamap.Table{Name: "processing_flags", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "subject_id", Categories: []string{"user.unique_id"}},
		{Name: "restricted", Categories: []string{"user.privacy_preferences"}},
		{Name: "objected", Categories: []string{"user.privacy_preferences"}},
		{Name: "updated_at", NotPersonal: "time of the last change", Time: true},
	}}
)

// Declaration describes the consent tables.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "consent",
		Description: "Every consent decision you made (the ledger), the state derived from it, conflicts between sources, and your restriction and objection.",
		Purpose:     "Process your data only as you decided, and prove what you decided and when.",
		LawfulBasis: "legal_obligation",
		Retention:   "As long as you are a member or subscriber; deleted with you.",
		Tables:      []datamap.Table{eventsTable, stateTable, conflictsTable, flagsTable},
	}
}

// Export returns the subject's ledger, state, conflicts and flags.
func (Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.SelectParts(ctx, q, s.ID,
		datamap.Part{Table: eventsTable, Where: "subject_id = $1 ORDER BY id"}, datamap.Part{Table: stateTable, Where: "subject_id = $1 ORDER BY purpose"},
		datamap.Part{Table: conflictsTable, Where: "subject_id = $1 ORDER BY id"}, datamap.Part{Table: flagsTable, Where: "subject_id = $1"})
}

// Erase deletes the subject's ledger and everything derived from it.
func (Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	for _, t := range []string{"consent_conflicts", "consent_state", "consent_events", "processing_flags"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE subject_id = $1`, s.ID); err != nil {
			return fmt.Errorf("consent: erase %s: %w", t, err)
		}
	}
	return nil
}
