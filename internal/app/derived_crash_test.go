package app_test

import (
	"bufio"
	"context"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"modernc.org/sqlite"

	"steward/internal/app/apptest"
	"steward/internal/consent"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

// The child of TestDerivedStateSurvivesSIGKILL learns what to do from these.
const (
	derivedScenarioEnv = "STEWARD_TEST_DERIVED_SCENARIO"
	derivedURLEnv      = "STEWARD_TEST_DERIVED_URL"
	derivedLockEnv     = "STEWARD_TEST_DERIVED_LOCK"
)

// derivedScenario is a change whose derived writes a crash interrupts.
type derivedScenario struct {
	// stopAt is where the child stops: the trigger event and table of the first
	// derived write the change makes, e.g. "BEFORE INSERT ON subscribers".
	stopAt string
	// setup runs in the child before the stop is armed; it returns what change needs.
	setup func(t *testing.T, h *apptest.Harness) string
	// change makes the change; it never returns, the child being killed first.
	change func(t *testing.T, h *apptest.Harness, arg string)
}

var derivedScenarios = map[string]derivedScenario{
	// A member opts in to the newsletter: the ledger's event, then the member's place
	// on the list (the grant hook), then the audience (the change hook).
	"grant": {
		stopAt: "BEFORE INSERT ON subscribers",
		setup: func(t *testing.T, h *apptest.Harness) string {
			_, token := h.Member("grant@example.org", pw, nil)
			return token
		},
		change: func(t *testing.T, h *apptest.Harness, token string) {
			h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true}}`, token)
		},
	},
	// A member on the list for two purposes withdraws one: the audience is
	// recomputed, deleting the member's rows and inserting those the rule allows. Cut
	// between the two, the member would be missing from the newsletter's audience
	// though still allowed.
	"refresh": {
		stopAt: "BEFORE INSERT ON mailable",
		setup: func(t *testing.T, h *apptest.Harness) string {
			_, token := h.Member("refresh@example.org", pw, nil)
			if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":true}}`, token); r.Status != http.StatusOK {
				t.Fatalf("opt in = %d %s", r.Status, r.Body)
			}
			return token
		},
		change: func(t *testing.T, h *apptest.Harness, token string) {
			h.Do("PUT", "/api/v1/me/consents", `{"choices":{"own_offers":false}}`, token)
		},
	},
	// A subscriber registers with the same address and verifies it: the subscription
	// becomes the account's (the verified hook), and the audience follows.
	"verify": {
		stopAt: "BEFORE DELETE ON mailable",
		setup: func(t *testing.T, h *apptest.Harness) string {
			subscribe(t, h, "verify@example.org", true)
			r := h.Register(map[string]any{"email": "verify@example.org", "password": pw, "name": "Vera Member",
				"birthdate": "1985-03-02", "country": "DE"})
			if r.Status != http.StatusCreated {
				t.Fatalf("register = %d %s", r.Status, r.Body)
			}
			return h.WaitLink("verify@example.org", "/verify?token=")
		},
		change: func(t *testing.T, h *apptest.Harness, token string) {
			h.Do("POST", "/api/v1/verifications", map[string]string{"token": token}, "")
		},
	},
}

// TestDerivedStateSurvivesSIGKILL runs a consent change or an address verification in
// a child process (this test binary again), stops the child at the first write of
// what the change derives (its place on the mailing list, the kept audience, the
// subscription joined to the account), kills it there (SIGKILL), and then finds the
// derived state equal to the rule recomputed from what was kept: the change and what
// follows from it commit together or not at all.
func TestDerivedStateSurvivesSIGKILL(t *testing.T) {
	names := make([]string, 0, len(derivedScenarios))
	for n := range derivedScenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	for engine := range storetest.Engines(t) {
		for _, name := range names {
			t.Run(string(engine)+"/"+name, func(t *testing.T) {
				url := storetest.Engines(t)[engine] // a fresh database for each
				killDerived(t, url, name)
				checkDerived(t, url)
			})
		}
	}
}

