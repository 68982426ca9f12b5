package requests

import (
	"context"
	"fmt"

	"steward/internal/datamap"
	"steward/internal/store"
)

var requestsTable = datamap.Table{Name: "privacy_requests", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "random request id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id: the account's, or the request's own"},
	{Name: "requester", NotPersonal: "member or visitor"},
	{Name: "kind", Categories: []string{"user.privacy_preferences"}, Plain: "the right exercised, one of nine names, compared in SQL"},
	{Name: "state", NotPersonal: "state of the request"},
	{Name: "received_at", NotPersonal: "time of receipt", Time: true},
	{Name: "due_date", NotPersonal: "the day the answer is due"},
	{Name: "extended_months", NotPersonal: "months the due date was extended by"},
	{Name: "details", Categories: []string{"user.privacy_preferences"}, Sealed: true},
	{Name: "requester_name", Categories: []string{"user.name"}, Sealed: true},
	{Name: "notify_email", Categories: []string{"user.contact.email"}, Sealed: true},
	{Name: "held_email", Categories: []string{"user.contact.email"}, Sealed: true},
	{Name: "confirm_hash", NotPersonal: "SHA-256 of a random confirmation token, until the link is opened"},
	{Name: "confirm_expires", NotPersonal: "when the confirmation link expires", Time: true},
	{Name: "shredded_at", NotPersonal: "when a closed request's own key was shredded", Time: true},
	{Name: "document_object", Categories: []string{"user.government_id"},
		Plain: "random name of the object holding a visitor's identity document, sealed under the request's own key; deleted when the request closes"},
	{Name: "document_type", NotPersonal: "PDF, JPEG or PNG, as found from the document's content"},
	{Name: "document_size", NotPersonal: "size of the identity document in bytes"},
	{Name: "download_hash", NotPersonal: "SHA-256 of a random one-time download token"},
	{Name: "download_expires", NotPersonal: "when the download link expires", Time: true},
	{Name: "download_used_at", NotPersonal: "when the download link was used", Time: true},
	{Name: "linked_id", NotPersonal: "random id of what carried the right out (an erasure request)"},
	{Name: "updated_at", NotPersonal: "time of the last change", Time: true},
	{Name: "closed_at", NotPersonal: "time the request was closed", Time: true},
}}

var eventsTable = datamap.Table{Name: "privacy_request_events", Subject: "subject_id", Columns: []datamap.Column{
	{Name: "id", NotPersonal: "sequence number"},
	{Name: "request_id", NotPersonal: "random request id"},
	{Name: "subject_id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
	{Name: "at", NotPersonal: "time of the change", Time: true},
	{Name: "action", NotPersonal: "what changed: created, state, extended, identity verified, document viewed, download sent or used"},
	{Name: "from_state", NotPersonal: "state before"},
	{Name: "to_state", NotPersonal: "state after"},
	{Name: "actor", NotPersonal: "requester, staff or system"},
	{Name: "actor_id", Categories: []string{"user.unique_id"},
		Plain:    "the random account id of the staff member who acted, blanked when that member is erased",
		Withheld: "the id of the staff member who acted: their data, not yours"},
	{Name: "note", Categories: []string{"user.privacy_preferences"}, Sealed: true},
}}

var warningsTable = datamap.Table{Name: "privacy_request_warnings", Columns: []datamap.Column{
	{Name: "day", NotPersonal: "a day staff were warned of requests coming due"},
	{Name: "sent_at", NotPersonal: "time of the warning", Time: true},
}}

// Holder is the rights desk's entry in the data map.
type Holder struct{}

// Declaration describes the requests.
func (Holder) Declaration() datamap.Declaration {
	return datamap.Declaration{
		Name:        "requests",
		Description: "The requests you made about your data (access, correction, erasure, restriction, objection, withdrawal, complaints and inquiries), their state, due dates and history; for a request made without logging in, the copy of an identity document sent with it (in the file store, sealed under the request's own key).",
		Purpose:     "Answer requests about personal data within the time the law sets, and show that they were answered.",
		LawfulBasis: "legal_obligation",
		Retention: "Until your account is erased, or 3 years after the request is closed (the operator may set another period), whichever comes first; " +
			"a request made without an account is closed, its identity document deleted at once and its key shredded a day later (or once its download link is used or expired).",
		Tables: []datamap.Table{requestsTable, eventsTable, warningsTable},
	}
}

// Export returns the subject's requests and their history, opened.
func (h Holder) Export(ctx context.Context, q store.Querier, s datamap.Subject) ([]datamap.Section, error) {
	return datamap.ExportDeclared(ctx, q, s, h.Declaration())
}

// Erase deletes the subject's requests and their history, and blanks the subject as
// the staff member who acted on others' requests (those requests are their
// requesters').
func (h Holder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if err := datamap.EraseDeclared(ctx, tx, s, h.Declaration()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE privacy_request_events SET actor_id = NULL WHERE actor_id = $1`, s.ID); err != nil {
		return fmt.Errorf("requests: erase: %w", err)
	}
	return nil
}
