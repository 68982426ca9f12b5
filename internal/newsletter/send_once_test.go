package newsletter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"steward/internal/app/apptest"
	"steward/internal/jobs"
	"steward/internal/mail"
	"steward/internal/newsletter"
	"steward/internal/store"
)

// dyingSender hands the first `keep` messages of its second batch to the real sender,
// then stops as a killed process would: it never returns until released.
type dyingSender struct {
	real    mail.BulkSender
	keep    int
	batches int
	died    chan struct{}
	release chan struct{}
}

func (d *dyingSender) SendAll(ctx context.Context, msgs []mail.Message) error {
	d.batches++
	if d.batches < 2 {
		return d.real.SendAll(ctx, msgs)
	}
	if err := d.real.SendAll(ctx, msgs[:d.keep]); err != nil {
		return err
	}
	close(d.died)
	<-d.release
	return errors.New("killed")
}

// A run that dies while the .eml outbox is writing a batch leaves that batch's
// deliveries sending; the next run asks the folder which of them were written: those
// are sent, the rest are sent now, and nobody gets the mail twice or not at all.
func TestCampaignSentOnceAfterCrashFileOutbox(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		const n = 450
		ctx := context.Background()
		ns := h.App.Newsletter()
		var csv strings.Builder
		csv.WriteString("email,first_name,last_name\n")
		for i := range n {
			fmt.Fprintf(&csv, "file%04d@example.org,Reader,R\n", i)
		}
		if rep, err := ns.Import(ctx, strings.NewReader(csv.String()), newsletter.Purpose, "staff-1"); err != nil || rep.Imported != n {
			t.Fatalf("import: %+v %v", rep, err)
		}
		c, err := ns.CreateCampaign(ctx, "staff-1", newsletter.Purpose, "Written once", "Hello.")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ns.StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		dying := &dyingSender{keep: 5, died: make(chan struct{}), release: make(chan struct{})}
		dying.real = ns.SwapSender(dying)
		dead := make(chan error, 1)
		go func() { dead <- ns.Send(ctx, c.ID) }()
		<-dying.died
		ns.SwapSender(dying.real)

		if err := ns.Send(ctx, c.ID); err != nil {
			t.Fatalf("the run after the crash: %v", err)
		}
		cur, err := ns.Campaign(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status != newsletter.CampaignSent || cur.Sent != n || cur.Unconfirmed != 0 {
			t.Errorf("campaign: status %s, sent %d of %d, unconfirmed %d", cur.Status, cur.Sent, n, cur.Unconfirmed)
		}
		got := map[string]int{}
		for _, m := range h.Mails("") {
			if !strings.Contains(m.Raw, "Subject: Written once") {
				continue
			}
			for _, line := range strings.Split(m.Raw, "\r\n") {
				if to, ok := strings.CutPrefix(line, "To: "); ok {
					got[strings.Trim(to, "<>")]++
					break
				}
			}
		}
		for i := range n {
			a := fmt.Sprintf("file%04d@example.org", i)
			if got[a] != 1 {
				t.Errorf("%s got %d mails, want 1", a, got[a])
			}
		}
		close(dying.release)
		<-dead
	})
}

// noJobs takes the place of the job queue, so that a test runs the sending itself.
type noJobs struct{}

func (noJobs) Enqueue(context.Context, *store.Tx, jobs.Args) error { return nil }
