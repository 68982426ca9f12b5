package datamap

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"steward/internal/store"
	"steward/internal/store/storetest"
)

// holder is a holder of a fixed declaration whose Export and Erase use the defaults.
type holder struct {
	d     Declaration
	files map[string]string // for ExportFiles, when set
	err   error             // returned by Residue and ScanTerms, when set
}

func (h holder) Declaration() Declaration { return h.d }
func (h holder) Export(ctx context.Context, q store.Querier, s Subject) ([]Section, error) {
	return ExportDeclared(ctx, q, s, h.d)
}
func (h holder) Erase(ctx context.Context, tx *store.Tx, s Subject) error {
	return EraseDeclared(ctx, tx, s, h.d)
}

// fileHolder also exports files and answers residue and term scans.
type fileHolder struct{ holder }

func (h fileHolder) ExportFiles(_ context.Context, _ Subject, add func(string, io.Reader) error) error {
	for _, name := range slices.Sorted(maps.Keys(h.files)) {
		if err := add(name, strings.NewReader(h.files[name])); err != nil {
			return err
		}
	}
	return nil
}

func (h fileHolder) Residue(context.Context, string) ([]string, error) {
	return []string{h.d.Name + ": an object"}, h.err
}

func (h fileHolder) ScanTerms(_ context.Context, terms []Term) ([]Finding, error) {
	var out []Finding
	for _, t := range terms {
		out = append(out, Finding{Where: h.d.Name + " folder", Kind: t.Kind, Count: 1})
	}
	return out, h.err
}

// opener opens "sealed:<label>:<value>" under the label it was sealed with, as the
// vault binds a value to its label.
type opener struct{}

func (opener) OpenText(label, sealed string) (string, error) {
	v, ok := strings.CutPrefix(sealed, "sealed:"+label+":")
	if !ok {
		return "", errors.New("wrong label")
	}
	return v, nil
}

func exec(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// notesTable is a small table of the tests' own.
var notesTable = Table{Name: "dm_notes", Subject: "owner", Columns: []Column{
	{Name: "owner", Categories: []string{"user.unique_id"}, Plain: "a random id"},
	{Name: "body", Categories: []string{"user.content"}, Sealed: true},
	{Name: "copy", Categories: []string{"user.content"}, Sealed: true, Label: "dm_notes.body"},
	{Name: "at", Time: true, NotPersonal: "a time"},
	{Name: "secret", Categories: []string{"user.authorization"}, Withheld: "a hash", Plain: "a hash"},
}}

func createNotes(t *testing.T, db *store.DB) {
	exec(t, db,
		`CREATE TABLE dm_notes (owner TEXT NOT NULL, body TEXT, copy TEXT, at BIGINT, secret TEXT)`,
		`INSERT INTO dm_notes VALUES ('a', 'sealed:dm_notes.body:hello', 'sealed:dm_notes.body:again', 1700000000000, 'h1')`,
		`INSERT INTO dm_notes VALUES ('a', NULL, NULL, NULL, 'h2')`,
		`INSERT INTO dm_notes VALUES ('b', 'sealed:dm_notes.body:other', NULL, NULL, 'h3')`,
	)
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	a := holder{d: Declaration{Name: "a", Tables: []Table{{Name: "t1"}, {Name: "t2"}}}}
	r.Register(a)
	r.Register(holder{d: Declaration{Name: "b"}})
	if h, ok := r.Holder("a"); !ok || h.Declaration().Name != "a" {
		t.Errorf("Holder(a) = %v, %v", h, ok)
	}
	if _, ok := r.Holder("z"); ok {
		t.Error("Holder(z) found a holder never registered")
	}
	hs := r.Holders()
	hs[0] = nil
	if r.Holders()[0] == nil {
		t.Error("Holders returned the registry's own slice")
	}
	if got := a.d.TableNames(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("TableNames = %v", got)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "twice: a") {
			t.Errorf("registering a second holder named a: panic %v, want one naming it", p)
		}
	}()
	r.Register(holder{d: Declaration{Name: "a"}})
}

func TestCategories(t *testing.T) {
	d := Declaration{Tables: []Table{notesTable, {Name: "x", Columns: []Column{{Name: "e", Categories: []string{"user.contact.email", "user.content"}}}}}}
	want := []string{"user.authorization", "user.contact.email", "user.content", "user.unique_id"}
	if got := d.Categories(); !slices.Equal(got, want) {
		t.Errorf("Categories = %v, want %v", got, want)
	}
}

