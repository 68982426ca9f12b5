package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// testVault opens a vault on db with its key file in a temporary folder.
func testVault(t *testing.T, db *store.DB) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), db, vault.Config{KeyFile: filepath.Join(t.TempDir(), "master.key"), Create: true, Grace: -1},
		time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newOutbox is an outbox on db with its own vault.
func newOutbox(t *testing.T, db *store.DB, sender BulkSender, now func() time.Time) (*Outbox, *vault.Vault) {
	t.Helper()
	v := testVault(t, db)
	o, err := NewOutbox(context.Background(), db, v, sender, "Site", now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return o, v
}

// queued returns the recipients (opened) and template data of the queued messages,
// as "recipient data", sorted.
func queued(t *testing.T, db *store.DB, v *vault.Vault) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT subject_id, recipient, data FROM mail_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ subject, to, data string }
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.subject, &r.to, &r.data); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	var out []string
	for _, r := range all {
		k, err := v.DataKey(ctx, r.subject, false)
		if err != nil {
			t.Fatal(err)
		}
		to, err1 := k.OpenText(labelRecipient, r.to)
		data, err2 := k.OpenText(labelData, r.data)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		out = append(out, to+" "+data)
	}
	slices.Sort(out)
	return out
}

// flaky fails its first n batches, as an SMTP server that is down would.
type flaky struct {
	fail int
	got  []Message
}

func (f *flaky) SendAll(_ context.Context, msgs []Message) error {
	if f.fail > 0 {
		f.fail--
		return errors.New("dial tcp: connection refused for ann@example.org")
	}
	f.got = append(f.got, msgs...)
	return nil
}

