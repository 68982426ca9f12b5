package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/cli"
	"steward/internal/datamap"
	"steward/internal/retention"
	"steward/internal/rights"
	"steward/internal/store"
)

// deleteMe deletes the member's account through the API and waits for the erasure.
func deleteMe(t *testing.T, h *apptest.Harness, token string) {
	t.Helper()
	r := h.Do("DELETE", "/api/v1/me", map[string]string{"password": pw}, token)
	if r.Status != 202 {
		t.Fatalf("delete = %d %s", r.Status, r.Body)
	}
	h.WaitErasure(r.JSON()["request_id"].(string))
}

// An erasure acts only on the addresses proven to be the subject's. A member who asks
// to change to someone else's address and never confirms it, then deletes the account,
// leaves that person's subscription, consent, audience and mail as they were; so does a
// registration with someone else's address that was never verified and is purged.
func TestErasureSparesUnprovenAddresses(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		victims := []string{"victim@example.org", "second.victim@example.org"}
		subjects := map[string]string{}
		kept := map[string][]apptest.Mail{}
		for _, v := range victims {
			subscribe(t, h, v, true)
			s, err := h.App.Newsletter().Lookup(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			subjects[v] = s
		}

		// A member asks for the first victim's address and deletes the account.
		_, token := h.Member("taker@example.org", pw, nil)
		if r := h.Do("PATCH", "/api/v1/me", map[string]string{"email": victims[0], "current_password": pw}, token); r.Status != 200 {
			t.Fatalf("email change = %d %s", r.Status, r.Body)
		}
		h.WaitLink(victims[0], "/verify?token=") // mailed to the victim, never opened
		// Someone registers with the second victim's address and never verifies it.
		reg := h.Register(map[string]any{"email": victims[1], "password": pw, "name": "Never Verified",
			"birthdate": "1980-01-01", "country": "DE"})
		if reg.Status != 201 {
			t.Fatalf("register = %d %s", reg.Status, reg.Body)
		}
		h.WaitLink(victims[1], "/verify?token=")
		for _, v := range victims {
			kept[v] = h.Mails(v)
		}

		deleteMe(t, h, token)
		h.Clock.Advance(15 * 24 * time.Hour) // past the deadline of an unverified registration
		if _, err := h.App.Retention().Run(ctx, retention.Actor{Source: retention.ByCLI}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.App.Accounts().Lookup(ctx, reg.JSON()["id"].(string)); err == nil {
			t.Fatal("the unverified registration survived the purge")
		}

		aud := audience(t, h, "newsletter")
		for _, v := range victims {
			if s, err := h.App.Newsletter().Lookup(ctx, v); err != nil || s != subjects[v] {
				t.Errorf("%s: subscriber subject = %q (%v), want %q", v, s, err, subjects[v])
			}
			var status string
			if err := h.App.DB().QueryRowContext(ctx, `SELECT status FROM subscribers WHERE email_hash = $1`, h.App.Newsletter().AddressHash(v)).Scan(&status); err != nil || status != "confirmed" {
				t.Errorf("%s: subscription %q (%v), want confirmed", v, status, err)
			}
			if a, err := h.App.Consent().Allowed(ctx, subjects[v], "newsletter"); err != nil || !a.Allowed {
				t.Errorf("%s: consent allows the newsletter = %v (%v)", v, a.Allowed, err)
			}
			for _, p := range []string{"newsletter", "own_offers"} {
				if s, err := h.App.Newsletter().Suppressed(ctx, v, p); err != nil || s {
					t.Errorf("%s: suppressed for %s = %v (%v)", v, p, s, err)
				}
			}
			if !aud[v] {
				t.Errorf("%s is not in the newsletter audience", v)
			}
			for _, m := range kept[v] {
				if _, err := os.Stat(m.File); err != nil {
					t.Errorf("%s: a mail of theirs was removed from the outbox folder: %v", v, err)
				}
			}
		}
		// The member's own, proven address was erased.
		if s, _ := h.App.Newsletter().Suppressed(ctx, "taker@example.org", "newsletter"); !s {
			t.Error("the erased member's own address is not suppressed")
		}

		// The next campaign reaches both.
		staffID, staff := h.Member("editor@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": "Still here", "body": "Hello."}, staff)
		if c.Status != 201 {
			t.Fatalf("create = %d %s", c.Status, c.Body)
		}
		id := c.JSON()["id"].(string)
		if r := h.Do("POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff); r.Status != 202 {
			t.Fatalf("send = %d %s", r.Status, r.Body)
		}
		waitSent(t, h, staff, id)
		for _, v := range victims {
			lastMail(t, h, v, "Still here")
		}
	})
}

