package requests

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"steward/internal/apperr"
	"steward/internal/mail"
	"steward/internal/store"
	"steward/internal/vault"
)

// Filter selects requests of the staff queue.
type Filter struct {
	State string // "" any; "open" every state not closed
	// DueBefore keeps requests due before that day ("" any).
	DueBefore Date
	Limit     int // default and at most 200
	Offset    int // requests skipped before the first, in the same order
}

// StateOpen is the filter of every open request.
const StateOpen = "open"

// check refuses an unknown state and returns the day the requests are due before (a
// far one for none).
func (f Filter) check() (due string, err error) {
	if f.State != "" && f.State != StateOpen && !slices.Contains(States, f.State) {
		return "", apperr.Field("state", "state_unknown", "must be open or one of "+strings.Join(States, ", "))
	}
	if f.DueBefore == "" {
		return "9999-12-31", nil
	}
	return string(f.DueBefore), nil
}

// Queue lists requests for staff, the soonest due first. The list opens nothing
// sealed (its details, a visitor's name and addresses stay empty): reading the queue
// does not open two hundred people's data at once, and needs no key; Get opens one.
func (s *Service) Queue(ctx context.Context, f Filter) ([]Request, error) {
	due, err := f.check()
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 200
	}
	// Three fixed statements rather than one built at run time: each is checked at
	// start, and each has a plan of its own (the queue index, by state and due date).
	f.Offset = max(f.Offset, 0)
	const sel = `SELECT ` + columns + ` FROM privacy_requests WHERE `
	const order = ` ORDER BY due_date, received_at, id LIMIT `
	var rows *sql.Rows
	switch f.State {
	case "":
		rows, err = s.db.QueryContext(ctx, sel+`due_date < $1`+order+`$2 OFFSET $3`, due, f.Limit, f.Offset)
	case StateOpen:
		rows, err = s.db.QueryContext(ctx, sel+`state NOT IN ('done', 'refused', 'withdrawn') AND due_date < $1`+order+`$2 OFFSET $3`, due, f.Limit, f.Offset)
	default:
		rows, err = s.db.QueryContext(ctx, sel+`state = $1 AND due_date < $2`+order+`$3 OFFSET $4`, f.State, due, f.Limit, f.Offset)
	}
	if err != nil {
		return nil, fmt.Errorf("requests: queue: %w", err)
	}
	var list []row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("requests: queue: %w", err)
		}
		list = append(list, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("requests: queue: %w", err)
	}
	out := make([]Request, len(list))
	for i, r := range list {
		out[i] = r.Request
	}
	return out, nil
}

