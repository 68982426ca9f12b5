package app_test

import (
	"context"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/newsletter"
)

// A run of Send that dies after the mail server took part of a batch, before the
// batch was marked (a SIGKILL), leaves its deliveries sending; the next run (River's
// rescue) never sends them again: it settles them as unconfirmed and sends the rest.
// The run "dies" by hanging inside the SMTP server's answer to the fifth message of the
// first batch: four were taken by then, and nothing of the batch was marked.
func TestCampaignSentOnceAfterCrash(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		const n = 450 // three batches of at most 200
		h, rec, c, addrs := campaignSetup(t, dbURL, n, "once", "Sent once")
		ctx := context.Background()
		ns := h.App.Newsletter()
		if _, err := ns.StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		hung, release := make(chan struct{}), make(chan struct{})
		rec.mu.Lock()
		rec.hang = func(k int) {
			if k == 4 {
				close(hung)
				<-release
			}
		}
		rec.mu.Unlock()
		dead := make(chan error, 1)
		go func() { dead <- ns.Send(ctx, c.ID) }()
		<-hung

		// The rescue.
		if err := ns.Send(ctx, c.ID); err != nil {
			t.Fatalf("the run after the crash: %v", err)
		}
		cur, err := ns.Campaign(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status != newsletter.CampaignSent || cur.Unconfirmed != 200 || cur.Sent != n-200 || cur.Recipients != n {
			t.Errorf("campaign: status %s, %d recipients, sent %d, unconfirmed %d; want sent, %d, %d, 200",
				cur.Status, cur.Recipients, cur.Sent, cur.Unconfirmed, n, n-200)
		}
		rec.mu.Lock()
		total := 0
		for _, a := range addrs {
			if k := rec.got[a]; k > 1 {
				t.Errorf("%s got %d mails", a, k)
			}
			total += rec.got[a]
		}
		if want := 4 + n - 200; total != want {
			t.Errorf("%d mails received, want %d (4 before the crash, then the two batches after it)", total, want)
		}
		// The dead run's connection fails from here on: it ends, and the test with it.
		rec.dead, rec.hang = true, nil
		rec.mu.Unlock()
		close(release)
		<-dead
	})
}

// The API counts a campaign's unconfirmed deliveries (as the run after a crash over
// SMTP leaves them).
func TestCampaignUnconfirmedInAPI(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		ns := h.App.Newsletter()
		csv := "email,first_name,last_name\na@example.org,A,A\nb@example.org,B,B\n"
		if rep, err := ns.Import(ctx, strings.NewReader(csv), newsletter.Purpose, "staff-1"); err != nil || rep.Imported != 2 {
			t.Fatalf("import: %+v %v", rep, err)
		}
		c, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, "Interrupted", "Hello.")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ns.StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := h.App.DB().ExecContext(ctx, `UPDATE campaign_deliveries SET state = 'unconfirmed' WHERE campaign_id = $1`, c.ID); err != nil {
			t.Fatal(err)
		}
		staffID, staff := h.Member("editor@example.org", "violet harbour lantern 7", nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		r := h.Do("GET", "/api/v1/staff/campaigns/"+c.ID, nil, staff)
		if got := r.JSON()["unconfirmed"]; r.Status != 200 || got != float64(2) {
			t.Errorf("GET campaign = %d, unconfirmed %v, want 2", r.Status, got)
		}
	})
}
