package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/jobs"
	"steward/internal/newsletter"
	"steward/internal/store"
)

// recordingSMTP is an SMTP server that records who each message went to and how many
// connections carried them, and can refuse a recipient a number of times.
type recordingSMTP struct {
	mu      sync.Mutex
	got     map[string]int // recipient -> messages received
	conns   int
	refuse  map[string]int // recipient -> SMTP code it is refused with, once
	onFirst func()         // runs when the first message has arrived, before it is accepted
	// hang, when set, runs when a message has arrived, before it is accepted, with the
	// number of messages received before it; it returns once the message may be answered.
	hang func(n int)
	seen int  // messages received
	dead bool // every later message is refused for a while (421)
}

func (s *recordingSMTP) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	return &recordingSession{s: s}, nil
}

type recordingSession struct {
	s  *recordingSMTP
	to []string
}

func (x *recordingSession) Reset()        { x.to = nil }
func (x *recordingSession) Logout() error { return nil }
func (x *recordingSession) Mail(string, *smtp.MailOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.dead {
		return &smtp.SMTPError{Code: 421, Message: "shutting down"}
	}
	return nil
}
func (x *recordingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if code := x.s.refuse[to]; code != 0 {
		delete(x.s.refuse, to)
		return &smtp.SMTPError{Code: code, Message: "mailbox unavailable"}
	}
	x.to = append(x.to, to)
	return nil
}
func (x *recordingSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	x.s.mu.Lock()
	if hang := x.s.hang; hang != nil {
		n := x.s.seen
		x.s.seen++
		x.s.mu.Unlock()
		hang(n)
		x.s.mu.Lock()
	}
	defer x.s.mu.Unlock()
	if f := x.s.onFirst; f != nil {
		x.s.onFirst = nil
		f()
	}
	for _, to := range x.to {
		x.s.got[to]++
	}
	return nil
}

func startRecordingSMTP(t *testing.T) (*recordingSMTP, string) {
	t.Helper()
	rec := &recordingSMTP{got: map[string]int{}}
	srv := smtp.NewServer(rec)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rec, ln.Addr().String()
}

// campaignSetup starts Steward sending through a recording SMTP server, imports n
// subscribers (PREFIXNNNN@example.org) and writes a draft campaign to them.
func campaignSetup(t *testing.T, dbURL string, n int, prefix, title string) (*apptest.Harness, *recordingSMTP, newsletter.Campaign, []string) {
	t.Helper()
	rec, addr := startRecordingSMTP(t)
	h := apptest.Start(t, dbURL, "--mail", "smtp", "--smtp-addr", addr, "--smtp-tls", "none")
	ctx := context.Background()
	var csv bytes.Buffer
	csv.WriteString("email,first_name,last_name\n")
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = fmt.Sprintf("%s%04d@example.org", prefix, i)
		fmt.Fprintf(&csv, "%s,Reader,%d\n", addrs[i], i)
	}
	if rep, err := h.App.Newsletter().Import(ctx, &csv, newsletter.Purpose, "test"); err != nil || rep.Imported != n {
		t.Fatalf("import: %+v %v", rep, err)
	}
	c, err := h.App.Newsletter().CreateCampaign(ctx, "staff", newsletter.Purpose, title, "Hello.")
	if err != nil {
		t.Fatal(err)
	}
	return h, rec, c, addrs
}

// noJobs takes the place of the job queue, so that a test runs the sending itself.
type noJobs struct{}

func (noJobs) Enqueue(context.Context, *store.Tx, jobs.Args) error { return nil }