// Coverage names every column of the schema nobody declared, every declaration the
// schema lacks, and every column declared without saying whether it is personal.
func TestCoverage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		exec(t, db,
			`CREATE TABLE dm_people (id TEXT PRIMARY KEY, name TEXT, extra TEXT, vague TEXT)`,
			`CREATE TABLE dm_orphan (id TEXT)`,
			`CREATE TABLE dm_cache_one (v TEXT)`,
			`CREATE TABLE dm_counter (n INT)`,
		)
		r := NewRegistry()
		r.Register(holder{d: Declaration{Name: "people", Tables: []Table{{Name: "dm_people", Subject: "id", Columns: []Column{
			{Name: "id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
			{Name: "name", Categories: []string{"user.name"}, Sealed: true},
			{Name: "vague"},
			{Name: "gone", Categories: []string{"user.name"}, Sealed: true},
		}}}}})
		r.DeclareNonPersonal("dm_cache_*", "a cache")
		r.DeclareNonPersonal("dm_counter", "a count")
		if got := r.NonPersonal(); got["dm_counter"] != "a count" || len(got) != 2 {
			t.Errorf("NonPersonal = %v", got)
		}
		got, err := r.Coverage(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		var mine []string
		for _, p := range got {
			if strings.HasPrefix(p, "dm_") {
				mine = append(mine, p)
			}
		}
		want := []string{
			"dm_orphan.id: not declared by any holder",
			"dm_people.extra: not declared by any holder",
			"dm_people.gone: declared but not in the schema",
			"dm_people.vague: declared without categories or a reason it holds no personal data",
		}
		if !slices.Equal(mine, want) {
			t.Errorf("Coverage:\n got %q\nwant %q", mine, want)
		}
	})
}

func TestSelect(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		createNotes(t, db)
		s := Subject{ID: "a", Key: opener{}}
		sec, err := s.Select(ctx, db, notesTable, "owner = $1 ORDER BY secret", "a")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"owner", "body", "copy", "at"}; !slices.Equal(sec.Columns, want) {
			t.Errorf("columns = %v, want %v (the withheld one left out)", sec.Columns, want)
		}
		want := [][]string{{"a", "hello", "again", "2023-11-14T22:13:20Z"}, {"a", "", "", ""}}
		if len(sec.Rows) != 2 || !slices.Equal(sec.Rows[0], want[0]) || !slices.Equal(sec.Rows[1], want[1]) {
			t.Errorf("rows = %q, want %q", sec.Rows, want)
		}

		if _, err := SelectSection(ctx, db, notesTable, "owner = $1", "a"); err == nil || !strings.Contains(err.Error(), "no key") {
			t.Errorf("sealed column without a key: %v, want an error", err)
		}
		bad := notesTable
		bad.Columns = slices.Clone(notesTable.Columns)
		bad.Columns[1].Label = "another.label"
		if _, err := s.Select(ctx, db, bad, "owner = $1", "a"); err == nil || !strings.Contains(err.Error(), "dm_notes.body: wrong label") {
			t.Errorf("a value sealed under another label: %v, want the opener's error naming the column", err)
		}

		parts, err := s.SelectParts(ctx, db, Part{Table: notesTable, Where: "owner = $1"}, Part{Table: notesTable, Where: "owner = $1 AND body IS NOT NULL"})
		if err != nil || len(parts) != 2 || len(parts[0].Rows) != 2 || len(parts[1].Rows) != 1 {
			t.Errorf("SelectParts = %+v, %v; want two sections of 2 and 1 rows", parts, err)
		}
		plain := Table{Name: "dm_notes", Columns: []Column{{Name: "owner"}, {Name: "secret"}}}
		parts, err = SelectParts(ctx, db, "b", Part{Table: plain, Where: "owner = $1"})
		if err != nil || len(parts) != 1 || len(parts[0].Rows) != 1 || parts[0].Rows[0][1] != "h3" {
			t.Errorf("SelectParts of b = %+v, %v", parts, err)
		}
	})
}

