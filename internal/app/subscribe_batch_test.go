package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/store"
)

// subAnswer is the answer to one POST /api/v1/newsletter of a burst.
type subAnswer struct {
	status int
	body   string
	err    error
}

// fireSubscriptions posts every body to /api/v1/newsletter at once: each request runs in
// a goroutine of its own, and all wait at a barrier until every one is ready, so that
// they overlap. It returns at once; wait returns the answers, in the order of bodies.
// The goroutines do not use h.Do, which may call Fatal; and each request has a
// connection of its own, closed after it: a spare connection dialled during the burst
// and left idle, unused, would hold up the server's graceful shutdown for seconds.
func fireSubscriptions(h *apptest.Harness, bodies []map[string]string) (wait func() []subAnswer) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	out := make([]subAnswer, len(bodies))
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i, b := range bodies {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			js, _ := json.Marshal(b)
			req, err := http.NewRequest("POST", h.URL+"/api/v1/newsletter", bytes.NewReader(js))
			ready.Done()
			if err != nil {
				out[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			<-start
			resp, err := client.Do(req)
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			out[i] = subAnswer{status: resp.StatusCode, body: string(body)}
		}()
	}
	ready.Wait()
	close(start)
	return func() []subAnswer {
		done.Wait()
		client.CloseIdleConnections()
		return out
	}
}

// confirmTokenID is how a confirmation token is stored: the hex SHA-256 of the token.
func confirmTokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// subscriberTokens returns the stored token ids of the subscriber.
func subscriberTokens(t *testing.T, h *apptest.Harness, subscriberID string) []string {
	t.Helper()
	rows, err := h.App.DB().QueryContext(context.Background(), `SELECT id FROM subscriber_tokens WHERE subscriber_id = $1`, subscriberID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// countRows runs a count(*) query.
// waitBacklog waits until the subscriptions' group commit has leading batches being
// stored and queued subscriptions waiting.
func waitBacklog(t *testing.T, h *apptest.Harness, leading, queued int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, q := h.App.Newsletter().SubscribeBacklog()
		if l == leading && q == queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions: %d leading, %d queued; want %d and %d", l, q, leading, queued)
		}
		time.Sleep(2 * time.Millisecond) // polling the state, not ordering events
	}
}

