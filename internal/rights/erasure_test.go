package rights

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/apperr"
	"steward/internal/blob"
	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
	"steward/internal/vault"
)

var testTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeHolder records the subjects it erased and fails while fail is set. With a table,
// it erases the subject's rows there.
type fakeHolder struct {
	name   string
	table  string
	fail   error
	erased []datamap.Subject
}

func (h *fakeHolder) Declaration() datamap.Declaration {
	d := datamap.Declaration{Name: h.name}
	if h.table != "" {
		d.Tables = []datamap.Table{{Name: h.table, Subject: "subject_id", Columns: []datamap.Column{{Name: "subject_id"}, {Name: "body"}}}}
	}
	return d
}

func (h *fakeHolder) Export(context.Context, store.Querier, datamap.Subject) ([]datamap.Section, error) {
	return nil, nil
}

func (h *fakeHolder) Erase(ctx context.Context, tx *store.Tx, s datamap.Subject) error {
	if h.fail != nil {
		return h.fail
	}
	h.erased = append(h.erased, s)
	return datamap.EraseDeclared(ctx, tx, s, h.Declaration())
}

// fakeAccounts knows no account: erasure takes the subject as it is given.
type fakeAccounts struct{ marked []string }

func (a *fakeAccounts) MarkErasing(_ context.Context, _ *store.Tx, id string) error {
	a.marked = append(a.marked, id)
	return nil
}

func (a *fakeAccounts) ErasureSubject(context.Context, string) (datamap.Subject, error) {
	return datamap.Subject{}, apperr.New(apperr.NotFound, "account_not_found", "no such account")
}

// fakeHolds keeps, for each holder named, the holds given.
type fakeHolds struct{ keeps map[string][]string }

func (f *fakeHolds) Keeps(context.Context, string) (map[string][]string, error) {
	return maps.Clone(f.keeps), nil
}

type harness struct {
	s        *Service
	db       *store.DB
	blobs    blob.Store
	accounts *fakeAccounts
	holds    *fakeHolds
	a, b, c  *fakeHolder
}

