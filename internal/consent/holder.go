package consent

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the consent ledger's entry in the data map.
type Holder struct{ S *Service }

// Why the columns that say what a subject decided are not sealed: whom Steward may
// process, mail or share is decided by queries over whole audiences (AllowedSQL).
const (
	plainDecision = "a decision (granted, withdrawn, set, lifted): the state is derived from the ledger in SQL"
	plainRule     = "compared in SQL: whom Steward may process, mail or share is decided by one query over a whole audience"
	plainID       = "a random id: the subject's key is found by it"
)

var (
	eventsTable = datamap.Table{Name: "consent_events", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "sequence number"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: plainID},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "decision", Categories: []string{"user.privacy_preferences"}, Plain: plainDecision},
		{Name: "source", NotPersonal: "where the decision came from"},
		{Name: "policy_version", NotPersonal: "version of the policy in force"},
		{Name: "evidence", Categories: []string{"user.device.ip_address", "user.device.browser", "user.contact.email"}, Sealed: true},
		{Name: "at", NotPersonal: "time of the decision", Time: true},
	}}
	stateTable = datamap.Table{Name: "consent_state", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: plainID},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "decision", Categories: []string{"user.privacy_preferences"}, Plain: plainRule},
		{Name: "event_id", NotPersonal: "the ledger event it comes from"},
		{Name: "at", NotPersonal: "time of the decision", Time: true},
	}}
	conflictsTable = datamap.Table{Name: "consent_conflicts", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "id", NotPersonal: "sequence number"},
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: plainID},
		{Name: "purpose", NotPersonal: "key of a registered purpose"},
		{Name: "earlier_id", NotPersonal: "ledger event"},
		{Name: "later_id", NotPersonal: "ledger event"},
		{Name: "at", NotPersonal: "time of the later decision", Time: true},
	}}
	flagsTable = datamap.Table{Name: "processing_flags", Subject: "subject_id", Columns: []datamap.Column{
		{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: plainID},
		{Name: "restricted", Categories: []string{"user.privacy_preferences"}, Plain: plainRule},
		{Name: "objected", Categories: []string{"user.privacy_preferences"}, Plain: plainRule},
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

// Export returns the subject's ledger, its evidence opened, state, conflicts and flags.
// A subject built without its key (a subscriber found by address) is given it here.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	// Without a key the subject never made a decision: there is nothing sealed.
	s, err := h.S.vault.WithKey(ctx, q, s)
	if err != nil {
		return nil, fmt.Errorf("consent: export: %w", err)
	}
	return s.SelectParts(ctx, q,
		datamap.Part{Table: eventsTable, Where: "subject_id = $1 ORDER BY id"}, datamap.Part{Table: stateTable, Where: "subject_id = $1 ORDER BY purpose"},
		datamap.Part{Table: conflictsTable, Where: "subject_id = $1 ORDER BY id"}, datamap.Part{Table: flagsTable, Where: "subject_id = $1"})
}

// Erase deletes the subject's ledger and everything derived from it. It shreds the
// subject's key too, though the vault's step did before: SealLegacy gives a key to a
// subject whose plain events it finds without one, and that may be a subject whose
// erasure was cut short between the two steps and resumes after the start.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	for _, t := range []string{"consent_conflicts", "consent_state", "consent_events", "processing_flags"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE subject_id = $1`, s.ID); err != nil {
			return fmt.Errorf("consent: erase %s: %w", t, err)
		}
	}
	if s.ID == "" || s.KeepKey {
		return nil
	}
	return h.S.vault.Shred(ctx, tx, s.ID)
}