func countRows(t *testing.T, h *apptest.Harness, q string, args ...any) int {
	t.Helper()
	var n int
	if err := h.App.DB().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitOutboxEmpty waits until every queued mail has been delivered, so that the
// delivered mails are all there will be.
func waitOutboxEmpty(t *testing.T, h *apptest.Harness) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for countRows(t, h, `SELECT count(*) FROM mail_outbox`) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mail_outbox still holds %d mails after 15s", countRows(t, h, `SELECT count(*) FROM mail_outbox`))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSubscribeConcurrentBatches: many overlapping subscriptions, each address asked
// three times, are answered, stored and mailed as if they had come one by one: one
// pending subscriber per address with the names of one of its requests, one mail per
// request, and one working link per address, the one of the request whose names are
// stored.
func TestSubscribeConcurrentBatches(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		const addresses = 16
		names := []string{"Ada", "Bea", "Cleo"}
		emails := make([]string, addresses)
		var bodies []map[string]string
		for i := range emails {
			emails[i] = fmt.Sprintf("batch%02d@example.org", i)
			for _, n := range names {
				bodies = append(bodies, map[string]string{"first_name": n, "last_name": "Batch", "email": emails[i]})
			}
		}
		rand.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })

		for i, a := range fireSubscriptions(h, bodies)() {
			if a.err != nil || a.status != http.StatusAccepted {
				t.Errorf("subscribe %s (%s) = %d %s %v", bodies[i]["email"], bodies[i]["first_name"], a.status, a.body, a.err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		in := make([]any, len(emails))
		for i, e := range emails {
			in[i] = h.App.Newsletter().AddressHash(e)
		}
		if n := countRows(t, h, `SELECT count(*) FROM subscribers WHERE email_hash IN (`+store.Placeholders(1, len(in))+`)`, in...); n != addresses {
			t.Errorf("%d subscribers for the %d addresses, want %d", n, addresses, addresses)
		}
		if n := countRows(t, h, `SELECT count(*) FROM subscribers`); n != addresses {
			t.Errorf("%d subscribers in all, want %d", n, addresses)
		}

		// Every mail is delivered before counting them.
		for _, e := range emails {
			h.WaitMail(e, len(names))
		}
		waitOutboxEmpty(t, h)

		confirmed := 0
		for _, e := range emails {
			row, found := subscriberOf(t, h, e)
			if !found {
				t.Errorf("subscriber %s: none", e)
				continue
			}
			id, status, first := row.id, row.status, row.first
			if status != "pending" {
				t.Errorf("%s: status %q, want pending", e, status)
			}
			if !slices.Contains(names, first) {
				t.Errorf("%s: first_name %q, not one it was sent with %v", e, first, names)
			}
			stored := subscriberTokens(t, h, id)
			if len(stored) != 1 {
				t.Errorf("%s: %d rows in subscriber_tokens, want 1 (the newest link)", e, len(stored))
			}

			mails := h.Mails(e)
			if len(mails) != len(names) {
				t.Errorf("%s: %d confirmation mails, want %d (one per request)", e, len(mails), len(names))
			}
			// The links: each distinct; the one whose token is stored is the mail of
			// the request whose names are stored. It is tried last, so that the
			// others are refused because they are stale, not because it was used.
			var tokens []string
			valid := ""
			greetings := map[string]bool{}
			for _, m := range mails {
				_, tok := m.Link()
				if tok == "" {
					t.Errorf("%s: a mail without a confirmation link: %s", e, m.Raw)
					continue
				}
				if slices.Contains(tokens, tok) {
					t.Errorf("%s: two mails with the same link", e)
				}
				for _, n := range names {
					if strings.Contains(m.Raw, "Hello "+n+",") {
						greetings[n] = true
					}
				}
				if slices.Contains(stored, confirmTokenID(tok)) {
					valid = tok
					if !strings.Contains(m.Raw, "Hello "+first+",") {
						t.Errorf("%s: the working link is in a mail not greeting %q (the stored first_name)", e, first)
					}
					continue
				}
				tokens = append(tokens, tok)
			}
			if len(greetings) != len(names) {
				t.Errorf("%s: the mails greet %v, want each of %v once", e, greetings, names)
			}
			if valid == "" {
				t.Errorf("%s: no mail holds the stored token", e)
			} else {
				tokens = append(tokens, valid)
			}
			ok := 0
			for i, tok := range tokens {
				r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, "")
				switch {
				case r.Status == http.StatusOK:
					ok++
					if tok != valid {
						t.Errorf("%s: a superseded link (%d of %d) confirmed", e, i+1, len(tokens))
					}
				case r.Status != http.StatusBadRequest:
					t.Errorf("%s: link %d = %d %s, want 200 or 400", e, i+1, r.Status, r.Body)
				case tok == valid:
					t.Errorf("%s: the stored link = %d %s", e, r.Status, r.Body)
				}
			}
			if ok != 1 {
				t.Errorf("%s: %d of its %d links confirmed, want exactly 1", e, ok, len(tokens))
			}
			if valid != "" {
				if r := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": valid}, ""); r.Status != http.StatusBadRequest {
					t.Errorf("%s: the used link again = %d, want 400", e, r.Status)
				}
			}
			if err := h.App.DB().QueryRowContext(ctx, `SELECT status FROM subscribers WHERE id = $1`, id).Scan(&status); err != nil || status != "confirmed" {
				t.Errorf("%s: after confirming, status %q %v", e, status, err)
			} else {
				confirmed++
			}
			if n := len(subscriberTokens(t, h, id)); n != 0 {
				t.Errorf("%s: %d tokens left after confirming", e, n)
			}
		}
		if confirmed != addresses {
			t.Errorf("%d of %d addresses confirmed", confirmed, addresses)
		}
	})
}