// killDerived runs the scenario in a child and kills it once it has stopped.
func killDerived(t *testing.T, url, scenario string) {
	t.Helper()
	lock := strconv.Itoa(1_000_000 + rand.IntN(1_000_000_000))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDerivedCrashChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), derivedScenarioEnv+"="+scenario, derivedURLEnv+"="+url, derivedLockEnv+"="+lock,
		"TMPDIR="+t.TempDir()) // what the child leaves behind goes with this test
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &out}, lockedWriter{&mu, &out}
	cmd.ExtraFiles = []*os.File{w} // fd 3: the child says "stopped" there
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		said <- strings.TrimSpace(line)
	}()
	select {
	case line := <-said:
		if line != "stopped" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the child ended without stopping at the derived write (%q):\n%s", line, out.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the child did not stop in 2 minutes:\n%s", out.String())
	}
	if strings.HasPrefix(url, "postgres") {
		// The server would finish the statement that waits once the lock is let go:
		// its session ends first, as when a process dies with a statement in flight.
		endWaiters(t, url, lock)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if strings.HasPrefix(url, "postgres") {
		waitNoLock(t, url, lock)
	}
}

// endWaiters ends the sessions that wait for the advisory lock.
func endWaiters(t *testing.T, url, lock string) {
	t.Helper()
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, lock).Scan(&n); err != nil || n == 0 {
		t.Fatalf("ended %d sessions waiting at the stop (%v)", n, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitNoLock waits until no session holds or waits for the advisory lock.
func waitNoLock(t *testing.T, url, lock string) {
	t.Helper()
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1`,
			lock).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed child's sessions still hold or wait for lock %s after 30s", lock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDerivedCrashChild is the child of TestDerivedStateSurvivesSIGKILL; run on its
// own it does nothing.
func TestDerivedCrashChild(t *testing.T) {
	name := os.Getenv(derivedScenarioEnv)
	if name == "" {
		return
	}
	sc, ok := derivedScenarios[name]
	if !ok {
		t.Fatalf("no scenario %q", name)
	}
	url := os.Getenv(derivedURLEnv)
	registerStop()
	h := apptest.Start(t, url)
	arg := sc.setup(t, h)
	reached, _ := armStop(t, h, url, os.Getenv(derivedLockEnv), sc.stopAt)
	go sc.change(t, h, arg)
	<-reached
	fmt.Fprintln(os.NewFile(3, "report"), "stopped")
	select {}
}

// stopped is the stop armed on SQLite, if any: its function closes reached and waits
// for release.
var stopped atomic.Pointer[struct{ reached, release chan struct{} }]

var registerOnce sync.Once

// registerStop makes the SQL function steward_test_stop() that a stop's trigger calls
// on SQLite, for the connections opened after.
func registerStop() {
	registerOnce.Do(func() {
		sqlite.MustRegisterScalarFunction("steward_test_stop", 0, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
			if st := stopped.Swap(nil); st != nil {
				close(st.reached)
				<-st.release
			}
			return nil, nil
		})
	})
}

// armStop stops the first statement of event (e.g. "BEFORE INSERT ON mailable") made
// after it: inside the statement, in its transaction. reached is closed once the
// statement waits there; release lets it go on. On SQLite the trigger calls a function
// of this process (registerStop must have run before the database was opened); on
// PostgreSQL the trigger runs in the server and waits for the advisory lock with key
// lock, which a connection of this process holds until release.
func armStop(t *testing.T, h *apptest.Harness, url, lock, event string) (reached <-chan struct{}, release func()) {
	t.Helper()
	ctx := context.Background()
	rc, rel := make(chan struct{}), make(chan struct{})
	if !strings.HasPrefix(url, "postgres") {
		if _, err := h.App.DB().ExecContext(ctx, `CREATE TRIGGER steward_test_stop `+event+` BEGIN SELECT steward_test_stop(); END`); err != nil {
			t.Fatal(err)
		}
		stopped.Store(&struct{ reached, release chan struct{} }{rc, rel})
		var once sync.Once
		return rc, func() { once.Do(func() { close(rel) }) }
	}
	for _, q := range []string{
		`CREATE FUNCTION steward_test_stop() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN PERFORM pg_advisory_xact_lock(` + lock + `); RETURN COALESCE(NEW, OLD); END $$`,
		`CREATE TRIGGER steward_test_stop ` + event + ` FOR EACH ROW EXECUTE FUNCTION steward_test_stop()`,
	} {
		if _, err := h.App.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	other, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Writer().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lock+`)`); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			var n int
			if err := other.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`,
				lock).Scan(&n); err != nil {
				t.Error(err)
				return
			}
			if n > 0 {
				close(rc)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	return rc, func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+lock+`)`); err != nil {
				t.Error(err)
			}
			conn.Close()
		})
	}
}

