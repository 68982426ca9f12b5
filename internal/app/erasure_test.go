package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/account"
	"steward/internal/app/apptest"
	"steward/internal/cli"
	"steward/internal/datamap"
	"steward/internal/governance"
	"steward/internal/mail"
	"steward/internal/policy"
	"steward/internal/retention"
	"steward/internal/rights"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

// flakyHolder fails its first Erase, as a crash or a lost connection would.
type flakyHolder struct{ calls *int }

func (flakyHolder) Declaration() datamap.Declaration { return datamap.Declaration{Name: "flaky"} }
func (flakyHolder) Export(context.Context, store.Querier, datamap.Subject) ([]datamap.Section, error) {
	return nil, nil
}
func (f flakyHolder) Erase(context.Context, *store.Tx, datamap.Subject) error {
	*f.calls++
	if *f.calls == 1 {
		return errors.New("connection lost")
	}
	return nil
}

// An erasure interrupted half-way keeps what it finished, says where it stopped, and
// the next run completes it without repeating finished holders.
func TestErasureResumesAfterFailure(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		id, _ := h.Member("resume@example.org", pw, map[string]any{"name": "Resumed Person"})
		terms, err := h.App.Accounts().Identifiers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		reg := datamap.NewRegistry()
		reg.Register(account.Holder{})
		reg.Register(flakyHolder{&calls}) // runs after the others, before the account
		reg.Register(governance.AuditHolder{})
		reg.Register(mail.Holder{Index: testLedger(h).Index})
		reg.Register(rights.Holder{})
		reg.Register(vault.Holder{})
		reg.Register(policy.Holder{}) // the acceptance of the policy at registration
		rs := rights.New(h.App.DB(), reg, h.App.Accounts(), nil, h.App.Jobs(), testLedger(h), h.Clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))

		err = rs.EraseNow(ctx, id, "test")
		if err == nil || !strings.Contains(err.Error(), "connection lost") {
			t.Fatalf("first run: err = %v, want the holder's failure", err)
		}
		pending, err := rs.Pending(ctx)
		if err != nil || len(pending) != 1 {
			t.Fatalf("pending = %v (%v), want one request", pending, err)
		}
		req, _ := rs.Request(ctx, pending[0])
		if got := strings.Join(req.StepsDone, ","); got != "policy,vault,erasure,mail_outbox,audit_log" || !strings.Contains(req.LastError, "connection lost") {
			t.Errorf("after failure: steps %q, last error %q", got, req.LastError)
		}
		// Half-way, the member can no longer log in.
		if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "resume@example.org", "password": pw}, ""); r.Status != 401 {
			t.Errorf("login during erasure = %d", r.Status)
		}
		if err := rs.Run(ctx, pending[0]); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if calls != 2 {
			t.Errorf("flaky holder called %d times, want 2", calls)
		}
		req, _ = rs.Request(ctx, pending[0])
		if req.State != rights.StateDone || len(req.StepsDone) != 7 {
			t.Errorf("after resume: %+v", req)
		}
		found, err := datamap.Scan(ctx, h.App.DB(), terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("residue: %s", f)
		}
		// Running a finished request again changes nothing.
		if err := rs.Run(ctx, pending[0]); err != nil {
			t.Errorf("rerun of a done request: %v", err)
		}
	})
}

// testLedger is the app's ledger, for an erasure service of a test's own: the ledger
// objects it writes must verify when the app starts again.
func testLedger(h *apptest.Harness) rights.Ledger {
	key, err := os.ReadFile(h.App.Config().LedgerKeyFile)
	if err != nil {
		h.T.Fatal(err)
	}
	return rights.Ledger{Key: key, Index: vault.NewIndex(key), Blobs: h.App.Blobs()}
}