// newHarness builds an erasure service with three holders erased in the order a, b,
// c; c keeps rows in a table of its own (rt_notes).
func newHarness(t *testing.T, db *store.DB) *harness {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), `CREATE TABLE rt_notes (subject_id TEXT, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	disk, err := blob.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{db: db, blobs: disk, accounts: &fakeAccounts{}, holds: &fakeHolds{},
		a: &fakeHolder{name: "a"}, b: &fakeHolder{name: "b"}, c: &fakeHolder{name: "c", table: "rt_notes"}}
	reg := datamap.NewRegistry()
	reg.Register(Holder{})
	for _, x := range []*fakeHolder{h.c, h.b, h.a} {
		reg.Register(x)
	}
	if err := reg.SetErasureOrder("a", "b", "c", "erasure"); err != nil {
		t.Fatal(err)
	}
	h.s = New(db, reg, h.accounts, h.holds, nil, testLedger(disk, "ledger key"), func() time.Time { return testTime }, slog.New(slog.DiscardHandler))
	return h
}

func testLedger(blobs blob.Store, key string) Ledger {
	k := bytes.Repeat([]byte(key), 32/len(key)+1)[:32]
	return Ledger{Key: k, Index: vault.NewIndex(k), Blobs: blobs}
}

func (h *harness) request(t *testing.T, id string) Request {
	t.Helper()
	r, err := h.s.Request(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// onlyRequest is the id of the one erasure request.
func (h *harness) onlyRequest(t *testing.T) string {
	t.Helper()
	ids, err := store.Strings(context.Background(), h.db, `SELECT id FROM erasure_requests`)
	if err != nil || len(ids) != 1 {
		t.Fatalf("requests = %v, %v; want one", ids, err)
	}
	return ids[0]
}

func (h *harness) ledgerHashes(t *testing.T) []string {
	t.Helper()
	hashes, err := store.Strings(context.Background(), h.db, `SELECT kind || ' ' || hash FROM erasure_ledger ORDER BY kind, hash`)
	if err != nil {
		t.Fatal(err)
	}
	return hashes
}

func (h *harness) objects(t *testing.T) []string {
	t.Helper()
	var names []string
	if err := h.blobs.List(context.Background(), LedgerPrefix, func(i blob.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// A holder a legal hold keeps is passed over: the request waits in "holding" with the
// subject, no ledger entry yet, and is not rerun by the purge; once the hold ends,
// HoldsEnded erases what was kept and the request completes (P-SEC-4).
func TestRunKeepsHeldHolders(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		if _, err := db.ExecContext(ctx, `INSERT INTO rt_notes VALUES ('s1', 'kept for court')`); err != nil {
			t.Fatal(err)
		}
		h.holds.keeps = map[string][]string{"c": {"hold1"}, "vault": {"hold1"}, "erasure": {"hold1"}}
		if err := h.s.EraseSubject(ctx, datamap.Subject{ID: "s1", Email: "held@example.org"}, "member"); err != nil {
			t.Fatal(err)
		}
		id := h.onlyRequest(t)
		r := h.request(t, id)
		if r.State != StateHolding || !slices.Equal(r.StepsDone, []string{"a", "b"}) || r.SubjectID != "s1" {
			t.Errorf("while held: %+v; want holding, a and b done, the subject kept", r)
		}
		if len(h.c.erased) != 0 || !h.a.erased[0].KeepKey {
			t.Errorf("c erased %d times, a told KeepKey %v; want 0, true", len(h.c.erased), h.a.erased[0].KeepKey)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rt_notes`).Scan(&n); err != nil || n != 1 {
			t.Errorf("held rows = %d (%v), want 1", n, err)
		}
		if got := h.ledgerHashes(t); len(got) != 0 {
			t.Errorf("ledger while held: %v, want none", got)
		}
		// Neither the purge nor HoldsEnded touch it while the hold is in force.
		if err := h.s.ResumeStale(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.s.HoldsEnded(ctx); err != nil {
			t.Fatal(err)
		}
		if r := h.request(t, id); r.State != StateHolding || len(h.c.erased) != 0 {
			t.Errorf("after a run in force: %+v, c erased %d times", r, len(h.c.erased))
		}
		if held, ok, err := h.s.Holding(ctx, "s1"); err != nil || !ok || held != id {
			t.Errorf("Holding(s1) = %q, %v, %v; want %q", held, ok, err, id)
		}

		h.holds.keeps = nil
		if err := h.s.HoldsEnded(ctx); err != nil {
			t.Fatal(err)
		}
		r = h.request(t, id)
		if r.State != StateDone || !slices.Equal(r.StepsDone, []string{"a", "b", "c", "erasure"}) || r.SubjectID != "" {
			t.Errorf("after the hold: %+v; want done, every step, the subject forgotten", r)
		}
		if len(h.c.erased) != 1 || h.c.erased[0].KeepKey {
			t.Errorf("c erased %v; want once, without KeepKey", h.c.erased)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rt_notes`).Scan(&n); err != nil || n != 0 {
			t.Errorf("rows after the hold = %d (%v), want 0", n, err)
		}
		if got := h.ledgerHashes(t); len(got) == 0 {
			t.Error("no ledger entry once done")
		}
	})
}

// A failed holder stops the run with the step recorded; the next run resumes after the
// holders already done, and ends with the ledger and a forgotten subject.
func TestRunResumes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		if _, err := db.ExecContext(ctx, `INSERT INTO rt_notes VALUES ('s1', 'mine'), ('s2', 'theirs')`); err != nil {
			t.Fatal(err)
		}
		idx := h.s.ledger.Index
		subj := datamap.Subject{ID: "s1", Email: "ada@example.org", Proven: []string{idx.Address("old@example.org")}, Pending: "maybe@example.org"}
		h.b.fail = errors.New("b is down")
		err := h.s.EraseSubject(ctx, subj, "member")
		if err == nil || !strings.Contains(err.Error(), "b is down") {
			t.Fatalf("EraseSubject: %v, want b's failure", err)
		}
		id := h.onlyRequest(t)
		r := h.request(t, id)
		if r.State != StatePending || !slices.Equal(r.StepsDone, []string{"a"}) || !strings.Contains(r.LastError, "erase b: b is down") {
			t.Errorf("after the failure: %+v; want pending, a done, b's error noted", r)
		}
		if !slices.Equal(h.accounts.marked, []string{"s1"}) {
			t.Errorf("marked erasing: %v", h.accounts.marked)
		}
		if got := h.ledgerHashes(t); len(got) != 0 || len(h.objects(t)) != 0 {
			t.Errorf("ledger before the end: %v, objects %v; want none", got, h.objects(t))
		}

		h.b.fail = nil
		if err := h.s.Run(ctx, id); err != nil {
			t.Fatal(err)
		}
		if len(h.a.erased) != 1 || len(h.b.erased) != 1 || len(h.c.erased) != 1 {
			t.Errorf("erasures: a %d, b %d, c %d; want each once", len(h.a.erased), len(h.b.erased), len(h.c.erased))
		}
		// The request keeps no address: holders get the blind indexes of the current
		// address and of those proven before; the pending one is not kept.
		got := h.c.erased[0]
		want := []string{idx.Address("ada@example.org"), idx.Address("old@example.org")}
		if got.ID != "s1" || got.Email != "" || got.Pending != "" || !slices.Equal(got.Proven, want) {
			t.Errorf("subject erased = %+v; want id s1 and proven %v", got, want)
		}
		r = h.request(t, id)
		if r.State != StateDone || !slices.Equal(r.StepsDone, []string{"a", "b", "c", "erasure"}) || r.LastError != "" || !r.CompletedAt.Equal(testTime) {
			t.Errorf("after the run: %+v; want done, every step, no error", r)
		}
		var subjID, proven sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT subject_id, subject_proven FROM erasure_requests WHERE id = $1`, id).Scan(&subjID, &proven); err != nil {
			t.Fatal(err)
		}
		if subjID.Valid || proven.Valid {
			t.Errorf("done request still holds %v, %v", subjID, proven)
		}
		var left []string
		if left, err = store.Strings(ctx, db, `SELECT subject_id FROM rt_notes`); err != nil || !slices.Equal(left, []string{"s2"}) {
			t.Errorf("rt_notes left %v, %v; want only s2", left, err)
		}

		wantLedger := []string{"address " + want[0], "address " + want[1], "id " + h.s.LedgerHash(KindID, "s1")}
		slices.Sort(wantLedger)
		if got := h.ledgerHashes(t); !slices.Equal(got, wantLedger) {
			t.Errorf("ledger = %v, want %v", got, wantLedger)
		}
		for _, ident := range []string{"s1", "ADA@example.org", "old@example.org"} {
			if at, ok, err := h.s.Erased(ctx, ident); err != nil || !ok || !at.Equal(testTime) {
				t.Errorf("Erased(%s) = %v, %v, %v; want erased at %v", ident, at, ok, err, testTime)
			}
		}
		if _, ok, _ := h.s.Erased(ctx, "maybe@example.org"); ok {
			t.Error("the pending address is in the ledger")
		}
		if objs := h.objects(t); !slices.Equal(objs, []string{ledgerObjectName(testTime.UnixMilli(), id)}) {
			t.Errorf("ledger objects = %v", objs)
		}

		// A done request runs no holder again.
		if err := h.s.Run(ctx, id); err != nil || len(h.a.erased) != 1 {
			t.Errorf("Run of a done request: %v, a erased %d times", err, len(h.a.erased))
		}
		if err := h.s.Run(ctx, "nope"); apperr.KindOf(err) != apperr.NotFound {
			t.Errorf("Run of no request: %v, want not found", err)
		}
		if pending, err := h.s.Pending(ctx); err != nil || len(pending) != 0 {
			t.Errorf("Pending = %v, %v", pending, err)
		}
	})
}