func TestDispatchRetriesAndForgets(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		sender := &flaky{fail: 1}
		o, _ := newOutbox(t, db, sender, clock)
		for _, to := range []string{"ann@example.org", "bob@example.org"} {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return o.Enqueue(ctx, tx, Transactional{SubjectID: "s-" + to, To: to, Template: PasswordReset, Data: map[string]string{"Link": "https://x/y"}})
			}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := o.DispatchOnce(ctx)
		if err == nil || n != 2 {
			t.Fatalf("first batch: %d, %v; want a failure of 2", n, err)
		}
		if strings.Contains(err.Error(), "ann@example.org") {
			t.Errorf("the error keeps an address: %v", err)
		}
		if n, _ := o.DispatchOnce(ctx); n != 0 {
			t.Errorf("a failed batch was retried at once: %d", n)
		}
		now = now.Add(5 * time.Second)
		if n, err := o.DispatchOnce(ctx); n != 2 || err != nil {
			t.Fatalf("retry: %d, %v", n, err)
		}
		if len(sender.got) != 2 {
			t.Errorf("sent %d, want 2", len(sender.got))
		}
		var left int
		db.QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox`).Scan(&left)
		if left != 0 {
			t.Errorf("%d delivered message(s) kept", left)
		}
	})
}

// erasing is a file sender during whose sending the recipient is erased.
type erasing struct {
	FileSender
	erase func()
}

func (e erasing) SendAll(ctx context.Context, msgs []Message) error {
	e.erase() // the erasure runs while the messages are being handed over
	return e.FileSender.SendAll(ctx, msgs)
}

// A message whose recipient is erased while it is being delivered does not stay in the
// .eml folder.
func TestDispatchRecallsErased(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		s := erasing{FileSender: FileSender{Dir: dir, From: "S <s@example.org>"}}
		s.erase = func() {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return Holder{Dir: dir}.Erase(ctx, tx, datamap.Subject{ID: "x", Email: "gone@example.org"})
			}); err != nil {
				t.Fatal(err)
			}
		}
		o, _ := newOutbox(t, db, s, time.Now)
		for subject, to := range map[string]string{"x": "gone@example.org", "y": "stays@example.org"} {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return o.Enqueue(ctx, tx, Transactional{SubjectID: subject, To: to, Template: PasswordReset, Data: map[string]string{"Link": "https://x/y"}})
			}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := o.DispatchOnce(ctx); err != nil {
			t.Fatal(err)
		}
		found, err := Holder{Dir: dir}.ScanTerms(ctx, []datamap.Term{{Kind: "email", Value: "gone@example.org"}, {Kind: "other", Value: "stays@example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].Kind != "other" {
			t.Errorf("outbox folder after delivery during erasure: %v", found)
		}
	})
}

// An erasure takes out every queued mail about the subject, the guardian's mail about
// a child included, and leaves the others.
func TestEraseTakesTheSubjectsMail(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		o, v := newOutbox(t, db, &flaky{}, time.Now)
		children := []string{"child-1", "child-2", "child-3"}
		for _, child := range append(children, "other-child") {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return o.Enqueue(ctx, tx, Transactional{SubjectID: child, To: "guardian@example.org", Template: GuardianConsent,
					Data: map[string]string{"ChildName": "Kid", "ChildEmail": child + "@example.org", "Link": "https://x/y"}})
			}); err != nil {
				t.Fatal(err)
			}
		}
		for _, child := range children {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return Holder{}.Erase(ctx, tx, datamap.Subject{ID: child})
			}); err != nil {
				t.Fatal(err)
			}
		}
		if got := queued(t, db, v); len(got) != 1 || !strings.Contains(got[0], "other-child@example.org") {
			t.Errorf("queued after erasing the children: %q", got)
		}
	})
}

// An erasure takes out every plain mail an earlier release queued (no subject) that
// names the address in its data, however JSON would write it (& and quotes included),
// and leaves the others.
func TestEraseFindsAddressInEarlierReleasesData(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		children := []string{`tom&jerry@example.org`, `o"neil@example.org`, `plain@example.org`}
		for i, child := range append(children, "other.child@example.org") {
			data, _ := json.Marshal(map[string]string{"ChildName": "Kid", "ChildEmail": child, "Link": "https://x/y"})
			if _, err := db.ExecContext(ctx, `INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, template, data, created_at)
				VALUES ($1, 'guardian@example.org', '', '', '', 'guardian_consent', $2, 1)`, fmt.Sprint("old-", i),
				strings.ReplaceAll(string(data), `\u0026`, "&")); err != nil {
				t.Fatal(err)
			}
		}
		for _, child := range children {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return Holder{}.Erase(ctx, tx, datamap.Subject{ID: "x", Email: strings.ToUpper(child)})
			}); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := store.Strings(ctx, db, `SELECT data FROM mail_outbox`)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || !strings.Contains(rows[0], "other.child@example.org") {
			t.Errorf("queued after erasing the children: %q", rows)
		}
	})
}

// A queued message that cannot be rendered is set aside for a day and does not hold
// back the others.
func TestDispatchSetsAsideUnrenderable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sender := &flaky{}
		o, _ := newOutbox(t, db, sender, time.Now)
		if _, err := db.ExecContext(ctx, `INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, template, data, created_at)
			VALUES ('bad', 'x@example.org', '', '', '', 'password_reset', '{not json', 1)`); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			return o.Enqueue(ctx, tx, Transactional{SubjectID: "good", To: "good@example.org", Template: PasswordReset, Data: map[string]string{"Link": "https://x/y"}})
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := o.DispatchOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if len(sender.got) != 1 || sender.got[0].To != "good@example.org" {
			t.Errorf("delivered %+v", sender.got)
		}
		var until int64
		if err := db.QueryRowContext(ctx, `SELECT claimed_until FROM mail_outbox WHERE id = 'bad'`).Scan(&until); err != nil {
			t.Fatal(err)
		}
		if time.Until(time.UnixMilli(until)) < 23*time.Hour {
			t.Errorf("the unrenderable message is claimed until %v", time.UnixMilli(until))
		}
	})
}

// partial takes every message but refuses one for a while and one for good.
type partial struct{ got []string }

func (p *partial) SendAll(_ context.Context, msgs []Message) error {
	pe := &PartialError{Failed: map[int]bool{}, err: errors.New("refused")}
	for i, m := range msgs {
		switch m.To {
		case "busy@example.org":
			pe.Failed[i] = true
		case "gone@example.org":
			pe.Failed[i] = false
		default:
			p.got = append(p.got, m.To)
		}
	}
	return pe
}