// The command line erases a member and its residue scan exits 1 while anything is
// left and 0 once nothing is.
func TestCLIEraseAndResidue(t *testing.T) {
	h := apptest.Start(t, "")
	ctx := context.Background()
	email := "cli.member@example.org"
	id, _ := h.Member(email, pw, map[string]any{"name": "Command Line", "phone": "+49 30 1234567"})
	env := func(k string) string {
		if k == "STEWARD_DATA" {
			return h.Data
		}
		return ""
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Run(ctx, args, env, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("residue", email, "--log-level", "error"); code != 1 || !strings.Contains(out, "accounts.id") {
		t.Fatalf("residue of a live member: exit %d, %s", code, out)
	}
	if code, out := run("staff", "grant", email, "support", "--log-level", "error"); code != 0 || strings.TrimSpace(out) != "granted support to "+email {
		t.Errorf("staff grant: exit %d, %q", code, out)
	}
	if code, out := run("staff", "revoke", email, "support", "--log-level", "error"); code != 0 || strings.TrimSpace(out) != "revoked support from "+email {
		t.Errorf("staff revoke: exit %d, %q", code, out)
	}
	exportFile := filepath.Join(t.TempDir(), "export.zip")
	if code, out := run("export", id, "--out", exportFile, "--log-level", "error"); code != 0 {
		t.Fatalf("export: exit %d, %s", code, out)
	}
	b, _ := os.ReadFile(exportFile)
	if files := unzip(t, b); !strings.Contains(files["account/accounts.csv"], email) {
		t.Errorf("export lacks the email")
	}
	if code, out := run("erase", email, "--log-level", "error"); code != 0 || !strings.Contains(out, "erased "+id) {
		t.Fatalf("erase: exit %d, %s", code, out)
	}
	code, out := run("residue", email, "--also", "Command Line|+49 30 1234567|"+id, "--log-level", "error")
	if code != 0 || !strings.Contains(out, "erasure ledger: erased at") || !strings.Contains(out, "no residue") {
		t.Fatalf("residue after erasure: exit %d, %s", code, out)
	}
	if code, out := run("erase", email, "--log-level", "error"); code != 2 || !strings.Contains(out, "no account") {
		t.Errorf("erasing twice: exit %d, %s", code, out)
	}
	if code, out := run("frobnicate"); code != 2 || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown command: exit %d, %s", code, out)
	}
	if code, out := run("serve", "--addr", "nonsense"); code != 2 || !strings.Contains(out, "--addr (STEWARD_ADDR)") {
		t.Errorf("bad flag: exit %d, %s", code, out)
	}
}

// Registrations never completed are erased by the periodic purge: a child whose
// guardian never answered, an adult who never confirmed the address.
func TestPurgeAbandonedRegistrations(t *testing.T) {
	apptest.Each(t, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		child := h.Register(map[string]any{"email": "waiting.kid@example.org", "password": pw, "name": "Waiting Kid",
			"birthdate": time.Now().AddDate(-10, 0, 0).Format("2006-01-02"), "country": "DE", "guardian_email": "absent@example.org"})
		adult := h.Register(map[string]any{"email": "never.confirmed@example.org", "password": pw, "name": "Never Confirmed",
			"birthdate": "1970-01-01", "country": "DE"})
		keep, _ := h.Member("keeper@example.org", pw, nil)
		// The guardian is asked once the child proves the address.
		if v := h.Do("POST", "/api/v1/verifications", map[string]string{"token": h.WaitLink("waiting.kid@example.org", "/verify?token=")}, ""); v.Status != 200 {
			t.Fatalf("child verify = %d %s", v.Status, v.Body)
		}
		for _, addr := range []string{"waiting.kid@example.org", "absent@example.org", "never.confirmed@example.org"} {
			h.WaitMail(addr, 1)
		}
		waitOutboxEmpty(t, h)
		// Age the two registrations past their deadlines.
		h.Clock.Advance(15 * 24 * time.Hour)
		if _, err := h.App.Retention().Run(ctx, retention.Actor{Source: retention.ByCLI}); err != nil {
			t.Fatal(err)
		}
		for _, r := range []apptest.Response{child, adult} {
			if _, err := h.App.Accounts().Lookup(ctx, r.JSON()["id"].(string)); err == nil {
				t.Errorf("abandoned registration %s survived the purge", r.JSON()["id"])
			}
		}
		if _, err := h.App.Accounts().Lookup(ctx, keep); err != nil {
			t.Errorf("active member purged: %v", err)
		}
		// Nobody proved those addresses were the registrants': the mail already handed
		// to them (the .eml folder stands in for their mailboxes) is left to whoever
		// owns them, as it would be with a mail server. Nothing of them is kept.
		found, _ := datamap.Scan(ctx, h.App.DB(), []datamap.Term{{Kind: "email", Value: "waiting.kid@example.org"}, {Kind: "guardian email", Value: "absent@example.org"}, {Kind: "email", Value: "never.confirmed@example.org"}})
		for _, f := range found {
			t.Errorf("residue: %s", f)
		}
	})
}