// A request in the scrubbing state has erased everything: a run only scrubs. On
// PostgreSQL a scrub that fails (a vacuum of a table not there) leaves the request
// there with the reason, and the next run finishes it.
func TestRunScrubbing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		if db.Dialect == store.Postgres {
			h.b.table = "rt_later"
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO erasure_requests (id, state, steps_done, source, created_at)
			VALUES ('r1', $1, 'a,b,c,erasure', 'member', 1)`, StateScrubbing); err != nil {
			t.Fatal(err)
		}
		if db.Dialect == store.Postgres {
			if err := h.s.Run(ctx, "r1"); err == nil {
				t.Fatal("scrubbing a table not there: nil error")
			}
			if r := h.request(t, "r1"); r.State != StateScrubbing || !strings.Contains(r.LastError, "rt_later") {
				t.Errorf("after a failed scrub: %+v; want scrubbing with the reason", r)
			}
			if _, err := db.ExecContext(ctx, `CREATE TABLE rt_later (subject_id TEXT, body TEXT)`); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.s.Run(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if r := h.request(t, "r1"); r.State != StateDone || r.LastError != "" {
			t.Errorf("after the scrub: %+v; want done", r)
		}
		if len(h.a.erased)+len(h.b.erased)+len(h.c.erased) != 0 || len(h.ledgerHashes(t)) != 0 {
			t.Error("a scrubbing request ran holders or wrote the ledger again")
		}
	})
}

func TestReadSubject(t *testing.T) {
	null := sql.NullString{}
	str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }
	for _, tc := range []struct {
		name          string
		email, proven sql.NullString
		want          datamap.Subject
	}{
		{"old format", str("ada@example.org,new@example.org"), null, datamap.Subject{ID: "x", Email: "ada@example.org", Pending: "new@example.org"}},
		{"old format, no pending", str("ada@example.org"), null, datamap.Subject{ID: "x", Email: "ada@example.org"}},
		{"old format, no address", null, null, datamap.Subject{ID: "x"}},
		{"proven", null, str("h1,h2"), datamap.Subject{ID: "x", Proven: []string{"h1", "h2"}}},
		{"nothing proven", null, str(""), datamap.Subject{ID: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readSubject("x", tc.email, tc.proven)
			if got.ID != tc.want.ID || got.Email != tc.want.Email || got.Pending != tc.want.Pending || !slices.Equal(got.Proven, tc.want.Proven) {
				t.Errorf("readSubject = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A request written before blind indexes holds the addresses in subject_email: the
// first is acted on and remembered, the pending one only forgotten.
func TestRunOldFormatRequest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		if _, err := db.ExecContext(ctx, `INSERT INTO erasure_requests (id, subject_id, subject_email, state, source, created_at)
			VALUES ('old1', 's9', 'ada@example.org,new@example.org', $1, 'member', 1)`, StatePending); err != nil {
			t.Fatal(err)
		}
		if err := h.s.Run(ctx, "old1"); err != nil {
			t.Fatal(err)
		}
		if got := h.a.erased; len(got) != 1 || got[0].Email != "ada@example.org" || got[0].Pending != "new@example.org" {
			t.Fatalf("subject erased = %+v", got)
		}
		want := []string{"address " + h.s.ledger.Index.Address("ada@example.org"), "id " + h.s.LedgerHash(KindID, "s9")}
		if got := h.ledgerHashes(t); !slices.Equal(got, want) {
			t.Errorf("ledger = %v, want %v", got, want)
		}
		var email sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT subject_email FROM erasure_requests WHERE id = 'old1'`).Scan(&email); err != nil || email.Valid {
			t.Errorf("subject_email after = %v, %v; want NULL", email, err)
		}
	})
}

