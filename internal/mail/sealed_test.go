package mail

import (
	"context"
	"strings"
	"testing"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// A queued message holds its recipient and data only sealed under its subject's key
// (an existing key, or one made for a new subject in the transaction); the dispatcher
// opens and delivers it; a message whose subject was erased meanwhile is dropped,
// never sent; one an earlier release queued in plain text (no subject) goes as it is.
func TestQueuedMailIsSealed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sender := &flaky{}
		o, v := newOutbox(t, db, sender, time.Now)
		member, err := v.DataKey(ctx, "member", true)
		if err != nil {
			t.Fatal(err)
		}
		mails := []Transactional{
			{SubjectID: "member", To: "member.seal@example.org", Template: VerifyEmail, Data: map[string]string{"Name": "Ottilie Sealwright", "Link": "https://x/v"}},
			{SubjectID: "subscriber", To: "subscriber.seal@example.org", Template: NewsletterConfirm, Data: map[string]string{"Name": "Bertram", "Link": "https://x/n"}},
			{SubjectID: "erased", To: "erased.seal@example.org", Template: PasswordReset, Data: map[string]string{"Link": "https://x/r"}},
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			ps := make([]Prepared, 0, len(mails)+1)
			for _, m := range mails {
				p, err := o.Prepare(m)
				if err != nil {
					return err
				}
				ps = append(ps, p)
			}
			// Prepared before its subject was known, as a new subscriber's is.
			p, err := o.Prepare(Transactional{To: "second.seal@example.org", Template: NewsletterConfirm, Data: map[string]string{"Link": "https://x/2"}})
			if err != nil {
				return err
			}
			return o.EnqueuePrepared(ctx, tx, append(ps, p.About("subscriber"))...)
		}); err != nil {
			t.Fatal(err)
		}
		raw, err := store.Strings(ctx, db, `SELECT recipient || ' ' || data || ' ' || subject || text_body || html_body FROM mail_outbox`)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw {
			for _, plain := range []string{"seal@", "Sealwright", "Bertram", "https://"} {
				if strings.Contains(r, plain) {
					t.Errorf("a queued row holds %q in plain text: %s", plain, r)
				}
			}
		}
		// The member's existing key sealed their mail; the subscriber got one key.
		var to string
		if err := db.QueryRowContext(ctx, `SELECT recipient FROM mail_outbox WHERE subject_id = 'member'`).Scan(&to); err != nil {
			t.Fatal(err)
		}
		if got, err := member.OpenText(labelRecipient, to); err != nil || got != "member.seal@example.org" {
			t.Errorf("the member's mail under their key: %q, %v", got, err)
		}
		var keys int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM vault_keys WHERE subject_id = 'subscriber'`).Scan(&keys); err != nil || keys != 1 {
			t.Errorf("the subscriber has %d keys (%v), want 1", keys, err)
		}

		// Export opens what is sealed.
		secs, err := Holder{}.Export(ctx, db, datamap.Subject{ID: "member", Key: member})
		if err != nil {
			t.Fatal(err)
		}
		if len(secs) != 1 || len(secs[0].Rows) != 1 || !strings.Contains(strings.Join(secs[0].Rows[0], " "), "Ottilie Sealwright") ||
			!strings.Contains(strings.Join(secs[0].Rows[0], " "), "member.seal@example.org") {
			t.Errorf("export: %+v", secs)
		}

		// The subject of one is erased before the dispatcher hands it over.
		if err := db.InTx(ctx, func(tx *store.Tx) error { return v.Shred(ctx, tx, "erased") }); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, template, data, created_at)
			VALUES ('old', 'earlier.release@example.org', '', '', '', 'password_reset', '{"Link":"https://x/old"}', 1)`); err != nil {
			t.Fatal(err)
		}
		if n, err := o.DispatchOnce(ctx); n != 5 || err != nil {
			t.Fatalf("dispatch: %d, %v", n, err)
		}
		got := map[string]string{}
		for _, m := range sender.got {
			got[m.To] = m.Text
		}
		for to, want := range map[string]string{"member.seal@example.org": "https://x/v", "subscriber.seal@example.org": "https://x/n",
			"second.seal@example.org": "https://x/2", "earlier.release@example.org": "https://x/old"} {
			if !strings.Contains(got[to], want) {
				t.Errorf("mail to %s: %q, want it to hold %s", to, got[to], want)
			}
		}
		if _, ok := got["erased.seal@example.org"]; ok || len(sender.got) != 4 {
			t.Errorf("sent %d mails, to %v; the erased subject's must not go", len(sender.got), got)
		}
		var left int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d messages left in the outbox (%v)", left, err)
		}
	})
}

// A mail without a subject is refused: nothing would seal it, and no erasure would find it.
func TestEnqueueNeedsSubject(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		o, _ := newOutbox(t, db, &flaky{}, time.Now)
		err := db.InTx(ctx, func(tx *store.Tx) error {
			return o.Enqueue(ctx, tx, Transactional{To: "nobody@example.org", Template: PasswordReset, Data: map[string]string{"Link": "x"}})
		})
		if err == nil {
			t.Error("a mail without a subject was queued")
		}
	})
}