// TestSnapshotDuringConsentChange takes the newsletter's audience, as a campaign's
// snapshot does, while a member's consent change stands between the delete and the
// insert of the member's kept audience, and finds the member there: the change and
// what it derives are one transaction, so a snapshot sees both or neither.
func TestSnapshotDuringConsentChange(t *testing.T) {
	registerStop()
	for engine, url := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			h := apptest.Start(t, url)
			id, token := h.Member("snapshot@example.org", pw, nil)
			if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":true}}`, token); r.Status != http.StatusOK {
				t.Fatalf("opt in = %d %s", r.Status, r.Body)
			}
			reached, release := armStop(t, h, url, strconv.Itoa(1_000_000+rand.IntN(1_000_000_000)), "BEFORE INSERT ON mailable")
			defer release()
			done := make(chan apptest.Response, 1)
			go func() { done <- h.Do("PUT", "/api/v1/me/consents", `{"choices":{"own_offers":false}}`, token) }()
			select {
			case <-reached:
			case r := <-done:
				t.Fatalf("the change ended (%d %s) without reaching the audience's insert", r.Status, r.Body)
			}
			snapshot := func() map[string]bool {
				out := map[string]bool{}
				for _, p := range []string{"newsletter", "own_offers"} {
					if err := h.App.Newsletter().Audience(context.Background(), p, func(s string) error {
						out[p+" "+s] = true
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				return out
			}
			during := snapshot()
			if !during["newsletter "+id] || !during["own_offers "+id] {
				t.Errorf("snapshot during the change = %v, want the member in both audiences (the change is not committed)", during)
			}
			release()
			if r := <-done; r.Status != http.StatusOK {
				t.Fatalf("withdraw = %d %s", r.Status, r.Body)
			}
			after := snapshot()
			if !after["newsletter "+id] || after["own_offers "+id] {
				t.Errorf("snapshot after the change = %v, want the member in the newsletter's audience only", after)
			}
		})
	}
}

