package newsletter_test

import (
	"context"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/newsletter"
	"steward/internal/store/storetest"
)

// An address suppressed after an import's batch was read and checked, but before the
// batch is stored, is not imported: the batch's check is taken again within the
// transaction that stores it. And an address that joined the list meanwhile is left as
// it is.
func TestImportSeesSuppressionAfterRead(t *testing.T) {
	for name, u := range map[string]string{"sqlite": "", "postgres": "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if u != "" {
				if u = storetest.PostgresURL(t); u == "" {
					t.Skip("STEWARD_TEST_POSTGRES_URL not set")
				}
			}
			h := apptest.Start(t, u)
			ctx := context.Background()
			ns := h.App.Newsletter
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
				if err := ns.Suppress(ctx, h.App.DB, "kim@example.org", "*", "erased"); err != nil {
					t.Error(err)
				}
				if err := ns.Suppress(ctx, h.App.DB, "ola@example.org", "own_offers", "unsubscribed"); err != nil {
					t.Error(err)
				}
			})
			if rep.Imported != 2 || rep.Suppressed != 1 || rep.Existing != 0 {
				t.Errorf("import: %+v, want 2 imported and kim suppressed", rep)
			}
			rep = importWith("lee@example.org,Lee,L\npat@example.org,Pat,P\n", func() {
				if err := ns.EnsureMember(ctx, "acct-lee", "lee@example.org", "Lee Member"); err != nil {
					t.Error(err)
				}
			})
			if rep.Imported != 1 || rep.Suppressed != 0 || rep.Existing != 1 {
				t.Errorf("import: %+v, want pat imported and lee existing", rep)
			}
			for email, want := range map[string]bool{"kim@example.org": false, "lee@example.org": true, "mo@example.org": true,
				"ola@example.org": true, "pat@example.org": true} {
				var n int
				if err := h.App.DB.QueryRowContext(ctx, `SELECT count(*) FROM subscribers WHERE email = $1`, email).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if (n == 1) != want {
					t.Errorf("%s: %d subscribers, want on the list %v", email, n, want)
				}
			}
			var lee string
			if err := h.App.DB.QueryRowContext(ctx, `SELECT subject_id FROM subscribers WHERE email = 'lee@example.org'`).Scan(&lee); err != nil || lee != "acct-lee" {
				t.Errorf("lee's subject = %q, %v; want the account's, untouched by the import", lee, err)
			}
		})
	}
}
