package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/app"
	"steward/internal/app/apptest"
	"steward/internal/blob"
	"steward/internal/cli"
	"steward/internal/config"
	"steward/internal/datamap"
	"steward/internal/rights"
	"steward/internal/store/storetest"
)

// site is one deployment that a test stops, starts, backs up and restores: the same
// data folder (keys, files, SQLite), database and flags every time.
type site struct {
	t     *testing.T
	dbURL string // "" for SQLite in the data folder
	data  string
	flags []string
}

func newSite(t *testing.T, engine, files string) *site {
	t.Helper()
	s := &site{t: t, data: t.TempDir()}
	if engine == "postgres" {
		if s.dbURL = storetest.PostgresURL(t); s.dbURL == "" {
			t.Skip("STEWARD_TEST_POSTGRES_URL not set")
		}
	}
	if files == "s3" {
		if s.flags = s3Flags(t); s.flags == nil {
			t.Skip("STEWARD_TEST_S3_ENDPOINT not set")
		}
	}
	// The deployment's keys live in its data folder, for every command and start.
	s.flags = append(s.flags, "--master-key-file", filepath.Join(s.data, "master.key"),
		"--ledger-key-file", filepath.Join(s.data, "ledger.key"))
	return s
}

// eachSite runs fn on every engine with the file stores given.
func eachSite(t *testing.T, stores []string, fn func(t *testing.T, s *site)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, files := range stores {
			t.Run(engine+"-"+files, func(t *testing.T) {
				t.Parallel()
				fn(t, newSite(t, engine, files))
			})
		}
	}
}

func (s *site) args() []string {
	a := []string{"--data", s.data, "--log-level", "error"}
	if s.dbURL != "" {
		a = append(a, "--database", s.dbURL)
	}
	return append(a, s.flags...)
}

func (s *site) start() *apptest.Harness {
	s.t.Helper()
	h := apptest.Start(s.t, s.dbURL, append([]string{"--data", s.data}, s.flags...)...)
	h.Data = s.data // where its mail is
	return h
}

func (s *site) config() *config.Config {
	s.t.Helper()
	cfg, _, err := config.Load(s.args(), func(string) string { return "" })
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg
}

// run runs a command of the steward binary against the site.
func (s *site) run(args ...string) (int, string) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a serve that starts ends then
	defer cancel()
	code := cli.Run(ctx, append(args, s.args()...), func(string) string { return "" }, &out, &errb)
	return code, out.String() + errb.String()
}

// person is someone the site holds: enough to find every trace of them.
type person struct {
	id, email string
	terms     []datamap.Term
}

// populate registers a member with a file and a newsletter subscriber without an
// account, who are to be erased, and a member who stays.
func populate(t *testing.T, h *apptest.Harness) (member, subscriber person, stays string) {
	t.Helper()
	ctx := context.Background()
	member.email = "ottoline.brackenbury@example.org"
	var token string
	member.id, token = h.Member(member.email, pw, map[string]any{"name": "Ottoline Brackenbury", "phone": "+49 30 7654321"})
	if r := upload(h, token, "diary.txt", []byte("Ottoline's diary"), false); r.Status != http.StatusCreated {
		t.Fatalf("upload = %d %s", r.Status, r.Body)
	}
	var err error
	if member.terms, err = h.App.Accounts().Identifiers(ctx, member.id); err != nil {
		t.Fatal(err)
	}
	subscriber = subscribeAs(t, h, "quintessa.vandermolen@example.org", "Quintessa", "Vandermolen")
	stays, _ = h.Member("stays@example.org", pw, map[string]any{"name": "Steadfast Stayer"})
	return member, subscriber, stays
}

// subscribeAs subscribes an address without an account, confirmed.
func subscribeAs(t *testing.T, h *apptest.Harness, email, first, last string) person {
	t.Helper()
	r := h.Do("POST", "/api/v1/newsletter", map[string]string{"first_name": first, "last_name": last, "email": email}, "")
	if r.Status != http.StatusAccepted {
		t.Fatalf("subscribe = %d %s", r.Status, r.Body)
	}
	tok := h.WaitLink(email, "token=")
	if c := h.Do("POST", "/api/v1/newsletter/confirm", map[string]string{"token": tok}, ""); c.Status != http.StatusOK {
		t.Fatalf("confirm = %d %s", c.Status, c.Body)
	}
	id, err := h.App.Newsletter().Lookup(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return person{id: id, email: email, terms: []datamap.Term{{Kind: "id", Value: id}, {Kind: "email", Value: email},
		{Kind: "name", Value: first}, {Kind: "name", Value: last}}}
}

// erase erases the member and the subscriber as the site would.
func erase(t *testing.T, h *apptest.Harness, member, subscriber person) {
	t.Helper()
	ctx := context.Background()
	if err := h.App.Rights().EraseNow(ctx, member.id, "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.App.Rights().EraseSubject(ctx, datamap.Subject{ID: subscriber.id, Email: subscriber.email}, "test"); err != nil {
		t.Fatal(err)
	}
}

// present reports whether the site holds anything of the person.
func present(t *testing.T, h *apptest.Harness, p person) []string {
	t.Helper()
	ctx := context.Background()
	var found []string
	if _, err := h.App.Accounts().Lookup(ctx, p.email); err == nil {
		found = append(found, "an account with the address")
	}
	if _, err := h.App.Newsletter().Lookup(ctx, p.email); err == nil {
		found = append(found, "a subscription of the address")
	}
	fs, err := h.App.Registry().ScanAll(ctx, h.App.DB(), p.terms)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		found = append(found, f.String())
	}
	more, err := h.App.Registry().CheckResidue(ctx, p.id)
	if err != nil {
		t.Fatal(err)
	}
	return append(found, more...)
}