// A marketing staff member's campaigns are the company's: when the member is erased
// they stay, without their author, and the residue scan finds nothing of the member.
func TestStaffErasureKeepsCampaigns(t *testing.T) {
	apptest.EachDatabase(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		h := apptest.Start(t, dbURL)
		staffID, staff := h.Member("marketer@example.org", pw, nil)
		if err := h.GrantStaff(ctx, staffID, "marketing"); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, subj := range []string{"Spring news", "Summer news"} {
			c := h.Do("POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subj, "body": "Hello."}, staff)
			if c.Status != 201 {
				t.Fatalf("create = %d %s", c.Status, c.Body)
			}
			ids = append(ids, c.JSON()["id"].(string))
		}

		files := unzip(t, h.Do("GET", "/api/v1/me/export", nil, staff).Body)
		for _, subj := range []string{"Spring news", "Summer news"} {
			if !strings.Contains(files["newsletter/campaigns.csv"], subj) {
				t.Errorf("the staff member's export lacks the campaign %q they wrote", subj)
			}
		}

		deleteMe(t, h, staff)

		for _, id := range ids {
			c, err := h.App.Newsletter().Campaign(ctx, id)
			if err != nil {
				t.Fatalf("campaign %s after its author's erasure: %v", id, err)
			}
			if c.CreatedBy != "" {
				t.Errorf("campaign %s: created_by = %q, want it blank", id, c.CreatedBy)
			}
		}
		args := []string{"residue", staffID, "--log-level", "error"}
		if dbURL != "" {
			args = append(args, "--database", dbURL)
		}
		env := func(k string) string {
			switch k {
			case "STEWARD_DATA":
				return h.Data
			case "STEWARD_MASTER_KEY_FILE":
				return h.App.Config().MasterKeyFile
			case "STEWARD_LEDGER_KEY_FILE":
				return h.App.Config().LedgerKeyFile
			}
			return ""
		}
		var out bytes.Buffer
		code := cli.Run(ctx, args, env, &out, &out)
		if dbURL != "" {
			// PostgreSQL keeps dead index entries and rows until their pages are reused:
			// the scan of its raw files still finds the erased member's random id there
			// (a known limit), but nothing else of them.
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "found:") && (!strings.HasSuffix(line, "of the subject's id") ||
					!(strings.Contains(line, "index file") || strings.Contains(line, "table file") || strings.Contains(line, "WAL"))) {
					t.Errorf("residue of the erased staff member beyond their random id in dead rows: %s", line)
				}
			}
			return
		}
		if code != 0 || !strings.Contains(out.String(), "no residue") {
			t.Errorf("residue of the erased staff member: exit %d, %s", code, out.String())
		}
	})
}

// Every address a member proved is theirs until erasure: after a confirmed change of
// address, the erasure takes the mail to the former address out of the outbox folder
// too, and keeps both addresses off the lists.
func TestErasureCoversFormerAddresses(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		former, current := "former.address@example.org", "current.address@example.org"
		id, token := h.Member(former, pw, nil)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, token); r.Status != 200 {
			t.Fatalf("opt in = %d %s", r.Status, r.Body)
		}
		changeEmail(t, h, token, current)
		lastMail(t, h, former, "A new email address was given") // the notice to the former address
		var proven int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_addresses WHERE account_id = $1`, id).Scan(&proven); err != nil || proven != 2 {
			t.Fatalf("proven addresses = %d (%v), want 2", proven, err)
		}

		deleteMe(t, h, token)

		for _, addr := range []string{former, current} {
			for _, m := range h.Mails(addr) {
				t.Errorf("mail to %s left in the outbox folder: %s", addr, m.File)
			}
			for _, p := range []string{"newsletter", "own_offers"} {
				if s, err := h.App.Newsletter().Suppressed(ctx, addr, p); err != nil || !s {
					t.Errorf("%s: suppressed for %s = %v (%v), want true", addr, p, s, err)
				}
			}
		}
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM account_addresses WHERE account_id = $1`, id).Scan(&proven); err != nil || proven != 0 {
			t.Errorf("proven addresses after erasure = %d (%v)", proven, err)
		}
	})
}