// TestCampaignManyBatches sends a campaign of several batches over SMTP: one connection
// carries up to 1,000 messages, each recipient allowed when their batch is sent gets
// exactly one mail, and a withdrawal after the audience was taken is honoured.
// A batch the server refuses in part fails the run; the next run sends only what was
// not marked as sent.
func TestCampaignManyBatches(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		const n = 1250
		h, rec, c, addrs := campaignSetup(t, dbURL, n, "reader", "Many batches")
		ctx := context.Background()
		if _, err := h.App.Newsletter().StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		// Three withdraw after the audience was taken; of the others, one is refused
		// for a while (451) and one for good (550, no such mailbox).
		withdrawn := map[string]bool{addrs[3]: true, addrs[700]: true, addrs[1249]: true}
		for a := range withdrawn {
			subj, _ := h.App.Newsletter().Lookup(ctx, a)
			if _, err := h.App.Consent().Record(ctx, subj, newsletter.Purpose, consent.Withdrawn, consent.SourceForm, nil); err != nil {
				t.Fatal(err)
			}
		}
		busy, gone := addrs[610], addrs[611]
		rec.mu.Lock()
		rec.refuse = map[string]int{busy: 451, gone: 550}
		rec.mu.Unlock()

		err := h.App.Newsletter().Send(ctx, c.ID)
		if err == nil || !strings.Contains(err.Error(), "not sent") {
			t.Fatalf("a run with a recipient refused for a while = %v", err)
		}
		if strings.Contains(err.Error(), "@") {
			t.Errorf("the error names an address: %v", err)
		}
		if cur, _ := h.App.Newsletter().Campaign(ctx, c.ID); cur.Status == newsletter.CampaignSent {
			t.Fatal("the campaign is marked sent with a recipient still to try")
		}
		if err := h.App.Newsletter().Send(ctx, c.ID); err != nil {
			t.Fatalf("the second run: %v", err)
		}
		cur, err := h.App.Newsletter().Campaign(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status != newsletter.CampaignSent || cur.Sent != n-len(withdrawn)-1 || cur.Skipped != len(withdrawn) || cur.Failed != 1 {
			t.Errorf("campaign: status %s, sent %d, skipped %d, failed %d", cur.Status, cur.Sent, cur.Skipped, cur.Failed)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		// Nobody gets the mail twice: what the server took in the failed run is marked
		// sent; only the recipient refused for a while is tried again, once.
		for _, a := range addrs {
			got, want := rec.got[a], 1
			if withdrawn[a] || a == gone {
				want = 0
			}
			if got != want {
				t.Errorf("%s got %d mails, want %d", a, got, want)
			}
		}
		// Two runs, the first of at least 1,000 messages: the cap of messages
		// per connection makes it three connections at most, and at least two.
		if rec.conns < 2 || rec.conns > 4 {
			t.Errorf("%d connections", rec.conns)
		}
		if len(rec.got) != n-len(withdrawn)-1 {
			t.Errorf("%d recipients, want %d", len(rec.got), n-len(withdrawn)-1)
		}
	})
}

// TestImportKeepsAudienceByRule imports subscribers where the register has a
// marketing purpose on legitimate interest (no consent needed) beside the newsletter:
// after the import, the maintained audience of each purpose is the rule's, including an
// address suppressed for the one purpose but not the other.
func TestImportKeepsAudienceByRule(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		reg, err := os.ReadFile("../consent/purposes.toml")
		if err != nil {
			t.Fatal(err)
		}
		reg = append(reg, []byte(`
[[purpose]]
key = "customer_news"
name = "News for customers"
description = "Email about products like those you bought, until you object."
basis = "legitimate_interest"
processors = ["email_provider"]
marketing = true
`)...)
		file := filepath.Join(t.TempDir(), "purposes.toml")
		if err := os.WriteFile(file, reg, 0o600); err != nil {
			t.Fatal(err)
		}
		h := apptest.Start(t, dbURL, "--purposes", file)
		ctx := context.Background()
		if err := h.App.DB().InTx(ctx, func(tx *store.Tx) error {
			return h.App.Newsletter().Suppress(ctx, tx, "kim@example.org", "customer_news", "objected")
		}); err != nil {
			t.Fatal(err)
		}
		csv := "email,first_name,last_name\nkim@example.org,Kim,K\nlee@example.org,Lee,L\nmo@example.org,Mo,M\n"
		if rep, err := h.App.Newsletter().Import(ctx, strings.NewReader(csv), newsletter.Purpose, "test"); err != nil || rep.Imported != 3 {
			t.Fatalf("import: %+v %v", rep, err)
		}
		want := map[string]map[string]bool{
			"newsletter":    {"kim@example.org": true, "lee@example.org": true, "mo@example.org": true},
			"customer_news": {"lee@example.org": true, "mo@example.org": true},
			"own_offers":    {},
		}
		for purpose, w := range want {
			byRule := map[string]bool{}
			if err := h.App.Newsletter().AudienceByRule(ctx, purpose, func(r newsletter.Recipient) error { byRule[r.Email] = true; return nil }); err != nil {
				t.Fatal(err)
			}
			kept := audience(t, h, purpose)
			if fmt.Sprint(kept) != fmt.Sprint(byRule) || fmt.Sprint(kept) != fmt.Sprint(w) {
				t.Errorf("%s: maintained %v, by the rule %v, want %v", purpose, kept, byRule, w)
			}
		}
	})
}