// assertErased checks that the person is gone and the ledger says so.
func assertErased(t *testing.T, h *apptest.Harness, p person) {
	t.Helper()
	for _, f := range present(t, h, p) {
		t.Errorf("%s: still there: %s", p.email, f)
	}
	for _, ident := range []string{p.id, p.email} {
		if _, ok, err := h.App.Rights().Erased(context.Background(), ident); err != nil || !ok {
			t.Errorf("the erasure ledger lacks %s (%v)", ident, err)
		}
	}
}

// assertStays checks that a member who was not erased can still log in.
func assertStays(t *testing.T, h *apptest.Harness) {
	t.Helper()
	if r := h.Do("POST", "/api/v1/sessions", map[string]string{"email": "stays@example.org", "password": pw}, ""); r.Status != http.StatusCreated {
		t.Errorf("the member who stays cannot log in: %d %s", r.Status, r.Body)
	}
}

// The same when the operator puts the database back by hand (a copy of the SQLite
// file, pg_restore into the schema) and just starts: the start replays the ledger.
func TestManualRestoreErasedAtStart(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		h := s.start()
		member, subscriber, _ := populate(t, h)
		dir := t.TempDir()
		var put func()
		if s.dbURL == "" {
			h.Close() // a file copy wants the server stopped
			db := filepath.Join(s.data, "steward.db")
			copyFiles(t, db, filepath.Join(dir, "steward.db"))
			put = func() { copyFiles(t, filepath.Join(dir, "steward.db"), db) }
			h = s.start()
		} else {
			dump := filepath.Join(dir, "steward.pgdump")
			pgTool(t, s.dbURL, "pg_dump", "--format=custom", "--file="+dump)
			put = func() {
				pgTool(t, s.dbURL, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", dump)
			}
		}
		erase(t, h, member, subscriber)
		h.Close()
		put()
		h = s.start()
		assertErased(t, h, member)
		assertErased(t, h, subscriber)
		assertStays(t, h)
	})
}

