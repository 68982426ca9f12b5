package newsletter

// SetImportRead makes f run when an import's batch has been read and checked, before it
// is stored.
func (s *Service) SetImportRead(f func()) { s.importRead = f }
