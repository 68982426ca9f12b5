package consent

import "context"

// SaveChoices records a subject's choices (purpose key: granted or not) and sets the
// restriction and objection flags that are not nil, all in one transaction; Apply
// leaves out the choices that change nothing. The preferences page and the API both
// save through it.
func (s *Service) SaveChoices(ctx context.Context, subjectID string, choices map[string]bool, restricted, objected *bool,
	src Source, evidence map[string]string) error {
	decisions := make(map[string]Decision, len(choices))
	for k, v := range choices {
		decisions[k] = Withdrawn
		if v {
			decisions[k] = Granted
		}
	}
	var flags *Flags
	if restricted != nil || objected != nil {
		f, err := s.Flags(ctx, subjectID)
		if err != nil {
			return err
		}
		if restricted != nil {
			f.Restricted = *restricted
		}
		if objected != nil {
			f.Objected = *objected
		}
		flags = &f
	}
	return s.Apply(ctx, subjectID, decisions, flags, src, evidence)
}