// copyFiles copies a SQLite database and its log, if any, over another, whose log and
// shared memory go.
func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(to + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(from + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// pgTool runs pg_dump or pg_restore on the test schema, as an operator would.
func pgTool(t *testing.T, dbURL, prog string, args ...string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	args = append([]string{"--schema=" + schema, "--dbname=" + u.String()}, args...)
	if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", prog, err, out)
	}
}

// fingerprint sums what a restore would change: the SQLite file, or on PostgreSQL the
// rows of the tables a restore would replace.
func fingerprint(t *testing.T, s *site) string {
	t.Helper()
	if s.dbURL == "" {
		b, err := os.ReadFile(filepath.Join(s.data, "steward.db"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return string(sum[:])
	}
	db := storetest.Open(t, s.dbURL)
	var sum string
	for _, q := range []string{`SELECT count(*) || ':' || coalesce(string_agg(id, ',' ORDER BY id), '') FROM accounts`,
		`SELECT count(*) || ':' || coalesce(string_agg(hash, ',' ORDER BY hash), '') FROM erasure_ledger`,
		`SELECT count(*)::text FROM subscribers`} {
		var v string
		if err := db.QueryRowContext(context.Background(), q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		sum += v + "|"
	}
	return sum
}

// A ledger object that does not verify stops the start, naming the object, before
// anything changes; put back, the start goes on.
func TestLedgerObjectTamperedStopsStart(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		h := s.start()
		name := eraseOne(t, h, "tampered.ledger@example.org")
		h.Close()
		bs := openBlobs(t, s)
		original := readObject(t, bs, name)
		putObject(t, bs, name, tamper(t, original))

		before := fingerprint(t, s)
		a, err := app.New(ctx, s.config(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		err = a.Start(ctx)
		a.Close()
		if !errors.Is(err, rights.ErrLedgerObject) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "Put back") {
			t.Fatalf("start with a tampered ledger object: %v", err)
		}
		if code, out := s.run("serve", "--addr", "127.0.0.1:0"); code != 1 || !strings.Contains(out, name) {
			t.Errorf("steward serve with a tampered ledger object: exit %d: %s", code, out)
		}
		if after := fingerprint(t, s); after != before {
			t.Error("the refused start changed the database")
		}
		putObject(t, bs, name, original)
		h = s.start()
		h.Close()
	})
}

// eraseOne registers and erases a member and returns the name of its ledger object.
func eraseOne(t *testing.T, h *apptest.Harness, email string) string {
	t.Helper()
	ctx := context.Background()
	id, _ := h.Member(email, pw, nil)
	if err := h.App.Rights().EraseNow(ctx, id, "test"); err != nil {
		t.Fatal(err)
	}
	var name string
	h.App.Blobs().List(ctx, rights.LedgerPrefix, func(i blob.Info) error {
		if !strings.Contains(i.Name, "backfill") {
			name = i.Name
		}
		return nil
	})
	if name == "" {
		t.Fatal("the erasure left no ledger object")
	}
	return name
}

// tamper changes an entry's hash in a ledger object, as if someone else had been
// erased: its MAC no longer matches.
func tamper(t *testing.T, object []byte) []byte {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(object, &o); err != nil {
		t.Fatal(err)
	}
	o["entries"].([]any)[0].(map[string]any)["hash"] = strings.Repeat("0", 64)
	b, _ := json.Marshal(o)
	return b
}

func openBlobs(t *testing.T, s *site) blob.Store {
	t.Helper()
	cfg := s.config()
	if cfg.Files == "s3" {
		b, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: cfg.S3.Endpoint, Bucket: cfg.S3.Bucket,
			AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, Prefix: cfg.S3.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := blob.NewDisk(cfg.FilesDir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readObject(t *testing.T, bs blob.Store, name string) []byte {
	t.Helper()
	r, err := bs.Open(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, bs blob.Store, name string, b []byte) {
	t.Helper()
	if _, err := bs.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// Ledger objects live beside the files in the blob store; the files reconciler lists
// only files/ and never takes one for an orphan.
func TestLedgerObjectSurvivesReconcile(t *testing.T) {
	eachStorage(t, nil, func(t *testing.T, h *apptest.Harness) {
		ctx := context.Background()
		id, _ := h.Member("reconciled.ledger@example.org", pw, nil)
		if err := h.App.Rights().EraseNow(ctx, id, "test"); err != nil {
			t.Fatal(err)
		}
		names := func() []string {
			var out []string
			h.App.Blobs().List(ctx, rights.LedgerPrefix, func(i blob.Info) error { out = append(out, i.Name); return nil })
			return out
		}
		before := names()
		if len(before) < 2 { // the erasure's, and the one saying older erasures were written out
			t.Fatalf("ledger objects = %q", before)
		}
		for _, allDead := range []bool{false, true} {
			rep, err := h.App.Files().Reconcile(ctx, allDead)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OrphanObjects != 0 {
				t.Errorf("reconcile deleted %d orphan(s)", rep.OrphanObjects)
			}
		}
		if after := names(); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("ledger objects after reconcile = %q, want %q", after, before)
		}
	})
}

// Erasures made before ledger objects existed are written out once, at the first
// start that finds no record of having done it. A database whose ledger is empty has
// every object replayed at start.
func TestLedgerObjectsWrittenForOlderErasures(t *testing.T) {
	eachSite(t, []string{"disk"}, func(t *testing.T, s *site) {
		ctx := context.Background()
		h := s.start()
		at := time.Now().Add(-48 * time.Hour).UnixMilli()
		if _, err := h.App.DB().ExecContext(ctx, `INSERT INTO erasure_ledger (hash, kind, request_id, erased_at) VALUES ($1, 'email', 'abc123', $2)`,
			strings.Repeat("ab", 32), at); err != nil {
			t.Fatal(err)
		}
		h.Close()
		bs := openBlobs(t, s)
		if err := bs.Delete(ctx, "ledger/0000000000000-backfill.json"); err != nil {
			t.Fatal(err)
		}
		h = s.start()
		if _, err := h.App.Blobs().Stat(ctx, fmt.Sprintf("ledger/%013d-abc123.json", at)); err != nil {
			t.Fatalf("the older erasure's object: %v", err)
		}
		if _, err := h.App.Blobs().Stat(ctx, "ledger/0000000000000-backfill.json"); err != nil {
			t.Errorf("no record of having written them: %v", err)
		}
		if _, err := h.App.DB().ExecContext(ctx, `DELETE FROM erasure_ledger`); err != nil {
			t.Fatal(err)
		}
		h.Close()
		h = s.start()
		var n int
		h.App.DB().QueryRowContext(ctx, `SELECT count(*) FROM erasure_ledger WHERE request_id = 'abc123' AND kind = 'email'`).Scan(&n)
		if n != 1 {
			t.Errorf("the entry was not replayed into an empty ledger: %d", n)
		}
	})
}
