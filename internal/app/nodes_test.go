package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"steward/internal/app/apptest"
	"steward/internal/datamap"
	"steward/internal/store/storetest"
)

// node is a Steward node of the test, reached over HTTP.
type node struct {
	name string
	url  string
}

// call sends an API request to the node from ip (behind the trusted proxy).
func (n node) call(t *testing.T, method, path string, body any, token, ip string) apptest.Response {
	t.Helper()
	return apptest.Call(t, &http.Client{Timeout: 30 * time.Second}, n.url, method, path, body, token, map[string]string{"X-Forwarded-For": ip})
}

// mailpitCount is how many messages to addr with the subject the SMTP server holds.
func mailpitCount(t *testing.T, api, addr, subj string) int {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape("to:"+addr+` subject:"`+subj+`"`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		MessagesCount int `json:"messages_count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return res.MessagesCount
}

// Build item 4 of issue 11: two Steward nodes, one a process of the real binary and
// one in this test's process, on one PostgreSQL database and one S3 bucket, sharing
// the deployment's keys, serve the same members: a session made on one works on the
// other; a login limit holds across both (N tries in all, not N per node); a campaign
// sent while both run reaches each recipient once; and an erasure that the first node
// was running when it was killed (SIGKILL) is finished by the second. PostgreSQL only:
// SQLite is one node by nature (one server per database file, held by its lock).
func TestSeveralNodes(t *testing.T) {
	pg := storetest.PostgresURL(t)
	s3 := s3Flags(t)
	smtpAddr, mailpit := smtpServer(t)
	if pg == "" || s3 == nil {
		t.Skip("PostgreSQL or S3 not configured (SQLite is one node by nature)")
	}
	bin := filepath.Join(t.TempDir(), "steward")
	if out, err := exec.Command("go", "build", "-o", bin, "steward/cmd/steward").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	shared := t.TempDir()
	keyFile := apptest.KeyFile(t, pg)
	// The flags of both nodes: one database (each node's connections named, so the test
	// sees which node waits on a lock), one bucket, one mail server, the same keys.
	flags := func(name string) (string, []string) {
		u, err := url.Parse(pg)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), append([]string{"--rate-limits=true", "--trust-proxy=true",
			"--master-key-file", keyFile, "--ledger-key-file", strings.TrimSuffix(keyFile, filepath.Ext(keyFile)) + ".ledger",
			"--receipt-key-file", filepath.Join(shared, "receipt.key"),
			"--mail", "smtp", "--smtp-addr", smtpAddr, "--smtp-tls", "none"}, s3...)
	}

	// Node 1: the binary, in a process of its own, so that it can be killed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db1, flags1 := flags("steward-node1")
	cmd := exec.Command(bin, append([]string{"serve", "--data", t.TempDir(), "--addr", addr, "--base-url", "http://" + addr,
		"--argon2-memory", "1024", "--log-level", "error", "--database", db1}, flags1...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	n1 := node{name: "node 1", url: "http://" + addr}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(n1.url + "/api/v1/members/none")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 1 did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Node 2: in this process (the test reads its services and moves its clock).
	db2, flags2 := flags("steward-node2")
	h2 := apptest.Start(t, db2, flags2...)
	n2 := node{name: "node 2", url: h2.URL}
	nodes := []node{n1, n2}
	ctx := context.Background()
	stamp := time.Now().UnixNano()

	// A member registers on node 1, confirms the address on node 2, logs in on node 1.
	member := func(i int, email string) (id, token string) {
		t.Helper()
		ip := fmt.Sprintf("198.51.100.%d", i)
		r := nodes[i%2].call(t, "POST", "/api/v1/accounts", map[string]any{"email": email, "password": pw, "name": "Node Member",
			"birthdate": "1980-01-01", "country": "DE"}, "", ip)
		if r.Status != http.StatusCreated {
			t.Fatalf("register %s on %s = %d %s", email, nodes[i%2].name, r.Status, r.Body)
		}
		_, text := mailpitMessage(t, mailpit, email, "Confirm your email")
		_, tok := apptest.Mail{Raw: text}.Link()
		if v := nodes[(i+1)%2].call(t, "POST", "/api/v1/verifications", map[string]string{"token": tok}, "", ip); v.Status != http.StatusOK {
			t.Fatalf("verify %s on %s = %d %s", email, nodes[(i+1)%2].name, v.Status, v.Body)
		}
		l := nodes[i%2].call(t, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": pw}, "", ip)
		if l.Status != http.StatusCreated {
			t.Fatalf("login %s = %d %s", email, l.Status, l.Body)
		}
		return r.JSON()["id"].(string), l.JSON()["token"].(string)
	}

	t.Run("session made on one node works on the other", func(t *testing.T) {
		email := fmt.Sprintf("node-session-%d@example.org", stamp)
		_, token := member(2, email) // logs in on node 1
		for _, n := range nodes {
			if me := n.call(t, "GET", "/api/v1/me", nil, token, "198.51.100.2"); me.Status != http.StatusOK || me.JSON()["email"] != email {
				t.Errorf("the session on %s = %d %s", n.name, me.Status, me.Body)
			}
		}
		if r := n2.call(t, "DELETE", "/api/v1/sessions/current", nil, token, "198.51.100.2"); r.Status != http.StatusNoContent {
			t.Fatalf("logout on node 2 = %d %s", r.Status, r.Body)
		}
		if me := n1.call(t, "GET", "/api/v1/me", nil, token, "198.51.100.2"); me.Status != http.StatusUnauthorized {
			t.Errorf("the session ended on node 2, on node 1 = %d, want 401", me.Status)
		}
	})

	t.Run("a login limit holds across both nodes", func(t *testing.T) {
		email := fmt.Sprintf("node-limited-%d@example.org", stamp)
		member(4, email)
		var statuses []int
		for i := range 8 {
			r := nodes[i%2].call(t, "POST", "/api/v1/sessions", map[string]string{"email": email, "password": "wrong-guess-000"}, "", "203.0.113.50")
			statuses = append(statuses, r.Status)
		}
		// Five tries for the account and IP in all, not five on each node.
		if want := "[401 401 401 401 401 429 429 429]"; fmt.Sprint(statuses) != want {
			t.Errorf("8 wrong passwords alternating between the nodes = %v, want %s", statuses, want)
		}
	})

	t.Run("a campaign sent while both run reaches each recipient once", func(t *testing.T) {
		var readers []string
		for i := range 6 {
			reader := fmt.Sprintf("node-reader-%d-%d@example.org", i, stamp)
			ip := fmt.Sprintf("192.0.2.%d", 10+i)
			if r := nodes[i%2].call(t, "POST", "/api/v1/newsletter", map[string]string{"first_name": "Rea", "last_name": "Der", "email": reader}, "", ip); r.Status != http.StatusAccepted {
				t.Fatalf("subscribe on %s = %d %s", nodes[i%2].name, r.Status, r.Body)
			}
			_, text := mailpitMessage(t, mailpit, reader, "Confirm your subscription")
			_, tok := apptest.Mail{Raw: text}.Link()
			if r := nodes[(i+1)%2].call(t, "POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, "", ip); r.Status != http.StatusOK {
				t.Fatalf("confirm on %s = %d %s", nodes[(i+1)%2].name, r.Status, r.Body)
			}
			readers = append(readers, reader)
		}
		editor := fmt.Sprintf("node-editor-%d@example.org", stamp)
		editorID, staff := member(6, editor)
		if err := h2.GrantStaff(ctx, editorID, "marketing"); err != nil {
			t.Fatal(err)
		}
		subject := "Two nodes " + strconv.FormatInt(stamp, 36) // no run of digits that passes for a card number
		c := n1.call(t, "POST", "/api/v1/staff/campaigns", map[string]string{"purpose": "newsletter", "subject": subject, "body": "Hi."}, staff, "198.51.100.6")
		if c.Status != http.StatusCreated {
			t.Fatalf("campaign on node 1 = %d %s", c.Status, c.Body)
		}
		id := c.JSON()["id"].(string)
		if r := n2.call(t, "POST", "/api/v1/staff/campaigns/"+id+"/send", nil, staff, "198.51.100.6"); r.Status/100 != 2 {
			t.Fatalf("send on node 2 = %d %s", r.Status, r.Body)
		}
		waitSent(t, h2, staff, id)
		for _, reader := range readers {
			for deadline := time.Now().Add(15 * time.Second); mailpitCount(t, mailpit, reader, subject) == 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
		}
		// Every node's outbox is the one table: once it is empty, nothing more is on its way.
		for deadline := time.Now().Add(15 * time.Second); ; {
			var queued int
			if err := h2.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox`).Scan(&queued); err != nil {
				t.Fatal(err)
			}
			if queued == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d mails still queued after 15 s", queued)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, reader := range readers {
			if n := mailpitCount(t, mailpit, reader, subject); n != 1 {
				t.Errorf("%s got the campaign %d times, want once", reader, n)
			}
		}
	})

	t.Run("an erasure node 1 was running when it died is finished by node 2", func(t *testing.T) {
		admin, err := sql.Open("pgx", pg)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		// Hold the consent holder's tables: an erasure runs its steps up to consent, and
		// waits there, on whichever node runs it. Until node 1 is the one (its queue is
		// woken by its own request, so it nearly always is), let the run finish and try
		// again with another member.
		var requestID string
		var terms []datamap.Term
		for try := range 5 {
			email := fmt.Sprintf("node-erased-%d-%d@example.org", try, stamp)
			id, token := member(8+2*try, email)
			if terms, err = h2.App.Accounts().Identifiers(ctx, id); err != nil {
				t.Fatal(err)
			}
			lock, err := admin.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lock.ExecContext(ctx, `LOCK TABLE consent_conflicts IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			r := n1.call(t, "DELETE", "/api/v1/me", map[string]string{"password": pw}, token, fmt.Sprintf("198.51.100.%d", 8+2*try))
			if r.Status != http.StatusAccepted {
				lock.Rollback()
				t.Fatalf("erasure on node 1 = %d %s", r.Status, r.Body)
			}
			requestID = r.JSON()["request_id"].(string)
			var waiter string
			for deadline := time.Now().Add(15 * time.Second); waiter == "" && time.Now().Before(deadline); {
				err := admin.QueryRowContext(ctx, `SELECT application_name FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND application_name LIKE 'steward-node%' LIMIT 1`).Scan(&waiter)
				if err != nil && err != sql.ErrNoRows {
					t.Fatal(err)
				}
				if waiter == "" {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if waiter == "steward-node1" {
				// Node 1 dies mid-erasure: the vault's step and others are done, consent's
				// is not; its job stays "running" in the queue, on a node that is gone.
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				_ = cmd.Wait()
				killed = true
				// The killed node's connection waits on the lock until it is let go;
				// then its transaction rolls back, as its client is gone.
				if err := lock.Rollback(); err != nil {
					t.Fatal(err)
				}
				break
			}
			if err := lock.Rollback(); err != nil {
				t.Fatal(err)
			}
			if waiter == "" {
				t.Fatal("no node waited on the held table: the erasure did not run")
			}
			h2.WaitErasure(requestID)
			t.Logf("try %d: node 2 ran the erasure; again", try)
		}
		if !killed {
			t.Fatal("node 1 never ran the erasure in 5 tries")
		}
		req, err := h2.App.Rights().Request(ctx, requestID)
		if err != nil {
			t.Fatal(err)
		}
		if req.State == "done" || !strings.Contains(strings.Join(req.StepsDone, ","), "vault") {
			t.Fatalf("at node 1's death the request is %s after %v: want it cut short after the vault's step", req.State, req.StepsDone)
		}
		// Node 2 finishes it: the hourly purge runs every request left unfinished for an
		// hour (its own job's run died with node 1), as River's rescue of the job would
		// after RescueStuckJobsAfter; here node 2's clock is moved on and the purge run.
		h2.Clock.Advance(time.Hour + time.Minute)
		if err := h2.App.Rights().ResumeStale(ctx); err != nil {
			t.Fatal(err)
		}
		h2.WaitErasure(requestID)
		found, err := datamap.Scan(ctx, h2.App.DB(), terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("residue after node 2 finished the erasure: %s", f)
		}
	})
}