// checkDerived reopens the database the killed child left and holds what is derived
// against the rule, recomputed from what was kept.
func checkDerived(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := consent.LoadRegister("")
	if err != nil {
		t.Fatal(err)
	}
	c := consent.New(db, reg, "test", nil, nil, consent.Hooks{}, time.Now)

	// The state is the ledger's newest event for each subject and purpose.
	rows := queryPairs(t, db, `SELECT subject_id || ' ' || purpose, decision FROM consent_state`)
	want := queryPairs(t, db, `SELECT e.subject_id || ' ' || e.purpose, e.decision FROM consent_events e
		WHERE e.purpose NOT IN ('restriction', 'objection')
		AND e.id = (SELECT max(id) FROM consent_events x WHERE x.subject_id = e.subject_id AND x.purpose = e.purpose)`)
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("consent state %v, the ledger says %v", rows, want)
	}

	// The kept audience is what the rule allows, purpose by purpose, of the confirmed
	// subscribers whose address is not suppressed.
	got := queryPairs(t, db, `SELECT purpose || ' ' || subject_id, '' FROM mailable`)
	subs := queryPairs(t, db, `SELECT subject_id, email_hash FROM subscribers WHERE status = 'confirmed'`)
	allowed := map[string]string{}
	for subject, hash := range subs {
		for _, p := range reg.Purposes {
			if !p.Marketing || p.Sharing {
				continue
			}
			var suppressed int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM suppressions WHERE hash = $1 AND purpose IN ($2, '*')`, hash, p.Key).
				Scan(&suppressed); err != nil {
				t.Fatal(err)
			}
			v, err := c.Allowed(ctx, subject, p.Key)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed && suppressed == 0 {
				allowed[p.Key+" "+subject] = ""
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(allowed) {
		t.Errorf("kept audience %v, the rule allows %v", got, allowed)
	}

	// A member who opted in to marketing mail is on the list.
	missing := queryPairs(t, db, `SELECT s.subject_id, s.purpose FROM consent_state s JOIN accounts a ON a.id = s.subject_id
		WHERE s.decision = 'granted' AND s.purpose IN ('newsletter', 'own_offers', 'partner_offers')
		AND NOT EXISTS (SELECT 1 FROM subscribers b WHERE b.subject_id = a.id AND b.status = 'confirmed')`)
	if len(missing) > 0 {
		t.Errorf("members who opted in but are not on the list: %v", missing)
	}

	// A verified address's subscription is the account's.
	unlinked := queryPairs(t, db, `SELECT a.id, s.subject_id FROM accounts a JOIN subscribers s ON s.email_hash = a.email_idx
		WHERE a.email_verified_at IS NOT NULL AND s.subject_id <> a.id`)
	if len(unlinked) > 0 {
		t.Errorf("verified accounts whose subscription is not theirs: %v", unlinked)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM subscribers)`).Scan(&n); err != nil || n == 0 {
		t.Errorf("%d accounts and subscribers (%v): the scenario set nothing up", n, err)
	}
}

// queryPairs reads a query of two text columns as a map.
func queryPairs(t *testing.T, db *store.DB, q string) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConcurrentChangesOfOneMember makes a second consent change of a member wait for
// a first that stands between the delete and the insert of the member's kept
// audience, then lets both go on: both succeed, and the kept audience is what the
// rule allows after both. PostgreSQL only: on SQLite the second cannot begin before
// the first ends (one writer).
func TestConcurrentChangesOfOneMember(t *testing.T) {
	url := storetest.PostgresURL(t)
	if url == "" {
		t.Skip("PostgreSQL not configured")
	}
	h := apptest.Start(t, url)
	id, token := h.Member("both@example.org", pw, nil)
	if r := h.Do("PUT", "/api/v1/me/consents", `{"choices":{"newsletter":true,"own_offers":true}}`, token); r.Status != http.StatusOK {
		t.Fatalf("opt in = %d %s", r.Status, r.Body)
	}
	lock := strconv.Itoa(1_000_000 + rand.IntN(1_000_000_000))
	reached, release := armStop(t, h, url, lock, "BEFORE INSERT ON mailable")
	defer release()
	first, second := make(chan apptest.Response, 1), make(chan apptest.Response, 1)
	go func() { first <- h.Do("PUT", "/api/v1/me/consents", `{"choices":{"own_offers":false}}`, token) }()
	<-reached
	ctx := context.Background()
	var pid int
	if err := h.App.DB().QueryRowContext(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, lock).
		Scan(&pid); err != nil {
		t.Fatal(err)
	}
	go func() { second <- h.Do("PUT", "/api/v1/me/consents", `{"choices":{"partner_offers":true}}`, token) }()
	// The second waits for the first.
	for {
		var n int
		if err := h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).
			Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case r := <-second:
			t.Fatalf("the second change ended (%d %s) while the first was not committed", r.Status, r.Body)
		case <-time.After(5 * time.Millisecond):
		}
	}
	release()
	for name, ch := range map[string]chan apptest.Response{"first": first, "second": second} {
		if r := <-ch; r.Status != http.StatusOK {
			t.Errorf("%s change = %d %s", name, r.Status, r.Body)
		}
	}
	got := map[string]bool{}
	for _, p := range []string{"newsletter", "own_offers", "partner_offers"} {
		if err := h.App.Newsletter().Audience(ctx, p, func(s string) error { got[p] = s == id; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if want := map[string]bool{"newsletter": true, "partner_offers": true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the member's audiences = %v, want %v", got, want)
	}
}