// TestSubscribeBatchIsolatesFailure: a subscription the database refuses fails alone;
// the others stored in the same batch transaction are retried and stored, and the
// refused one leaves nothing behind: no subscriber, no token, no mail.
func TestSubscribeBatchIsolatesFailure(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		const refused = "refused@example.org"
		pg := h.App.DB().Dialect == store.Postgres
		// Created through the application's own pool, so that on PostgreSQL the objects
		// land in the test's schema (its search_path).
		if pg {
			// Every attempt to insert the refused address counts in a sequence, which a
			// rollback does not undo: an address retried after a failed batch is
			// attempted twice.
			for _, q := range []string{
				`CREATE SEQUENCE refused_attempts`,
				`CREATE FUNCTION refuse_subscriber() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF NEW.email_hash = '` + h.App.Newsletter().AddressHash(refused) + `' THEN
						PERFORM nextval('refused_attempts');
						RAISE EXCEPTION 'refused';
					END IF;
					RETURN NEW;
				END $$`,
				`CREATE TRIGGER refuse_subscriber BEFORE INSERT ON subscribers FOR EACH ROW EXECUTE FUNCTION refuse_subscriber()`,
			} {
				if _, err := h.App.DB().ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		} else {
			if _, err := h.App.DB().ExecContext(ctx, `CREATE TRIGGER refuse_subscriber BEFORE INSERT ON subscribers
				WHEN NEW.email_hash = '`+h.App.Newsletter().AddressHash(refused)+`' BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
				t.Fatal(err)
			}
		}
		attempts := func() int {
			var last int
			var called bool
			if err := h.App.DB().QueryRowContext(ctx, `SELECT last_value, is_called FROM refused_attempts`).Scan(&last, &called); err != nil {
				t.Fatal(err)
			}
			if !called {
				return 0
			}
			return last
		}

		const good = 30
		var goods []string
		round := func(r int, plug bool) {
			t.Helper()
			var bodies []map[string]string
			for i := range good {
				e := fmt.Sprintf("good-r%d-%02d@example.org", r, i)
				goods = append(goods, e)
				bodies = append(bodies, map[string]string{"first_name": "Good", "last_name": "Reader", "email": e})
			}
			bodies = append(bodies, map[string]string{"first_name": "Refused", "last_name": "Reader", "email": refused})
			rand.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })

			var answers []subAnswer
			if plug {
				// SQLite has one writer connection and one batch at a time. Hold the
				// writer; a first subscription takes the lead and waits for it; the
				// burst queues behind it; when the writer is free, the plug stores
				// itself alone and the next leader takes the whole queue, the refused
				// subscription with it, in one transaction.
				hold, err := h.App.DB().Writer().BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				e := fmt.Sprintf("good-r%d-plug@example.org", r)
				goods = append(goods, e)
				plugWait := fireSubscriptions(h, []map[string]string{{"first_name": "Plug", "last_name": "Reader", "email": e}})
				waitBacklog(t, h, 1, 0)
				wait := fireSubscriptions(h, bodies)
				waitBacklog(t, h, 1, len(bodies))
				if err := hold.Rollback(); err != nil {
					t.Fatal(err)
				}
				if a := plugWait()[0]; a.err != nil || a.status != http.StatusAccepted {
					t.Errorf("round %d: subscribe %s = %d %s %v", r, e, a.status, a.body, a.err)
				}
				answers = wait()
			} else {
				answers = fireSubscriptions(h, bodies)()
			}
			for i, a := range answers {
				e := bodies[i]["email"]
				switch {
				case a.err != nil:
					t.Errorf("round %d: subscribe %s: %v", r, e, a.err)
				case e == refused && (a.status < 500 || a.status > 599):
					t.Errorf("round %d: the refused subscription = %d %s, want a 5xx", r, a.status, a.body)
				case e != refused && a.status != http.StatusAccepted:
					t.Errorf("round %d: subscribe %s = %d %s, want 202", r, e, a.status, a.body)
				}
			}
		}

		rounds := 0
		if pg {
			// PostgreSQL runs a few batches at once, so which shares a batch depends on
			// timing: go on until the refused subscription has been retried alone
			// after a failed batch, i.e. attempted more often than it was sent.
			for rounds < 3 || attempts() <= rounds {
				if rounds == 10 {
					t.Fatalf("in %d rounds the refused subscription never shared a batch (%d attempts)", rounds, attempts())
				}
				round(rounds, false)
				rounds++
			}
			t.Logf("%d rounds; the refused subscription was attempted %d times", rounds, attempts())
		} else {
			for ; rounds < 3; rounds++ {
				round(rounds, rounds == 0)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		for _, e := range goods {
			row, ok := subscriberOf(t, h, e)
			if !ok {
				t.Errorf("subscriber %s: none", e)
				continue
			}
			id, status := row.id, row.status
			if status != "pending" {
				t.Errorf("%s: status %q, want pending", e, status)
			}
			if n := len(subscriberTokens(t, h, id)); n != 1 {
				t.Errorf("%s: %d tokens, want 1", e, n)
			}
		}
		if n := countRows(t, h, `SELECT count(*) FROM subscribers`); n != len(goods) {
			t.Errorf("%d subscribers, want %d (the good ones)", n, len(goods))
		}
		if n := countRows(t, h, `SELECT count(*) FROM subscribers WHERE email_hash = $1`, h.App.Newsletter().AddressHash(refused)); n != 0 {
			t.Errorf("the refused address has %d subscriber rows", n)
		}
		if n := countRows(t, h, `SELECT count(*) FROM subscriber_tokens`); n != len(goods) {
			t.Errorf("%d tokens, want %d (one per good address, none for the refused one)", n, len(goods))
		}
		// Queued mail is sealed, known by its subject: none may be about anyone but a
		// stored subscriber.
		if n := countRows(t, h, `SELECT count(*) FROM mail_outbox WHERE subject_id NOT IN (SELECT subject_id FROM subscribers)`); n != 0 {
			t.Errorf("%d mails queued in mail_outbox about no stored subscriber (the refused address's?)", n)
		}

		for _, e := range goods {
			h.WaitMail(e, 1)
		}
		waitOutboxEmpty(t, h)
		for _, e := range goods {
			if n := len(h.Mails(e)); n != 1 {
				t.Errorf("%s: %d confirmation mails, want 1", e, n)
			}
		}
		if m := h.Mails(refused); len(m) != 0 {
			t.Errorf("%d mails delivered to the refused address", len(m))
		}
	})
}