func TestLedgerHash(t *testing.T) {
	s := New(nil, nil, nil, nil, nil, testLedger(nil, "ledger key"), nil, nil)
	other := New(nil, nil, nil, nil, nil, testLedger(nil, "other key!"), nil, nil)
	h := s.LedgerHash(KindID, "abc")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("hash = %q", h)
	}
	if s.LedgerHash(KindID, " ABC ") != h {
		t.Error("the hash depends on case or surrounding space")
	}
	if s.LedgerHash("email", "abc") == h || other.LedgerHash(KindID, "abc") == h {
		t.Error("the hash does not depend on the kind and the key")
	}
}

// writeObject writes a verified object and returns its name and content.
func writeObject(t *testing.T, h *harness, id string, at int64) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	entries := []LedgerEntry{{Kind: KindID, Hash: h.s.LedgerHash(KindID, "s1")}}
	if err := h.s.writeLedgerObject(ctx, id, at, entries); err != nil {
		t.Fatal(err)
	}
	name := ledgerObjectName(at, id)
	r, err := h.blobs.Open(ctx, name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return name, b
}

func put(t *testing.T, st blob.Store, name string, b []byte) {
	t.Helper()
	if _, err := st.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// A ledger object that was changed, renamed or written under another key is refused.
func TestLedgerObjectVerification(t *testing.T) {
	ctx := context.Background()
	disk, err := blob.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{blobs: disk, s: New(nil, nil, nil, nil, nil, testLedger(disk, "ledger key"), nil, nil)}
	name, good := writeObject(t, h, "req1", 1700000000000)
	if name != "ledger/1700000000000-req1.json" {
		t.Errorf("name = %q", name)
	}
	o, err := h.s.readLedgerObject(ctx, name)
	if err != nil || o.RequestID != "req1" || len(o.Entries) != 1 {
		t.Fatalf("read = %+v, %v", o, err)
	}
	if n, err := VerifyLedgerObjects(ctx, h.s.ledger); err != nil || n != 1 {
		t.Fatalf("VerifyLedgerObjects = %d, %v; want 1", n, err)
	}
	if n, err := VerifyLedgerObjects(ctx, testLedger(disk, "other key!")); !errors.Is(err, ErrLedgerObject) || n != 0 {
		t.Errorf("under another key: %d, %v; want %v", n, err, ErrLedgerObject)
	}

	var obj map[string]any
	if err := json.Unmarshal(good, &obj); err != nil {
		t.Fatal(err)
	}
	tamper := func(f func(m map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range obj {
			m[k] = v
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	otherHash := h.s.LedgerHash(KindID, "s2")
	for _, tc := range []struct {
		name   string
		object string
		body   []byte
		reason string
	}{
		{"an entry changed", name, tamper(func(m map[string]any) {
			m["entries"] = []map[string]string{{"kind": KindID, "hash": otherHash}}
		}), "MAC does not match"},
		{"an entry added", name, tamper(func(m map[string]any) {
			m["entries"] = append(m["entries"].([]any), map[string]string{"kind": KindID, "hash": otherHash})
		}), "MAC does not match"},
		{"the time changed", name, tamper(func(m map[string]any) { m["erased_at"] = 1700000000001 }), "MAC does not match"},
		{"a field added", name, tamper(func(m map[string]any) { m["note"] = "x" }), "not a ledger object"},
		{"another format", name, tamper(func(m map[string]any) { m["format"] = "steward-ledger/2" }), "format"},
		{"a malformed hash", name, tamper(func(m map[string]any) {
			m["entries"] = []map[string]string{{"kind": KindID, "hash": "zz"}}
		}), "malformed entry"},
		{"not JSON", name, []byte("hello"), "not a ledger object"},
		{"renamed", "ledger/1700000000000-req2.json", good, "name does not match"},
		{"too large", name, bytes.Repeat([]byte(" "), maxLedgerObject+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, disk, tc.object, tc.body)
			defer func() {
				if tc.object != name {
					_ = disk.Delete(ctx, tc.object)
				}
				put(t, disk, name, good)
			}()
			_, err := h.s.readLedgerObject(ctx, tc.object)
			if !errors.Is(err, ErrLedgerObject) || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), tc.object) {
				t.Errorf("read: %v; want %v naming the object and %q", err, ErrLedgerObject, tc.reason)
			}
			if _, err := VerifyLedgerObjects(ctx, h.s.ledger); !errors.Is(err, ErrLedgerObject) {
				t.Errorf("VerifyLedgerObjects: %v, want %v", err, ErrLedgerObject)
			}
		})
	}
	if err := h.s.writeLedgerObject(ctx, "Bad Id", 1, nil); err == nil {
		t.Error("an object with a malformed request id was written")
	}
}

// A database restored from before an erasure is told again by the ledger objects: the
// missing entries come back and the subject is erased again; a tampered object stops
// the replay before it changes anything.
func TestReplay(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		if _, err := db.ExecContext(ctx, `INSERT INTO rt_notes VALUES ('s1', 'mine')`); err != nil {
			t.Fatal(err)
		}
		if err := h.s.EraseSubject(ctx, datamap.Subject{ID: "s1", Email: "ada@example.org"}, "member"); err != nil {
			t.Fatal(err)
		}
		erased := h.ledgerHashes(t)
		if len(erased) != 2 {
			t.Fatalf("ledger = %v", erased)
		}
		// The restore: the ledger and the request are gone, the subject's rows are back.
		for _, q := range []string{`DELETE FROM erasure_ledger`, `DELETE FROM erasure_requests`, `INSERT INTO rt_notes VALUES ('s1', 'mine again')`} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}

		objs := h.objects(t)
		var good []byte
		func() {
			r, err := h.blobs.Open(ctx, objs[0], 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if good, err = io.ReadAll(r); err != nil {
				t.Fatal(err)
			}
		}()
		put(t, h.blobs, objs[0], bytes.Replace(good, []byte(`"kind":"id"`), []byte(`"kind":"ix"`), 1))
		if _, err := h.s.Replay(ctx, true); !errors.Is(err, ErrLedgerObject) {
			t.Fatalf("Replay of a tampered object: %v, want %v", err, ErrLedgerObject)
		}
		if got := h.ledgerHashes(t); len(got) != 0 {
			t.Errorf("a refused replay wrote the ledger: %v", got)
		}
		put(t, h.blobs, objs[0], good)

		rep, err := h.s.Replay(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		// One object read; its two entries back; s1 found by its id and erased again;
		// the backfill marker written once.
		if rep != (ReplayReport{Objects: 1, Entries: 2, Subjects: 1, Written: 0}) {
			t.Errorf("report = %+v", rep)
		}
		if got := h.ledgerHashes(t); !slices.Equal(got, erased) {
			t.Errorf("ledger after replay = %v, want %v", got, erased)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rt_notes WHERE subject_id = 's1'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("s1's rows after replay: %d, %v; want none", n, err)
		}
		if req := h.onlyRequest(t); h.request(t, req).Source != "ledger_replay" {
			t.Errorf("the new request's source is %q", h.request(t, req).Source)
		}
		// Once in agreement, a replay adds nothing.
		if rep, err := h.s.Replay(ctx, false); err != nil || rep.Entries != 0 || rep.Subjects != 0 {
			t.Errorf("second replay = %+v, %v; want nothing added", rep, err)
		}
	})
}