// An address is one account's at a time: once another member proved a member's former
// address, erasing the first member leaves it, the other member's subscription and
// their mail alone.
func TestErasureLeavesAddressProvenSince(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		shared, moved := "shared.address@example.org", "moved.address@example.org"
		_, first := h.Member(shared, pw, nil)
		changeEmail(t, h, first, moved)
		lastMail(t, h, shared, "A new email address was given")
		// Another member registers with the address the first one left, and proves it.
		before := len(h.Mails(shared))
		if r := h.Register(map[string]any{"email": shared, "password": pw, "name": "Second Owner", "birthdate": "1990-05-05", "country": "DE"}); r.Status != 201 {
			t.Fatalf("register = %d %s", r.Status, r.Body)
		}
		mails := h.WaitMail(shared, before+1)
		_, tok := mails[len(mails)-1].Link()
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": tok}, ""); v.Status != 200 {
			t.Fatalf("verify = %d %s", v.Status, v.Body)
		}
		l := h.Do("POST", "/api/v1/sessions", map[string]string{"email": shared, "password": pw}, "")
		if l.Status != 201 {
			t.Fatalf("login = %d %s", l.Status, l.Body)
		}
		second := l.JSON()["token"].(string)
		if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, second); r.Status != 200 {
			t.Fatalf("opt in = %d %s", r.Status, r.Body)
		}
		waitOutboxEmpty(t, h)
		kept := h.Mails(shared)

		deleteMe(t, h, first)

		if s, _ := h.App.Newsletter().Suppressed(ctx, moved, "newsletter"); !s {
			t.Error("the erased member's current address is not suppressed")
		}
		if s, _ := h.App.Newsletter().Suppressed(ctx, shared, "newsletter"); s {
			t.Error("the address another member proved since is suppressed")
		}
		if !audience(t, h, "newsletter")[shared] {
			t.Error("the other member left the newsletter audience")
		}
		for _, m := range kept {
			if _, err := os.Stat(m.File); err != nil {
				t.Errorf("mail to the address proven since was removed: %v", err)
			}
		}
	})
}

// recordingHolder keeps the subjects it is asked to erase.
type recordingHolder struct{ got *[]datamap.Subject }

func (recordingHolder) Declaration() datamap.Declaration {
	return datamap.Declaration{Name: "recording"}
}
func (recordingHolder) Export(context.Context, store.Querier, datamap.Subject) ([]datamap.Section, error) {
	return nil, nil
}
func (r recordingHolder) Erase(_ context.Context, _ *store.Tx, s datamap.Subject) error {
	*r.got = append(*r.got, s)
	return nil
}

// An erasure request keeps its subject's proven addresses and not the pending one, and
// a request stored before (every address joined by commas) is read with the first
// address proven and the rest only pending. Done, a request forgets them all.
func TestErasureRequestKeepsProvenAddresses(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		var got []datamap.Subject
		reg := datamap.NewRegistry()
		reg.Register(rights.Holder{})
		reg.Register(recordingHolder{&got})
		rs := rights.New(h.App.DB(), reg, h.App.Accounts(), nil, h.App.Jobs(), testLedger(h), h.Clock.Now,
			slog.New(slog.NewTextHandler(io.Discard, nil)))

		if _, err := h.App.DB().ExecContext(ctx, `INSERT INTO erasure_requests (id, subject_id, subject_email, state, source, created_at)
			VALUES ('0123456789abcdef0123456789abcdef', 'old-subject', 'member@example.org,typed@example.org', 'pending', 'member', $1)`, h.Clock.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if err := rs.Run(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
			t.Fatal(err)
		}
		subj := datamap.Subject{ID: "new-subject", Email: "member@example.org", Proven: []string{strings.Repeat("a1", 32), strings.Repeat("b2", 32)}, Pending: "typed@example.org"}
		if err := rs.EraseSubject(ctx, subj, "test"); err != nil {
			t.Fatal(err)
		}
		want := []datamap.Subject{
			{ID: "old-subject", Email: "member@example.org", Pending: "typed@example.org"},
			// A request keeps no address: the current one becomes its blind index.
			{ID: "new-subject", Proven: []string{testLedger(h).Index.Address("member@example.org"), strings.Repeat("a1", 32), strings.Repeat("b2", 32)}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("subjects erased = %+v, want %+v", got, want)
		}
		var left int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM erasure_requests WHERE subject_id IS NOT NULL
			OR subject_email IS NOT NULL OR subject_proven IS NOT NULL`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d done request(s) still name their subject (%v)", left, err)
		}
	})
}
