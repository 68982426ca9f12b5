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

// importBatch is how many rows go in one transaction: large enough that the pages of
// the indexes written in key order are written once for many rows, small enough that a
// transaction holds the writer for a fraction of a second.
const importBatch = 10_000

// importChunk is how many rows go in one statement (a lookup's IN list, an INSERT).
const importChunk = 500

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
// suppressed is asked a chunk at a time, and the rest goes in multi-row statements.
func (s *Service) importBatch(ctx context.Context, batch []importRow, purpose string, rep *ImportReport) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		hashes := make([]string, len(batch))
		existing, suppressed := map[string]bool{}, map[string]bool{}
		for i := 0; i < len(batch); i += importChunk {
			chunk := batch[i:min(i+importChunk, len(batch))]
			emails := make([]any, 0, len(chunk))
			hs := make([]any, 0, len(chunk)+1)
			hs = append(hs, purpose)
			for j, r := range chunk {
				hashes[i+j] = s.AddressHash(r.sub.Email)
				emails = append(emails, r.sub.Email)
				hs = append(hs, hashes[i+j])
			}
			if err := addStrings(ctx, tx, existing, `SELECT email FROM subscribers WHERE email IN (`+store.Placeholders(1, len(emails))+`)`, emails); err != nil {
				return err
			}
			if err := addStrings(ctx, tx, suppressed, `SELECT hash FROM suppressions WHERE purpose IN ($1, '*') AND hash IN (`+
				store.Placeholders(2, len(hs)-1)+`)`, hs); err != nil {
				return err
			}
		}
		now := store.Millis(s.now())
		ins := tx.Bulk("subscribers", []string{"id", "subject_id", "email", "email_hash", "first_name", "last_name", "company",
			"status", "source", "created_at", "confirmed_at"}, importChunk, "")
		defer ins.Close(ctx)
		var decisions []consent.Imported
		for i, r := range batch {
			switch {
			case suppressed[hashes[i]]:
				rep.Suppressed++
				continue
			case existing[r.sub.Email]:
				rep.Existing++
				continue
			}
			id := newID()
			if err := ins.Add(ctx, id, id, r.sub.Email, hashes[i], r.sub.FirstName, r.sub.LastName, r.sub.Company,
				StatusConfirmed, "import", now, now); err != nil {
				return fmt.Errorf("newsletter: import: %w", err)
			}
			decisions = append(decisions, consent.Imported{SubjectID: id, Purpose: purpose, Evidence: r.evidence})
		}
		if err := ins.Close(ctx); err != nil {
			return fmt.Errorf("newsletter: import: %w", err)
		}
		if len(decisions) == 0 {
			return nil
		}
		if err := s.consent.ImportTx(ctx, tx, decisions); err != nil {
			return err
		}
		// The new subscribers are mailable where the rule says so (confirmed, consent
		// or no objection, not suppressed, no restriction), evaluated a chunk at a time:
		// for the imported purpose, and for any marketing purpose that takes no
		// consent. A new subject holds no consent to any other purpose.
		for _, p := range s.mailPurposes() {
			if p.Key != purpose && p.NeedsConsent() {
				continue
			}
			for i := 0; i < len(decisions); i += importChunk {
				chunk := decisions[i:min(i+importChunk, len(decisions))]
				ids := make([]any, 0, len(chunk)+1)
				ids = append(ids, p.Key)
				for _, d := range chunk {
					ids = append(ids, d.SubjectID)
				}
				if err := s.fill(ctx, tx, p.Key, " AND s.subject_id IN ("+store.Placeholders(2, len(chunk))+")", ids...); err != nil {
					return err
				}
			}
		}
		rep.Imported += len(decisions)
		return nil
	})
}

// addStrings adds the values of a query of one text column to set.
func addStrings(ctx context.Context, q store.Querier, set map[string]bool, query string, args []any) error {
	list, err := store.Strings(ctx, q, query, args...)
	if err != nil {
		return fmt.Errorf("newsletter: import: %w", err)
	}
	for _, v := range list {
		set[v] = true
	}
	return nil
}
