package requests

import (
	"context"
	"fmt"
	"strconv"

	"steward/internal/mail"
	"steward/internal/store"
)

// WarnArgs is the daily job that warns staff of requests coming due.
type WarnArgs struct{}

// Kind names the job.
func (WarnArgs) Kind() string { return "privacy_requests_due" }

// WarnWithin is how far ahead staff are warned of a request coming due.
const WarnWithin = 7

// WarnRole is the staff role that works the queue and is warned.
const WarnRole = "dpo"

// Summary counts the open requests that are overdue and those due within WarnWithin
// days.
type Summary struct {
	Overdue int
	Soon    int
}

// Due counts the open requests overdue and due soon, as of the service's clock.
func (s *Service) Due(ctx context.Context) (Summary, error) {
	today := DateOf(s.now())
	var sum Summary
	// Two counts of ranges of the open requests' index (privacy_requests_open), rather
	// than one pass that tests each row: SQLite counts a range several times faster.
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date < $1),
		(SELECT count(*) FROM privacy_requests WHERE state NOT IN ('done', 'refused', 'withdrawn') AND due_date >= $1 AND due_date <= $2)`,
		string(today), string(today.AddDays(WarnWithin))).Scan(&sum.Overdue, &sum.Soon)
	if err != nil {
		return Summary{}, fmt.Errorf("requests: due: %w", err)
	}
	return sum, nil
}

// WarnDue mails every staff member of the dpo role how many requests are overdue and
// due within WarnWithin days, once a day across nodes and restarts (the job runs at
// every start too). It returns the counts and whether it mailed.
func (s *Service) WarnDue(ctx context.Context) (Summary, bool, error) {
	sum, err := s.Due(ctx)
	if err != nil || sum.Overdue+sum.Soon == 0 {
		return sum, false, err
	}
	staff, err := s.dir.Staff(ctx, WarnRole)
	if err != nil {
		return sum, false, err
	}
	type recipient struct{ id, addr string }
	var to []recipient
	for _, id := range staff {
		addr, err := s.dir.Address(ctx, id)
		if err != nil {
			return sum, false, err
		}
		if addr != "" {
			to = append(to, recipient{id, addr})
		}
	}
	if len(to) == 0 {
		s.log.Warn("privacy requests are due and no staff member holds the dpo role to be told", "overdue", sum.Overdue, "soon", sum.Soon)
		return sum, false, nil
	}
	sent := false
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO privacy_request_warnings (day, sent_at) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING`,
			string(DateOf(s.now())), store.Millis(s.now()))
		if err != nil {
			return fmt.Errorf("requests: warn: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // warned today already
		}
		for _, r := range to {
			if err := s.mail.Enqueue(ctx, tx, mail.Transactional{SubjectID: r.id, To: r.addr, Template: mail.RequestsDue,
				Data: map[string]string{"Overdue": strconv.Itoa(sum.Overdue), "Soon": strconv.Itoa(sum.Soon),
					"Link": s.cfg.BaseURL + "/staff/requests?state=open"}}); err != nil {
				return err
			}
		}
		sent = true
		return nil
	})
	return sum, sent, err
}