// An erasure cut short by a crash is finished when Steward starts again.
func TestErasureResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "steward.db")
	if pg := storetest.PostgresURL(t); pg != "" {
		dbURL = pg
	}
	keyFile := filepath.Join(dir, "ledger.key")
	h := apptest.Start(t, dbURL, "--ledger-key-file", keyFile)
	ctx := context.Background()
	id, _ := h.Member("restart@example.org", pw, map[string]any{"name": "Restarted Person"})
	terms, _ := h.App.Accounts().Identifiers(ctx, id)
	calls := 0
	reg := datamap.NewRegistry()
	reg.Register(account.Holder{})
	reg.Register(flakyHolder{&calls})
	reg.Register(governance.AuditHolder{})
	reg.Register(mail.Holder{Index: testLedger(h).Index})
	reg.Register(rights.Holder{})
	rs := rights.New(h.App.DB(), reg, h.App.Accounts(), nil, h.App.Jobs(), testLedger(h), h.Clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := rs.EraseNow(ctx, id, "test"); err == nil {
		t.Fatal("the interrupted erasure succeeded")
	}
	pending, _ := rs.Pending(ctx)
	if len(pending) != 1 {
		t.Fatalf("pending = %v", pending)
	}
	h.Close() // the crash

	h2 := apptest.Start(t, dbURL, "--ledger-key-file", keyFile)
	h2.WaitErasure(pending[0])
	found, err := datamap.Scan(ctx, h2.App.DB(), terms)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("residue after resumed erasure: %s", f)
	}
	if _, ok, _ := h2.App.Rights().Erased(ctx, "restart@example.org"); !ok {
		t.Error("the ledger does not record the resumed erasure")
	}
}