// QueueCount counts the requests the filter selects (its limit and offset aside): the
// total the queue's pages show.
func (s *Service) QueueCount(ctx context.Context, f Filter) (int, error) {
	due, err := f.check()
	if err != nil {
		return 0, err
	}
	var n int
	switch f.State {
	case "":
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE due_date < $1`, due).Scan(&n)
	case StateOpen:
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date < $1`, due).Scan(&n)
	default:
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM privacy_requests WHERE state = $1 AND due_date < $2`, f.State, due).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("requests: queue count: %w", err)
	}
	return n, nil
}

// Change is what staff do to a request: move it to a state, with a note (why; for a
// refusal the reason, for a complaint or an inquiry answered the answer, which are
// mailed to the requester).
type Change struct {
	State string
	Note  string
}

// Transition moves a request to another state on staff's word. Every change is an
// event and an entry of the audit log; closing a request mails the requester.
func (s *Service) Transition(ctx context.Context, id string, c Change, by Actor) (Request, error) {
	c.Note = strings.TrimSpace(c.Note)
	if c.State == "" {
		return Request{}, apperr.Field("state", "required", "is required")
	}
	if !slices.Contains(States, c.State) {
		return Request{}, apperr.Field("state", "state_unknown", "must be one of "+strings.Join(States, ", "))
	}
	if err := checkText("note", c.Note, maxNote); err != nil {
		return Request{}, err
	}
	var req Request
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var key *vault.Key
		var err error
		if req, key, err = s.load(ctx, tx, id); err != nil {
			return err
		}
		if !req.Open() {
			return errClosed
		}
		if c.Note == "" && (c.State == Refused || (c.State == Done && NeedsDetails(req.Right) && req.Right != Rectification)) {
			// Art. 12(4): a refusal gives its reasons; an answer is the note.
			return apperr.Field("note", "required", "is required: it is mailed to the requester")
		}
		var delivered map[string]string
		if c.State == Done && DeliversData(req.Right) {
			if !slices.Contains(next[req.State], Done) {
				return apperr.Field("state", "transition_invalid", fmt.Sprintf("a request that is %s cannot become %s", req.State, Done))
			}
			if delivered, err = s.fulfil(ctx, tx, key, req, by); err != nil {
				return err
			}
		}
		if err := s.setState(ctx, tx, key, &req, c.State, by, c.Note); err != nil {
			return err
		}
		if c.State != Done && c.State != Refused {
			return nil
		}
		addr, err := s.address(ctx, req)
		if err != nil {
			return err
		}
		outcome := "done"
		if c.State == Refused {
			outcome = "refused"
		}
		extra := map[string]string{"Outcome": outcome, "Note": c.Note, "Authority": s.cfg.Authority}
		if c.State == Refused {
			extra["Refused"] = "yes"
		}
		for k, v := range delivered {
			extra[k] = v
		}
		return s.mailRequester(ctx, tx, req, addr, mail.RequestClosed, extra)
	})
	if err == nil {
		s.closedDocument(ctx, req)
	}
	return req, err
}

// VerifyIdentity is staff's decision on a visitor's identity, after checking the
// document sent or other proof: verified moves the request on (in progress), an
// identity not shown refuses it with the reason, mailed to the requester.
func (s *Service) VerifyIdentity(ctx context.Context, id string, verified bool, note string, by Actor) (Request, error) {
	if !verified {
		return s.Transition(ctx, id, Change{State: Refused, Note: note}, by)
	}
	note = strings.TrimSpace(note)
	if err := checkText("note", note, maxNote); err != nil {
		return Request{}, err
	}
	var req Request
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var key *vault.Key
		var err error
		if req, key, err = s.load(ctx, tx, id); err != nil {
			return err
		}
		if !req.Open() {
			return errClosed
		}
		if req.Requester != Visitor || req.State == Unconfirmed {
			return apperr.New(apperr.Conflict, "identity_not_needed", "only a confirmed request made without logging in needs its identity verified")
		}
		if ok, err := s.verified(ctx, tx, req.ID); err != nil || ok {
			if ok {
				return apperr.New(apperr.Conflict, "identity_verified", "the identity is verified already")
			}
			return err
		}
		if err := s.event(ctx, tx, key, req, ActionIdentity, req.State, req.State, by, note); err != nil {
			return err
		}
		if req.State == InProgress {
			return nil
		}
		return s.setState(ctx, tx, key, &req, InProgress, by, "")
	})
	return req, err
}

// address is where the requester is written to: a visitor's notification address, or
// the member's proven address.
func (s *Service) address(ctx context.Context, req Request) (string, error) {
	if req.Requester == Visitor {
		return req.NotifyEmail, nil
	}
	return s.dir.Address(ctx, req.SubjectID)
}

// Extend extends an open request's due date by months (one or two, at most two in
// all), with a reason mailed to the requester. Art. 12(3) has the requester told
// within the first month, so a request can be extended only until its first due
// date has passed.
func (s *Service) Extend(ctx context.Context, id string, months int, reason string, by Actor) (Request, error) {
	reason = strings.TrimSpace(reason)
	if months < 1 || months > MaxExtension {
		return Request{}, apperr.Field("months", "months_invalid", fmt.Sprintf("must be 1 or %d", MaxExtension))
	}
	if reason == "" {
		return Request{}, apperr.Field("reason", "required", "is required: it is mailed to the requester")
	}
	if err := checkText("reason", reason, maxNote); err != nil {
		return Request{}, err
	}
	var req Request
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var key *vault.Key
		var err error
		if req, key, err = s.load(ctx, tx, id); err != nil {
			return err
		}
		if !req.Open() || req.State == Unconfirmed {
			return apperr.New(apperr.Conflict, "request_not_open", "only an open, confirmed request can be extended")
		}
		if req.ExtendedMonths+months > MaxExtension {
			return apperr.Field("months", "extension_too_long",
				fmt.Sprintf("a request can be extended by %d months in all; this one was extended by %d already", MaxExtension, req.ExtendedMonths))
		}
		if DateOf(s.now()) > DueDate(req.ReceivedAt, 0) {
			return apperr.New(apperr.Conflict, "extension_late", "an extension must be told to the requester within one month of receipt; that month has passed")
		}
		total := req.ExtendedMonths + months
		due := DueDate(req.ReceivedAt, total)
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE privacy_requests SET extended_months = $1, due_date = $2, updated_at = $3
			WHERE id = $4 AND extended_months = $5`, total, string(due), store.Millis(now), req.ID, req.ExtendedMonths)
		if err != nil {
			return fmt.Errorf("requests: extend: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return apperr.New(apperr.Conflict, "request_changed", "the request was changed meanwhile; reload it and try again")
		}
		req.ExtendedMonths, req.DueDate, req.UpdatedAt = total, due, now
		if err := s.event(ctx, tx, key, req, ActionExtended, req.State, req.State, by, reason); err != nil {
			return err
		}
		addr, err := s.address(ctx, req)
		if err != nil {
			return err
		}
		return s.mailRequester(ctx, tx, req, addr, mail.RequestExtended, map[string]string{"Reason": reason})
	})
	return req, err
}