// Erasures the database has and the store lacks (made before ledger objects) get their
// object once, with a marker that stops later starts from trying again.
func TestReplayWritesMissingObjects(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		h := newHarness(t, db)
		for _, q := range []string{
			`INSERT INTO erasure_ledger VALUES ('` + h.s.LedgerHash(KindID, "x") + `', 'id', 'req1', 5000)`,
			`INSERT INTO erasure_ledger VALUES ('` + h.s.LedgerHash("email", "x@example.org") + `', 'email', 'req1', 6000)`,
			`INSERT INTO erasure_ledger VALUES ('` + h.s.LedgerHash(KindID, "y") + `', 'id', 'req2', 7000)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := h.s.Replay(ctx, true)
		if err != nil || rep.Written != 2 || rep.Entries != 0 {
			t.Fatalf("Replay = %+v, %v; want two objects written, nothing added", rep, err)
		}
		want := []string{ledgerObjectName(0, backfillRequest), ledgerObjectName(6000, "req1"), ledgerObjectName(7000, "req2")}
		if got := h.objects(t); !slices.Equal(got, want) {
			t.Errorf("objects = %v, want %v", got, want)
		}
		o, err := h.s.readLedgerObject(ctx, ledgerObjectName(6000, "req1"))
		if err != nil || len(o.Entries) != 2 {
			t.Errorf("req1's object = %+v, %v; want both entries", o, err)
		}
		if newest, err := NewestErasure(ctx, db); err != nil || newest != 7000 {
			t.Errorf("NewestErasure = %d, %v", newest, err)
		}
		if rep, err := h.s.Replay(ctx, true); err != nil || rep.Written != 0 || rep.Objects != 3 {
			t.Errorf("second Replay = %+v, %v; want nothing written, three objects read", rep, err)
		}
	})
}
