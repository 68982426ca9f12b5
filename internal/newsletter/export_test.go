package newsletter

import (
	"context"
	"io"

	"steward/internal/mail"
)

// SwapSender makes x the sender of campaigns, and returns the one it replaces.
func (s *Service) SwapSender(x mail.BulkSender) mail.BulkSender {
	old := s.sender
	s.sender = x
	return old
}

// SetImportRead makes f run when an import's batch has been read and checked, before it
// is stored.
func (s *Service) SetImportRead(f func()) { s.importRead = f }

// SetImportStoring makes f run within the transaction that stores an import's batch,
// once the count of suppressions was read.
func (s *Service) SetImportStoring(f func()) { s.importStoring = f }

// ReadImport runs the reading stage of an import alone, on the real service: the header
// and every row read and checked, the addresses looked up and the values sealed. It
// returns the rows the import would store (storing none) and the reading's report.
func (s *Service) ReadImport(ctx context.Context, r io.Reader, purpose string) ([]Subscription, ImportReport, error) {
	var rep ImportReport
	cr, col, err := importReader(r)
	if err != nil {
		return nil, rep, err
	}
	out := make(chan importWork)
	done := make(chan []Subscription)
	go func() {
		var rows []Subscription
		for w := range out {
			for _, row := range w.rows {
				rows = append(rows, row.sub)
			}
		}
		done <- rows
	}()
	err = s.readImport(ctx, cr, col, purpose, "fuzz", &rep, out)
	close(out)
	return <-done, rep, err
}
