package server

import (
	"net/http"

	"steward/internal/account"
	"steward/internal/consent"
)

// A confirmed guardian acts for the children whose registration they agreed to, from
// their own login (P-CHILD-3): sees the child's data and choices, changes the choices
// (their agreement is the guardian's, so marketing and sharing need no second ask),
// stops the collection (the restriction of processing), downloads the child's data
// and erases the child's account. Each of these finds the child among the guardian's
// own, or answers as for an account that does not exist.

// SaveChildChoices records a guardian's choices and restriction for a child, with the
// guardian as the source.
func (s *Services) SaveChildChoices(r *http.Request, guardianID, childID string, choices map[string]bool, restricted *bool) error {
	if _, err := s.Accounts.Child(r.Context(), guardianID, childID); err != nil {
		return err
	}
	ev := s.Evidence(r)
	ev["by"] = "the child's parent or guardian, from their own account"
	return s.Consent.SaveChoices(r.Context(), childID, choices, restricted, nil, consent.SourceGuardian, ev)
}

// WriteChildExport answers with the child's data, as the child's own export.
func (s *Services) WriteChildExport(w http.ResponseWriter, r *http.Request, guardianID, childID string, fail FailFunc) {
	if _, err := s.Accounts.Child(r.Context(), guardianID, childID); err != nil {
		fail(w, r, err)
		return
	}
	subj, err := s.Accounts.Subject(r.Context(), childID)
	if err != nil {
		fail(w, r, err)
		return
	}
	s.WriteExport(w, r, subj, fail)
}

// EraseChild starts the erasure of a child's account once the guardian has given their
// own password again, and returns the erasure's id.
func (s *Services) EraseChild(r *http.Request, guardianID, childID, password string) (string, error) {
	ctx := r.Context()
	if _, err := s.Accounts.Child(ctx, guardianID, childID); err != nil {
		return "", err
	}
	if err := s.Limits.PasswordCheck(ctx, guardianID); err != nil {
		return "", err
	}
	if err := s.Accounts.CheckPassword(ctx, guardianID, "password", password); err != nil {
		return "", err
	}
	subj, err := s.Accounts.Subject(ctx, childID)
	if err != nil {
		return "", err
	}
	return s.Rights.RequestErasure(ctx, subj, "guardian")
}

// ChildView is what a guardian sees of a child: the profile and the choices.
type ChildView struct {
	Profile account.Profile
	Choices []consent.Choice
	Flags   consent.Flags
}

// Child returns what a guardian sees of one of their children.
func (s *Services) Child(r *http.Request, guardianID, childID string) (ChildView, error) {
	p, err := s.Accounts.Child(r.Context(), guardianID, childID)
	if err != nil {
		return ChildView{}, err
	}
	choices, flags, err := s.Consent.Choices(r.Context(), childID)
	if err != nil {
		return ChildView{}, err
	}
	return ChildView{Profile: p, Choices: choices, Flags: flags}, nil
}
