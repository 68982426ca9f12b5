package newsletter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/newsletter"
	"steward/internal/store"
)

// suppress keeps the address from being mailed for the purpose, as an unsubscribe does.
func suppress(h *apptest.Harness, email, purpose string) error {
	ctx := context.Background()
	return h.App.DB().InTx(ctx, func(tx *store.Tx) error {
		return h.App.Newsletter().Suppress(ctx, tx, email, purpose, "unsubscribed")
	})
}

// An import keeps, for each subscriber, the consent as granted with what the file said
// of it as evidence, and the keyed hash of the address.
func TestImportKeepsEvidence(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		csv := "email,first_name,last_name,consented_at,source,evidence\n" +
			"Kim@Example.org,Kim,K,2024-03-01T10:00:00Z,\"webinar, spring\",\"ticked \"\"yes\"\" on form 3\"\n" +
			"lee@example.org,Lee,L,,,\n"
		rep, err := ns.Import(ctx, strings.NewReader(csv), newsletter.Purpose, "staff-7")
		if err != nil || rep.Imported != 2 {
			t.Fatalf("import: %+v %v", rep, err)
		}
		want := map[string]string{
			"kim@example.org": `{"imported_by":"staff-7","original_consented_at":"2024-03-01T10:00:00Z","original_evidence":"ticked \"yes\" on form 3","original_source":"webinar, spring"}`,
			"lee@example.org": `{"imported_by":"staff-7"}`,
		}
		for email, ev := range want {
			var subject, hash, source, decision string
			err := h.App.DB().QueryRowContext(ctx, `SELECT s.subject_id, s.email_hash, e.source, c.decision FROM subscribers s
				JOIN consent_events e ON e.subject_id = s.subject_id JOIN consent_state c ON c.subject_id = s.subject_id AND c.purpose = e.purpose
				WHERE s.email_hash = $1 AND e.purpose = $2`, ns.AddressHash(email), newsletter.Purpose).Scan(&subject, &hash, &source, &decision)
			if err != nil {
				t.Fatalf("%s: %v", email, err)
			}
			// The evidence is stored sealed under the subscriber's key: read it opened.
			hist, err := h.App.Consent().History(ctx, subject)
			if err != nil || len(hist) != 1 {
				t.Fatalf("%s: history %v, %v", email, hist, err)
			}
			got, _ := json.Marshal(hist[0].Evidence)
			if evidence := string(got); evidence != ev || source != "import" || decision != "granted" {
				t.Errorf("%s: evidence %s, source %s, decision %s; want %s from the import, granted", email, evidence, source, decision, ev)
			}
			if hash != ns.AddressHash(" "+strings.ToUpper(email)) || len(hash) != 64 {
				t.Errorf("%s: hash %s, want the address's keyed hash %s", email, hash, ns.AddressHash(email))
			}
		}
	})
}

