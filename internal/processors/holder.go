package processors

import (
	"context"
	"fmt"
	"strings"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Name is the register's holder name in the data map.
const Name = "processors"

// Holder is the register's entry in the data map. The register is about companies,
// not members: what it holds of a person is the account id of the staff member who
// changed it, blanked when they are erased. A member's export lists the processors
// that receive their data and the transfers of it outside the region.
type Holder struct{ S *Service }

var processorsTable = datamap.Table{Name: "processors", Columns: []datamap.Column{
	{Name: "key", NotPersonal: "the processor's key"},
	{Name: "name", NotPersonal: "the processor's (a company's) name"},
	{Name: "service", NotPersonal: "what the processor does"},
	{Name: "purposes", NotPersonal: "keys of the purposes it serves"},
	{Name: "categories", NotPersonal: "the data categories it receives"},
	{Name: "country", NotPersonal: "where the processor processes"},
	{Name: "transfer", NotPersonal: "the kind of transfer safeguard"},
	{Name: "safeguard", NotPersonal: "the safeguard in words"},
	{Name: "contract", NotPersonal: "the processing agreement's reference"},
	{Name: "notify_url", NotPersonal: "the processor's notices endpoint"},
	{Name: "sale", NotPersonal: "whether data is sold to it"},
	{Name: "state", NotPersonal: "active, pending or retired"},
	{Name: "proposed", NotPersonal: "a change of the processor awaiting approval, as JSON"},
	{Name: "proposed_by", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the staff member who proposed the change, compared with the approver's; blanked when they are erased",
		Withheld: "the id of a staff member: their data, not yours"},
	{Name: "proposed_at", NotPersonal: "when the change was proposed", Time: true},
	{Name: "created_at", NotPersonal: "when the processor was added", Time: true},
	{Name: "updated_at", NotPersonal: "when it was last changed", Time: true},
}}

var historyTable = datamap.Table{Name: "processor_history", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random, time-sorted id"},
	{Name: "processor", NotPersonal: "the processor's key"},
	{Name: "action", NotPersonal: "seeded, added, edited, retired, proposed, approved or rejected"},
	{Name: "changed_by", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the staff member who made the change; blanked when they are erased",
		Withheld: "the id of a staff member: their data, not yours"},
	{Name: "old_value", NotPersonal: "the processor before the change, as JSON"},
	{Name: "new_value", NotPersonal: "the processor after the change, as JSON"},
	{Name: "at", NotPersonal: "when", Time: true},
}}

var transfersTable = datamap.Table{Name: "transfers", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random, time-sorted id"},
	{Name: "processor", NotPersonal: "the processor's key"},
	{Name: "country", NotPersonal: "where the data goes"},
	{Name: "categories", NotPersonal: "the data categories that go there"},
	{Name: "transfer", NotPersonal: "the kind of safeguard"},
	{Name: "safeguard", NotPersonal: "the safeguard in words"},
	{Name: "since", NotPersonal: "since when", Time: true},
	{Name: "until_at", NotPersonal: "until when, once ended", Time: true},
}}

// Declaration describes the register.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        Name,
		Description: "The register of processors and of the transfers of data outside the region where it is stored; your export lists those that receive your data.",
		Purpose:     "Know, show and answer for every company that processes personal data for us, and every transfer abroad (GDPR art. 28, 30, 44-49).",
		LawfulBasis: "legal_obligation",
		Retention:   "Kept for as long as the deployment runs, as the record of who processed data when; a staff member's id in it is blanked when they are erased.",
		Tables:      []datamap.Table{processorsTable, historyTable, transfersTable},
	}
}

// Export lists the processors that receive the member's data and the transfers of it
// outside the region.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	procs, err := h.S.Recipients(ctx, q, s.ID)
	if err != nil {
		return nil, fmt.Errorf("processors: export: %w", err)
	}
	recv := datamap.Section{Table: "processors", Columns: []string{"processor", "service", "country", "purposes", "categories"}}
	keys := []string{}
	for _, p := range procs {
		keys = append(keys, p.Key)
		recv.Rows = append(recv.Rows, []string{p.Name, p.Service, p.Country, strings.Join(p.Purposes, ", "), strings.Join(p.Categories, ", ")})
	}
	list, err := h.S.Transfers(ctx, q, keys)
	if err != nil {
		return nil, fmt.Errorf("processors: export: %w", err)
	}
	tr := datamap.Section{Table: "transfers", Columns: []string{"processor", "country", "categories", "safeguard", "details", "since", "until"}}
	for _, t := range list {
		until := ""
		if !t.Until.IsZero() {
			until = t.Until.Format("2006-01-02T15:04:05Z07:00")
		}
		tr.Rows = append(tr.Rows, []string{t.ProcessorName, t.Country, strings.Join(t.Categories, ", "), t.SafeguardName, t.Details,
			t.Since.Format("2006-01-02T15:04:05Z07:00"), until})
	}
	return []datamap.Section{recv, tr}, nil
}

// Erase blanks the subject as the staff member who changed the register.
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if s.ID == "" {
		return nil
	}
	for _, q := range []string{`UPDATE processor_history SET changed_by = NULL WHERE changed_by = $1`,
		`UPDATE processors SET proposed_by = NULL WHERE proposed_by = $1`} {
		if _, err := tx.ExecContext(ctx, q, s.ID); err != nil {
			return fmt.Errorf("processors: erase: %w", err)
		}
	}
	return nil
}