// On PostgreSQL "steward residue" reads the server's files: a member's id is found in
// the accounts table's file and in the WAL (exit 1); an address never written is found
// nowhere (exit 0); and a role that may not read the files gets exit 2, with what it
// could not read on stderr, rather than a clean answer.
func TestCLIResidueReadsPostgresFiles(t *testing.T) {
	u := storetest.PostgresURL(t)
	if u == "" {
		t.Skip("STEWARD_TEST_POSTGRES_URL not set")
	}
	h := apptest.Start(t, u)
	ctx := context.Background()
	email := "raw.scan@example.org"
	id, _ := h.Member(email, pw, map[string]any{"name": "Raw Scan"})
	run := func(dbURL string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := func(k string) string {
			switch k {
			case "STEWARD_DATA":
				return h.Data
			case "STEWARD_DATABASE":
				return dbURL
			case "STEWARD_MASTER_KEY_FILE":
				return h.App.Config().MasterKeyFile
			case "STEWARD_LEDGER_KEY_FILE":
				return h.App.Config().LedgerKeyFile
			}
			return ""
		}
		code := cli.Run(ctx, append(args, "--log-level", "error"), env, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run(u, "residue", email)
	if code != 1 || !strings.Contains(out, "found: table file accounts: ") || !strings.Contains(out, "found: WAL ") || errs != "" {
		t.Errorf("residue of a live member: exit %d, want 1 with the table file and the WAL\n%s%s", code, out, errs)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "found: ") && (strings.Contains(line, id) || strings.Contains(line, email) || strings.Contains(line, "Raw Scan")) {
			t.Errorf("a finding names the value: %s", line)
		}
	}

	nobody := "nobody." + strings.ToLower(id[len(id)-12:]) + "@example.org"
	if code, out, errs := run(u, "residue", nobody); code != 0 || !strings.Contains(out, "no residue") || errs != "" {
		t.Errorf("residue of an address never written: exit %d, want 0\n%s%s", code, out, errs)
	}

	// A role that may read the tables but not the server's files.
	role := "steward_reader_" + strings.ToLower(id[len(id)-12:])
	var schema string
	if err := h.App.DB().QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN PASSWORD 'reader-password'`,
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT SELECT ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
	} {
		if _, err := h.App.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := h.App.DB().ExecContext(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	ru, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	ru.User = url.UserPassword(role, "reader-password")
	code, out, errs = run(ru.String(), "residue", nobody)
	if code != 2 || !strings.Contains(errs, "could not read: CHECKPOINT was refused") ||
		!strings.Contains(errs, "could not read: the WAL was not read") || strings.Contains(out, "no residue") {
		t.Errorf("residue without the right to read files: exit %d, want 2 with what was not read\n%s%s", code, out, errs)
	}
	t.Logf("without the right to read files: exit %d\n%s%s", code, out, errs)
}

// A request reads "done" only once the engine's files have let go of the erased rows:
// while a reader pins an old snapshot of SQLite's write-ahead log, the request stays in
// "scrubbing" with the reason, and the next run finishes it.
func TestErasureDoneOnlyOnceScrubbed(t *testing.T) {
	h := apptest.Start(t, "")
	ctx := context.Background()
	email := "scrubbed@example.org"
	id, _ := h.Member(email, pw, map[string]any{"name": "Pinned Snapshot", "phone": "+33 1 23 45 67 89"})
	terms, err := h.App.Accounts().Identifiers(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := sql.Open("sqlite", "file:"+h.App.DB().Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	snap, err := reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := snap.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("reader sees %d accounts (%v)", n, err)
	}

	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	err = h.App.Rights().EraseNow(short, id, "test")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "scrub") {
		t.Fatalf("erasure with a pinned reader: err = %v, want a scrub failure", err)
	}
	pending, err := h.App.Rights().Pending(ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v (%v), want the one request", pending, err)
	}
	req, err := h.App.Rights().Request(ctx, pending[0])
	if err != nil || req.State != rights.StateScrubbing || req.LastError == "" || !req.CompletedAt.IsZero() {
		t.Fatalf("while pinned: %+v (%v), want scrubbing with a reason and no completion time", req, err)
	}
	if r := h.Do("GET", "/api/v1/erasures/"+pending[0], nil, ""); r.Status != 200 || r.JSON()["state"] != "scrubbing" {
		t.Errorf("GET /erasures while pinned = %d %s", r.Status, r.Body)
	}
	// The live rows are gone already; the log still holds their old images, which is
	// why the request does not say done.
	pinned, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(pinned, func(f datamap.Finding) bool { return !strings.HasPrefix(f.Where, "file ") }) ||
		!slices.ContainsFunc(pinned, func(f datamap.Finding) bool { return f.Where == "file steward.db-wal" }) {
		t.Errorf("while pinned: %v, want residue in the write-ahead log only", pinned)
	}

	if err := snap.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := h.App.Rights().Run(ctx, pending[0]); err != nil {
		t.Fatalf("run after the reader let go: %v", err)
	}
	req, _ = h.App.Rights().Request(ctx, pending[0])
	if req.State != rights.StateDone || req.LastError != "" || req.CompletedAt.IsZero() {
		t.Errorf("after the rerun: %+v", req)
	}
	after, err := h.App.Registry().ScanAll(ctx, h.App.DB(), terms)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range after {
		t.Errorf("residue once done: %s", f)
	}
}