// An address suppressed after an import's batch was read and checked, but before the
// batch is stored, is not imported: the batch's check is taken again within the
// transaction that stores it. And an address that joined the list meanwhile is left as
// it is.
func TestImportSeesSuppressionAfterRead(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		importWith := func(csv string, meanwhile func()) newsletter.ImportReport {
			t.Helper()
			ran := 0
			ns.SetImportRead(func() { ran++; meanwhile() })
			rep, err := ns.Import(ctx, strings.NewReader("email,first_name,last_name\n"+csv), newsletter.Purpose, "test")
			if err != nil || ran != 1 {
				t.Fatalf("import of one batch: %v after %d batches", err, ran)
			}
			return rep
		}
		rep := importWith("kim@example.org,Kim,K\nmo@example.org,Mo,M\nola@example.org,Ola,O\n", func() {
			if err := suppress(h, "kim@example.org", "*"); err != nil {
				t.Error(err)
			}
			if err := suppress(h, "ola@example.org", "own_offers"); err != nil {
				t.Error(err)
			}
		})
		if rep.Imported != 2 || rep.Suppressed != 1 || rep.Existing != 0 {
			t.Errorf("import: %+v, want 2 imported and kim suppressed", rep)
		}
		rep = importWith("lee@example.org,Lee,L\npat@example.org,Pat,P\n", func() {
			if err := h.App.DB().InTx(ctx, func(tx *store.Tx) error {
				return ns.EnsureMember(ctx, tx, "acct-lee", "lee@example.org", "Lee Member")
			}); err != nil {
				t.Error(err)
			}
		})
		if rep.Imported != 1 || rep.Suppressed != 0 || rep.Existing != 1 {
			t.Errorf("import: %+v, want pat imported and lee existing", rep)
		}
		for email, want := range map[string]bool{"kim@example.org": false, "lee@example.org": true, "mo@example.org": true,
			"ola@example.org": true, "pat@example.org": true} {
			var n int
			if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM subscribers WHERE email_hash = $1`, ns.AddressHash(email)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if (n == 1) != want {
				t.Errorf("%s: %d subscribers, want on the list %v", email, n, want)
			}
		}
		var lee string
		if err := h.App.DB().QueryRowContext(ctx, `SELECT subject_id FROM subscribers WHERE email_hash = $1`, ns.AddressHash("lee@example.org")).Scan(&lee); err != nil || lee != "acct-lee" {
			t.Errorf("lee's subject = %q, %v; want the account's, untouched by the import", lee, err)
		}
	})
}

// An unsubscribe made while an import stores a batch that holds the address waits for
// that batch to commit, then takes the new subscriber off the list: the maintained
// audience never keeps an address that is suppressed.
func TestSuppressionWaitsForImportBatch(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		done := make(chan error, 1)
		var waited bool
		ns.SetImportStoring(func() {
			go func() { done <- suppress(h, "kim@example.org", newsletter.Purpose) }()
			select {
			case err := <-done:
				t.Errorf("the unsubscribe went through while the batch was being stored (%v)", err)
			case <-time.After(300 * time.Millisecond):
				waited = true
			}
		})
		rep, err := ns.Import(ctx, strings.NewReader("email,first_name,last_name\nkim@example.org,Kim,K\nmo@example.org,Mo,M\n"), newsletter.Purpose, "test")
		if err != nil || rep.Imported != 2 {
			t.Fatalf("import: %+v %v", rep, err)
		}
		if !waited {
			t.Fatal("the unsubscribe did not wait")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		kept := map[string]bool{}
		if err := ns.Recipients(ctx, newsletter.Purpose, func(r newsletter.Recipient) error { kept[r.Email] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		byRule := map[string]bool{}
		if err := ns.AudienceByRule(ctx, newsletter.Purpose, func(r newsletter.Recipient) error { byRule[r.Email] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if kept["kim@example.org"] || !kept["mo@example.org"] || len(kept) != len(byRule) || byRule["kim@example.org"] {
			t.Errorf("audience kept %v, by the rule %v; want mo only", kept, byRule)
		}
	})
}

// An import of several batches (stored two at a time on PostgreSQL) counts every row
// once: new, on the list already, suppressed or invalid; and the kept audience holds
// exactly the new and the earlier subscribers.
func TestImportOfManyBatches(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		const rows = 25_000 // four batches (the first is smaller)
		addr := func(i int) string { return fmt.Sprintf("person%05d@example.org", i) }
		// Already on the list: every 1,000th. Suppressed: every 1,000th from 500.
		var earlier strings.Builder
		earlier.WriteString("email,first_name,last_name\n")
		for i := 0; i < rows; i += 1000 {
			fmt.Fprintf(&earlier, "%s,Early,E\n", addr(i))
			if err := suppress(h, addr(i+500), newsletter.Purpose); err != nil {
				t.Fatal(err)
			}
		}
		if rep, err := ns.Import(ctx, strings.NewReader(earlier.String()), newsletter.Purpose, "test"); err != nil || rep.Imported != rows/1000 {
			t.Fatalf("first import: %+v %v", rep, err)
		}
		var csv strings.Builder
		csv.WriteString("email,first_name,last_name\n")
		for i := range rows {
			fmt.Fprintf(&csv, "%s,Person,P\n", addr(i))
			if i%5000 == 1 {
				csv.WriteString("not an address,Bad,B\n")
			}
		}
		rep, err := ns.Import(ctx, strings.NewReader(csv.String()), newsletter.Purpose, "test")
		if err != nil {
			t.Fatal(err)
		}
		want := newsletter.ImportReport{Rows: rows + rows/5000, Imported: rows - 2*rows/1000, Existing: rows / 1000, Suppressed: rows / 1000, Invalid: rows / 5000}
		if rep.Rows != want.Rows || rep.Imported != want.Imported || rep.Existing != want.Existing || rep.Suppressed != want.Suppressed || rep.Invalid != want.Invalid {
			t.Errorf("import: %+v, want %+v", rep, want)
		}
		var kept, granted int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM mailable WHERE purpose = $1`, newsletter.Purpose).Scan(&kept); err != nil {
			t.Fatal(err)
		}
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM consent_state WHERE purpose = $1 AND decision = 'granted'`, newsletter.Purpose).Scan(&granted); err != nil {
			t.Fatal(err)
		}
		if kept != rows-rows/1000 || granted != kept {
			t.Errorf("audience %d, consents %d; want %d each", kept, granted, rows-rows/1000)
		}
	})
}