func TestEraseDeclaredOfNoSubject(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		createNotes(t, db)
		d := Declaration{Name: "notes", Tables: []Table{notesTable}}
		// An empty id erases nothing, rather than whatever has no owner.
		exec(t, db, `INSERT INTO dm_notes (owner) VALUES ('')`)
		if err := db.InTx(ctx, func(tx *store.Tx) error { return EraseDeclared(ctx, tx, Subject{}, d) }); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return EraseDeclared(ctx, tx, Subject{ID: "a"}, d) }); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM dm_notes`).Scan(&n); err != nil || n != 2 {
			t.Errorf("rows left = %d, %v; want b's and the ownerless one", n, err)
		}
	})
}

// The archive holds a manifest, a JSON file per holder, a CSV per table with formulas
// defused, and the files of a file exporter.
func TestExport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		createNotes(t, db)
		exec(t, db, `UPDATE dm_notes SET body = 'sealed:dm_notes.body:=HYPERLINK("x")' WHERE owner = 'a' AND secret = 'h1'`)
		r := NewRegistry()
		r.Register(fileHolder{holder{d: Declaration{Name: "notes", Purpose: "notes", LawfulBasis: "contract", Tables: []Table{notesTable}},
			files: map[string]string{"a.txt": "file a"}}})
		var buf bytes.Buffer
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
		if err := r.Export(ctx, db, Subject{ID: "a", Key: opener{}}, at, &buf); err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		// Every entry is dated the export's time, not zip's zero date (issue 12, finding 16).
		for _, f := range zr.File {
			if !f.Modified.Equal(at) {
				t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, at)
			}
		}
		read := func(name string) []byte {
			t.Helper()
			f, err := zr.Open(name)
			if err != nil {
				t.Fatalf("archive: %v", err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		var m Manifest
		if err := json.Unmarshal(read("manifest.json"), &m); err != nil {
			t.Fatal(err)
		}
		if m.SubjectID != "a" || !m.GeneratedAt.Equal(at) || m.GeneratedAt.Location() != time.UTC || len(m.Holders) != 1 {
			t.Fatalf("manifest = %+v", m)
		}
		mh := m.Holders[0]
		wantFiles := []string{"notes/notes.json", "notes/dm_notes.csv", "notes/files/a.txt"}
		if !slices.Equal(mh.Files, wantFiles) || mh.Rows != 2 || mh.Withheld["dm_notes.secret"] != "a hash" {
			t.Errorf("manifest holder = %+v; want files %v, 2 rows, the withheld column with its reason", mh, wantFiles)
		}
		rows, err := csv.NewReader(bytes.NewReader(read("notes/dm_notes.csv"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, row := range rows[1:] {
			bodies = append(bodies, row[1])
		}
		slices.Sort(bodies)
		if want := []string{"", `'=HYPERLINK("x")`}; !slices.Equal(bodies, want) {
			t.Errorf("CSV bodies = %q, want %q", bodies, want)
		}
		if !strings.Contains(string(read("notes/notes.json")), `"body": "=HYPERLINK(\"x\")"`) {
			t.Errorf("JSON: %s; want the value as it is", read("notes/notes.json"))
		}
		if got := string(read("notes/files/a.txt")); got != "file a" {
			t.Errorf("file = %q", got)
		}
	})
}

func TestNeutralize(t *testing.T) {
	row := []string{"ok", "=1+1", "+1", "-1", "@SUM", "\tx", "\rx", ""}
	got := neutralize(row)
	want := []string{"ok", "'=1+1", "'+1", "'-1", "'@SUM", "'\tx", "'\rx", ""}
	if !slices.Equal(got, want) {
		t.Errorf("neutralize = %q, want %q", got, want)
	}
	if row[1] != "=1+1" {
		t.Error("neutralize changed its argument")
	}
	clean := []string{"a", "b"}
	if got := neutralize(clean); &got[0] != &clean[0] {
		t.Error("a clean row was copied")
	}
}

