package newsletter_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/newsletter"
)

// The list of campaigns counts each campaign's own deliveries (it reads them for all
// campaigns in one query): a campaign started with three subscribers, one started
// with five and a draft.
func TestCampaignsCountEachOwnDeliveries(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		importN := func(from, n int) {
			t.Helper()
			var csv strings.Builder
			csv.WriteString("email,first_name,last_name\n")
			for i := from; i < from+n; i++ {
				fmt.Fprintf(&csv, "reader%d@example.org,Reader,R\n", i)
			}
			if rep, err := ns.Import(ctx, strings.NewReader(csv.String()), newsletter.Purpose, "staff-1"); err != nil || rep.Imported != n {
				t.Fatalf("import: %+v %v", rep, err)
			}
		}
		start := func(subject string) string {
			t.Helper()
			c, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, subject, "Hello.")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ns.StartSend(ctx, h.App.Jobs(), c.ID); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		importN(0, 3)
		first := start("First")
		importN(3, 2)
		second := start("Second")
		draft, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, "Draft", "Not yet.")
		if err != nil {
			t.Fatal(err)
		}

		list, err := ns.Campaigns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{first: 3, second: 5, draft.ID: 0}
		if len(list) != len(want) {
			t.Fatalf("got %d campaigns, want %d", len(list), len(want))
		}
		for _, c := range list {
			// Sending goes on meanwhile: pending deliveries become sent, the total stays.
			if c.Recipients != want[c.ID] || c.Sent+c.Skipped+c.Failed > c.Recipients {
				t.Errorf("campaign %q: recipients %d (sent %d, skipped %d, failed %d), want %d",
					c.Subject, c.Recipients, c.Sent, c.Skipped, c.Failed, want[c.ID])
			}
			one, err := ns.Campaign(ctx, c.ID)
			if err != nil || one.Recipients != c.Recipients || one.Subject != c.Subject || one.Status != c.Status && c.Status != newsletter.CampaignSending {
				t.Errorf("campaign %q alone: %+v %v; in the list: %+v", c.Subject, one, err, c)
			}
		}
	})
}