// A campaign sent by the job queue in runs of one batch each (the time budget of a run
// made tiny) reaches everyone exactly once: each run stops between batches and the job
// runs again at once.
func TestCampaignRunsInSlices(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		const n = 650 // four batches
		h, rec, c, _ := campaignSetup(t, dbURL, n, "slice", "In slices")
		h.App.Newsletter().SetSendBudget(time.Nanosecond)
		ctx := context.Background()
		if _, err := h.App.Newsletter().StartSend(ctx, h.App.Jobs(), c.ID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			cur, err := h.App.Newsletter().Campaign(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cur.Status == newsletter.CampaignSent {
				if cur.Sent != n {
					t.Errorf("sent %d of %d", cur.Sent, n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not sent after 30 s: %+v", cur)
			}
			time.Sleep(20 * time.Millisecond)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.got) != n {
			t.Errorf("%d recipients, want %d", len(rec.got), n)
		}
		for a, k := range rec.got {
			if k != 1 {
				t.Errorf("%s got %d mails", a, k)
			}
		}
		var runs int
		h.App.DB().QueryRowContext(ctx, `SELECT attempt FROM river_job WHERE kind = 'campaign_send'`).Scan(&runs)
		if runs < 1 {
			t.Errorf("the job's attempt = %d", runs)
		}
	})
}

// A withdrawal made while a batch is being sent is honoured for the next batch, which
// was read and rendered meanwhile: it is checked again just before it goes.
func TestCampaignWithdrawalDuringSend(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		const n = 450
		h, rec, c, _ := campaignSetup(t, dbURL, n, "late", "Late withdrawal")
		ctx := context.Background()
		if _, err := h.App.Newsletter().StartSend(ctx, noJobs{}, c.ID); err != nil {
			t.Fatal(err)
		}
		// Someone in the second batch (deliveries go in token order).
		var subject string
		if err := h.App.DB().QueryRowContext(ctx, `SELECT subject_id FROM campaign_deliveries WHERE campaign_id = $1
			ORDER BY token_id LIMIT 1 OFFSET 250`, c.ID).Scan(&subject); err != nil {
			t.Fatal(err)
		}
		email := subjectAddress(t, h, subject)
		rec.mu.Lock()
		rec.onFirst = func() {
			if _, err := h.App.Consent().Record(context.Background(), subject, newsletter.Purpose, consent.Withdrawn, consent.SourceEmailLink, nil); err != nil {
				t.Error(err)
			}
		}
		rec.mu.Unlock()
		if err := h.App.Newsletter().Send(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		cur, _ := h.App.Newsletter().Campaign(ctx, c.ID)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.got[email] != 0 || len(rec.got) != n-1 || cur.Sent != n-1 || cur.Skipped != 1 {
			t.Errorf("the one who withdrew got %d mails; %d recipients; sent %d, skipped %d", rec.got[email], len(rec.got), cur.Sent, cur.Skipped)
		}
	})
}