func TestScanAndHolders(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		exec(t, db,
			`CREATE TABLE dm_msgs (id INT, body TEXT, other TEXT)`,
			`INSERT INTO dm_msgs VALUES (1, 'write to ADA@example.org', NULL), (2, 'ada@example.org again', 'Ada@Example.org'), (3, 'nothing', 'Al')`,
			`CREATE TABLE dm_held (body TEXT)`,
			`INSERT INTO dm_held VALUES ('ada@example.org')`,
		)
		terms := []Term{{Kind: "email", Value: " Ada@Example.org "}, {Kind: "name", Value: "Al"}}
		found, err := scanRows(ctx, db, usable(terms), []string{"dm_held"})
		if err != nil {
			t.Fatal(err)
		}
		want := []Finding{{Where: "dm_msgs.body", Kind: "email", Count: 2, Table: "dm_msgs"}, {Where: "dm_msgs.other", Kind: "email", Count: 1, Table: "dm_msgs"}}
		if !slices.Equal(found, want) {
			t.Errorf("scanRows = %v, want %v (short terms and skipped tables left out)", found, want)
		}
		found, err = Scan(ctx, db, terms)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(found, Finding{Where: "dm_held.body", Kind: "email", Count: 1, Table: "dm_held"}) {
			t.Errorf("Scan = %v, want the held table too when not skipped", found)
		}
		// A legal hold on dm_held: what is found there (its rows; on SQLite its pages)
		// is held, what is found in dm_msgs is still residue.
		kept := []Kept{{Table: "dm_held", Holder: "h", HoldID: "hold1"}}
		residue, held, _, err := NewRegistry().ScanKept(ctx, db, terms, kept, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(held, func(h Held) bool { return h.Where == "dm_held.body" && h.HoldID == "hold1" }) {
			t.Errorf("held = %v, want dm_held.body", held)
		}
		for _, f := range residue {
			if f.Table == "dm_held" {
				t.Errorf("residue in the kept table: %v", f)
			}
		}
		if !slices.ContainsFunc(residue, func(f Finding) bool { return f.Where == "dm_msgs.body" }) {
			t.Errorf("residue = %v, want dm_msgs.body", residue)
		}
		if db.Dialect == store.SQLite && db.Path() != "" {
			if !slices.ContainsFunc(held, func(h Held) bool { return strings.Contains(h.Where, "(pages of dm_held)") }) {
				t.Errorf("held = %v, want the pages of dm_held in the database's files", held)
			}
			if !slices.ContainsFunc(residue, func(f Finding) bool {
				return strings.Contains(f.Where, "(pages of dm_msgs)") || strings.HasPrefix(f.Where, "file ") && f.Table == ""
			}) {
				t.Errorf("residue = %v, want dm_msgs's bytes in the database's files", residue)
			}
		}
		if got := (Finding{Where: "dm_msgs.body", Kind: "email", Count: 2}).String(); got != "dm_msgs.body: 2 match(es) of the subject's email" {
			t.Errorf("Finding.String = %q", got)
		}

		r := NewRegistry()
		r.Register(holder{d: Declaration{Name: "plain"}})
		r.Register(fileHolder{holder{d: Declaration{Name: "files"}}})
		all, err := r.ScanAll(ctx, db, terms)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(all, Finding{Where: "files folder", Kind: "email", Count: 1}) || slices.ContainsFunc(all, func(f Finding) bool { return f.Kind == "name" }) {
			t.Errorf("ScanAll = %v; want the holder's folder searched for the usable terms only", all)
		}
		if res, err := r.CheckResidue(ctx, "a"); err != nil || !slices.Equal(res, []string{"files: an object"}) {
			t.Errorf("CheckResidue = %v, %v", res, err)
		}
		broken := NewRegistry()
		broken.Register(fileHolder{holder{d: Declaration{Name: "broken"}, err: errors.New("disk gone")}})
		if _, err := broken.CheckResidue(ctx, "a"); err == nil || !strings.Contains(err.Error(), "broken: disk gone") {
			t.Errorf("CheckResidue of a failing holder: %v", err)
		}
		if _, err := broken.ScanAll(ctx, db, terms); err == nil || !strings.Contains(err.Error(), "broken: disk gone") {
			t.Errorf("ScanAll of a failing holder: %v", err)
		}
	})
}

func TestEachSubjectID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		createNotes(t, db)
		exec(t, db, `CREATE TABLE dm_more (who TEXT)`, `INSERT INTO dm_more VALUES ('b'), ('c'), (NULL)`)
		r := NewRegistry()
		r.Register(holder{d: Declaration{Name: "notes", Tables: []Table{notesTable, {Name: "dm_more", Subject: "who"}, {Name: "dm_notes", Subject: "owner"}}}})
		r.Register(holder{d: Declaration{Name: "shared", Tables: []Table{{Name: "dm_more"}}}})
		var ids []string
		if err := r.EachSubjectID(ctx, db, func(id string) error { ids = append(ids, id); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"a", "b", "c"}) {
			t.Errorf("subjects = %v, want a b c once each", ids)
		}
		stop := errors.New("stop")
		if err := r.EachSubjectID(ctx, db, func(string) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("EachSubjectID: %v, want fn's error", err)
		}
	})
}
