package newsletter

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"steward/internal/apperr"
	"steward/internal/consent"
	"steward/internal/store"
)

// ImportReport says what an import did.
type ImportReport struct {
	Rows       int
	Imported   int
	Existing   int // already on the list: left as they are
	Suppressed int // unsubscribed or erased before: never brought back
	Invalid    int
	Errors     []string // the first few invalid rows, by line
}

// importBatch is how many rows go in one transaction.
const importBatch = 2000

// Import reads a CSV of subscribers who consented to purpose in another system:
// a header naming at least email, first_name and last_name, and optionally company,
// consented_at, source and evidence (kept as the consent's evidence). Addresses already
// on the list are left alone; suppressed ones (unsubscribed, erased) are skipped.
func (s *Service) Import(ctx context.Context, r io.Reader, purpose, importedBy string) (ImportReport, error) {
	var rep ImportReport
	if p, ok := s.consent.Register().Purpose(purpose); !ok || !p.NeedsConsent() || !p.Marketing {
		return rep, apperr.Field("purpose", "purpose_not_mail", "is not a marketing purpose that takes consent")
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return rep, apperr.Field("file", "csv_invalid", "cannot read the CSV header: "+err.Error())
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"email", "first_name", "last_name"} {
		if _, ok := col[need]; !ok {
			return rep, apperr.Field("file", "csv_invalid", "the header must name a column "+need)
		}
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var batch []importRow
	seen := map[string]bool{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.importBatch(ctx, batch, purpose, &rep)
		batch = batch[:0]
		return err
	}
	line := 1
	for {
		rec, err := cr.Read()
		line++
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, apperr.Field("file", "csv_invalid", fmt.Sprintf("line %d: %v", line, err))
		}
		rep.Rows++
		sub, err := Subscription{FirstName: field(rec, "first_name"), LastName: field(rec, "last_name"),
			Email: field(rec, "email"), Company: field(rec, "company")}.check()
		if err != nil || seen[sub.Email] {
			rep.Invalid++
			if len(rep.Errors) < 10 {
				msg := "duplicate address"
				if err != nil {
					msg = err.Error()
				}
				rep.Errors = append(rep.Errors, fmt.Sprintf("line %d: %s", line, msg))
			}
			continue
		}
		seen[sub.Email] = true
		ev := map[string]string{"imported_by": importedBy}
		for _, k := range []string{"consented_at", "source", "evidence"} {
			if v := field(rec, k); v != "" {
				ev["original_"+k] = v
			}
		}
		batch = append(batch, importRow{sub, ev})
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	return rep, flush()
}

type importRow struct {
	sub      Subscription
	evidence map[string]string
}

// importBatch stores one batch in one transaction: which addresses exist or are
// suppressed is asked once for the batch, and the rest goes in multi-row statements.
func (s *Service) importBatch(ctx context.Context, batch []importRow, purpose string, rep *ImportReport) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		emails := make([]any, 0, len(batch))
		hashes := make([]any, 0, len(batch)+1)
		hashes = append(hashes, purpose)
		for _, r := range batch {
			emails = append(emails, r.sub.Email)
			hashes = append(hashes, s.AddressHash(r.sub.Email))
		}
		existing, err := stringSet(ctx, tx, `SELECT email FROM subscribers WHERE email IN (`+store.Placeholders(1, len(emails))+`)`, emails)
		if err != nil {
			return err
		}
		suppressed, err := stringSet(ctx, tx, `SELECT hash FROM suppressions WHERE purpose IN ($1, '*') AND hash IN (`+
			store.Placeholders(2, len(hashes)-1)+`)`, hashes)
		if err != nil {
			return err
		}
		now := store.Millis(s.now())
		var q strings.Builder
		var args []any
		var decisions []consent.Imported
		for i, r := range batch {
			switch {
			case suppressed[hashes[i+1].(string)]:
				rep.Suppressed++
				continue
			case existing[r.sub.Email]:
				rep.Existing++
				continue
			}
			id := newID()
			if len(args) > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, 'confirmed', 'import', $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9)
			args = append(args, id, id, r.sub.Email, hashes[i+1], r.sub.FirstName, r.sub.LastName, r.sub.Company, now, now)
			decisions = append(decisions, consent.Imported{SubjectID: id, Purpose: purpose, Evidence: r.evidence})
		}
		if len(decisions) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO subscribers (id, subject_id, email, email_hash, first_name, last_name, company,
			status, source, created_at, confirmed_at) VALUES `+q.String(), args...); err != nil {
			return fmt.Errorf("newsletter: import: %w", err)
		}
		if err := s.consent.ImportTx(ctx, tx, decisions); err != nil {
			return err
		}
		// The new subscribers are mailable for the purpose (the rule says so: confirmed,
		// consent, not suppressed); one statement for the batch.
		ids := make([]any, 0, len(decisions)+1)
		ids = append(ids, purpose)
		for _, d := range decisions {
			ids = append(ids, d.SubjectID)
		}
		if err := s.fill(ctx, tx, purpose, " AND s.subject_id IN ("+store.Placeholders(2, len(decisions))+")", ids...); err != nil {
			return err
		}
		rep.Imported += len(decisions)
		return nil
	})
}

func stringSet(ctx context.Context, q store.Querier, query string, args []any) (map[string]bool, error) {
	list, err := store.Strings(ctx, q, query, args...)
	if err != nil {
		return nil, fmt.Errorf("newsletter: import: %w", err)
	}
	out := make(map[string]bool, len(list))
	for _, v := range list {
		out[v] = true
	}
	return out, nil
}
