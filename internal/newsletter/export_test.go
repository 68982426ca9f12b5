package newsletter

// SetImportRead makes f run when an import's batch has been read and checked, before it
// is stored.
func (s *Service) SetImportRead(f func()) { s.importRead = f }

// SetImportStoring makes f run within the transaction that stores an import's batch,
// once the count of suppressions was read.
func (s *Service) SetImportStoring(f func()) { s.importStoring = f }
