package requests

import (
	"context"
	"errors"
	"fmt"
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

// MaxNote is the longest note staff may write on a request.
const MaxNote = maxNote

// ClaimCarryOut marks a request as being carried out, once: it reports false when the
// request was claimed before (carried out, or being carried out by another click), so
// that a right is never carried out twice.
func (s *Service) ClaimCarryOut(ctx context.Context, id string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE privacy_requests SET linked_id = 'carrying' WHERE id = $1 AND linked_id IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("requests: claim: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CarriedOut records what carried a claimed request out (an erasure's id, or the
// right's name), or with "" releases a claim whose carrying out failed.
func (s *Service) CarriedOut(ctx context.Context, id, linked string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE privacy_requests SET linked_id = $1 WHERE id = $2`, nullString(linked), id); err != nil {
		return fmt.Errorf("requests: carried out: %w", err)
	}
	return nil
}
