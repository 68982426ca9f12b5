package notices

import (
	"context"

	"steward/internal/datamap"
	"steward/internal/store"
)

// Holder is the notices' entry in the data map. Its erasure step records the notices
// of the member's erasure: it runs first, before the member's key and ledger are gone.
type Holder struct{ S *Service }

var noticesTable = datamap.Table{Name: "processor_notices", Subject: "", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random notice id; the notice's own data key is found by it"},
	{Name: "processor", NotPersonal: "key of the processor in the register"},
	{Name: "event", NotPersonal: "what the processor is told: erasure, rectification, restriction or restriction_lifted"},
	{Name: "event_id", NotPersonal: "random id of the change told (empty for the erasure), so that each change is told once"},
	{Name: "request_id", Categories: []string{"user.unique_id"},
		Plain: "the random id of the privacy request the change answers, whose history records the acknowledgment; links to nothing once the request is erased"},
	{Name: "subject_hash", Categories: []string{"user.unique_id"},
		Plain: "a keyed hash of the member's random id, to list the notices in the member's export; links to nothing once the member is erased"},
	{Name: "payload", Categories: []string{"user.contact.email", "user.name", "user.contact", "user.demographic.date_of_birth"},
		Plain: "the addresses the processor knows the member by and, for a rectification, the new value of each changed field it holds; sealed under the notice's own data key (not the member's), which is shredded once the processor acknowledged or staff closed the task"},
	{Name: "state", NotPersonal: "pending, acknowledged, task or done"},
	{Name: "attempts", NotPersonal: "deliveries tried"},
	{Name: "last_error", NotPersonal: "the last delivery's failure: the processor's status or a network error"},
	{Name: "response_status", NotPersonal: "the processor's HTTP status"},
	{Name: "created_at", NotPersonal: "time of the notice", Time: true},
	{Name: "acknowledged_at", NotPersonal: "time the processor acknowledged, or staff closed the task", Time: true},
}}

// Declaration describes the notices.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "processor_notices",
		Description: "Notices to the processors that received a member's data that the member was erased, rectified a field, or restricted the data's processing or lifted the restriction (GDPR art. 19).",
		Purpose:     "Tell every recipient of the data about its erasure, rectification or restriction.",
		LawfulBasis: "legal_obligation",
		Retention:   "The address a notice names is readable until the processor acknowledges it or staff close its task; the notice's record (processor, state, times) is kept as evidence that the processor was told.",
		Tables:      []datamap.Table{noticesTable},
	}
}

// Export lists the notices about the member: which processors were told what, and when.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	list, err := h.S.ofSubject(ctx, q, s.ID)
	if err != nil {
		return nil, err
	}
	sec := datamap.Section{Table: "processor_notices", Columns: []string{"processor", "event", "state", "created_at", "acknowledged_at"}}
	for _, n := range list {
		acked := ""
		if !n.AcknowledgedAt.IsZero() {
			acked = n.AcknowledgedAt.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
		sec.Rows = append(sec.Rows, []string{n.ProcessorName, n.Event, n.State, n.CreatedAt.UTC().Format("2006-01-02T15:04:05Z07:00"), acked})
	}
	return []datamap.Section{sec}, nil
}

// Erase records the notices of the member's erasure (Service.Erased).
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	return h.S.Erased(ctx, tx, s)
}
