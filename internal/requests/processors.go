package requests

import (
	"context"
	"errors"
	"strings"

	"steward/internal/store"
)

// ActionProcessor is the event of a processor's acknowledgment of what the request
// changed (GDPR art. 19): its note names the processor and what it was told.
const ActionProcessor = "processor_acknowledged"

// ProcessorAcknowledged records on a request, in tx, that a processor acknowledged the
// notice of the change the request made (event: erasure, rectification, restriction or
// restriction_lifted). A request gone since (its subject erased) has nothing to record;
// one not found (not committed yet, or never) is a not-found error.
func (s *Service) ProcessorAcknowledged(ctx context.Context, tx *store.Tx, requestID, processor, event string) error {
	req, key, err := s.load(ctx, tx, requestID)
	if errors.Is(err, errClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.event(ctx, tx, key, req, ActionProcessor, req.State, req.State, Actor{Kind: BySystem},
		processor+" acknowledged the notice of the "+eventWords(event))
}

// eventWords names a notice's event in a sentence.
func eventWords(event string) string {
	switch event {
	case "restriction":
		return "restriction of processing"
	case "restriction_lifted":
		return "end of the restriction of processing"
	}
	return event
}

// ActionRectified is the event of a correction staff made to answer a rectification.
const ActionRectified = "rectified"

// Rectified records on a rectification request which fields staff corrected.
func (s *Service) Rectified(ctx context.Context, requestID string, fields []string, by Actor) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		req, key, err := s.load(ctx, tx, requestID)
		if err != nil {
			return err
		}
		return s.event(ctx, tx, key, req, ActionRectified, req.State, req.State, by, "Corrected: "+strings.Join(fields, ", ")+".")
	})
}