// A batch the server takes in part: what it took and what it refused for good leave
// the outbox; only what it refused for a while is tried again.
func TestDispatchKeepsOnlyTemporaryFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		sender := &partial{}
		o, v := newOutbox(t, db, sender, time.Now)
		for _, to := range []string{"ok@example.org", "busy@example.org", "gone@example.org"} {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				return o.Enqueue(ctx, tx, Transactional{SubjectID: "s-" + to, To: to, Template: PasswordReset, Data: map[string]string{"Link": "https://x/y"}})
			}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := o.DispatchOnce(ctx); err == nil || strings.Contains(err.Error(), "@") {
			t.Errorf("dispatch of a partly refused batch = %v", err)
		}
		left := queued(t, db, v)
		if len(left) != 1 || !strings.HasPrefix(left[0], "busy@example.org ") || len(sender.got) != 1 {
			t.Errorf("left in the outbox %v, delivered %v", left, sender.got)
		}
	})
}

// An erasure finds the mail of the addresses a subject proved before by their blind
// index alone: .eml files addressed to one or naming one, in any case and between
// punctuation; queued messages go by their subject. It leaves everyone else's.
func TestEraseFindsEarlierAddressesByIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		index := vault.NewIndex([]byte("0123456789abcdef0123456789abcdef"))
		files := FileSender{Dir: dir, From: "Site <site@example.org>"}
		mails := []Transactional{
			{SubjectID: "x", To: "Former@Example.org", Template: EmailChanging, Data: map[string]string{"ResetLink": "https://x/r"}},
			{SubjectID: "x", To: "guardian@example.org", Template: GuardianConsent, Data: map[string]string{"ChildName": "Kid", "ChildEmail": "former@example.org", "Link": "https://x/g"}},
			{SubjectID: "y", To: "other@example.org", Template: EmailChanging, Data: map[string]string{"ResetLink": "https://x/r"}},
			{SubjectID: "z", To: "guardian@example.org", Template: GuardianConsent, Data: map[string]string{"ChildName": "Kid", "ChildEmail": "not.former@example.org", "Link": "https://x/g"}},
		}
		o, v := newOutbox(t, db, files, time.Now)
		enqueue := func() {
			for _, m := range mails {
				if err := db.InTx(ctx, func(tx *store.Tx) error { return o.Enqueue(ctx, tx, m) }); err != nil {
					t.Fatal(err)
				}
			}
		}
		enqueue()
		if n, err := o.DispatchOnce(ctx); n != len(mails) || err != nil {
			t.Fatalf("dispatch: %d, %v", n, err)
		}
		enqueue() // and the same again, still queued
		subj := datamap.Subject{ID: "x", Email: "current@example.org", Proven: []string{index.Address("former@example.org")}}

		err := db.InTx(ctx, func(tx *store.Tx) error { return Holder{Dir: dir}.Erase(ctx, tx, subj) })
		if err == nil {
			t.Error("a holder without the index erased a subject with earlier addresses")
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return Holder{Dir: dir, Index: index}.Erase(ctx, tx, subj) }); err != nil {
			t.Fatal(err)
		}
		terms := []datamap.Term{{Kind: "former", Value: "former@example.org"}, {Kind: "other", Value: "other@example.org"},
			{Kind: "not former", Value: "not.former@example.org"}}
		found, err := Holder{Dir: dir}.ScanTerms(ctx, terms)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, f := range found {
			kinds[f.Kind]++
		}
		// "not.former@example.org" holds "former@example.org": the text search counts it.
		if kinds["other"] != 1 || kinds["not former"] != 1 || kinds["former"] != 1 {
			t.Errorf("outbox folder after the erasure: %v", found)
		}
		queued := queued(t, db, v)
		if len(queued) != 2 || !strings.HasPrefix(queued[0], "guardian@example.org") || !strings.Contains(queued[0], "not.former@") ||
			!strings.HasPrefix(queued[1], "other@example.org") {
			t.Errorf("queued after the erasure: %q", queued)
		}
	})
}
