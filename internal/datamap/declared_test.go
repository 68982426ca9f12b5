package datamap_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"steward/internal/datamap"
	"steward/internal/store"
	"steward/internal/store/storetest"
)

type upper struct{}

func (upper) OpenText(label, sealed string) (string, error) {
	return label + ":" + strings.ToUpper(sealed), nil
}

type named struct{ name string }

func (n named) Declaration() datamap.Declaration { return datamap.Declaration{Name: n.name} }
func (named) Export(context.Context, store.Querier, datamap.Subject) ([]datamap.Section, error) {
	return nil, nil
}
func (named) Erase(context.Context, *store.Tx, datamap.Subject) error { return nil }

func TestDeclaredDefaults(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, q := range []string{
			`CREATE TABLE parents (id TEXT PRIMARY KEY, secret TEXT NOT NULL)`,
			`CREATE TABLE children (parent_id TEXT NOT NULL REFERENCES parents(id), note TEXT NOT NULL)`,
			`CREATE TABLE shared (what TEXT NOT NULL)`,
			`INSERT INTO parents VALUES ('a', 'x'), ('b', 'y')`,
			`INSERT INTO children VALUES ('a', 'one'), ('a', 'two'), ('b', 'three')`,
			`INSERT INTO shared VALUES ('kept')`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		d := datamap.Declaration{Name: "family", Tables: []datamap.Table{
			{Name: "parents", Subject: "id", Columns: []datamap.Column{{Name: "id", Plain: "id"}, {Name: "secret", Sealed: true}}},
			{Name: "children", Subject: "parent_id", Columns: []datamap.Column{{Name: "parent_id"}, {Name: "note"}}},
			{Name: "shared", Columns: []datamap.Column{{Name: "what", NotPersonal: "not anyone's"}}},
		}}
		s := datamap.Subject{ID: "a", Key: upper{}}
		secs, err := datamap.ExportDeclared(ctx, db, s, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(secs) != 2 || len(secs[0].Rows) != 1 || secs[0].Rows[0][1] != "parents.secret:X" || len(secs[1].Rows) != 2 {
			t.Fatalf("export: %+v", secs)
		}
		// The children reference the parents: erased first, whatever the foreign keys.
		if err := db.InTx(ctx, func(tx *store.Tx) error { return datamap.EraseDeclared(ctx, tx, s, d) }); err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string]int{
			`SELECT count(*) FROM parents WHERE id = 'a'`: 0, `SELECT count(*) FROM children WHERE parent_id = 'a'`: 0,
			`SELECT count(*) FROM parents`: 1, `SELECT count(*) FROM children`: 1, `SELECT count(*) FROM shared`: 1,
		} {
			var n int
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil || n != want {
				t.Errorf("%s = %d (%v), want %d", q, n, err, want)
			}
		}
	})
}

func TestErasureOrder(t *testing.T) {
	r := datamap.NewRegistry()
	for _, n := range []string{"a", "b", "c"} {
		r.Register(named{n})
	}
	names := func() []string {
		var out []string
		for _, h := range r.ErasureOrder() {
			out = append(out, h.Declaration().Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Errorf("default order %v", got)
	}
	for _, bad := range [][]string{{"a", "b"}, {"a", "b", "b"}, {"a", "b", "z"}} {
		if err := r.SetErasureOrder(bad...); err == nil {
			t.Errorf("SetErasureOrder(%v) accepted", bad)
		}
	}
	if err := r.SetErasureOrder("b", "a", "c"); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("set order %v", got)
	}
}

type declaring struct{ d datamap.Declaration }

func (h declaring) Declaration() datamap.Declaration { return h.d }
func (declaring) Export(context.Context, store.Querier, datamap.Subject) ([]datamap.Section, error) {
	return nil, nil
}
func (declaring) Erase(context.Context, *store.Tx, datamap.Subject) error { return nil }

// A personal column must be sealed or say why it is kept plain: the schema check fails
// on any other, on both engines.
func TestCoverageWantsSealedOrPlain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, `CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT, phone TEXT, colour TEXT)`); err != nil {
			t.Fatal(err)
		}
		r := datamap.NewRegistry()
		r.Register(declaring{datamap.Declaration{Name: "people", Tables: []datamap.Table{{Name: "people", Subject: "id", Columns: []datamap.Column{
			{Name: "id", Categories: []string{"user.unique_id"}, Plain: "a random id"},
			{Name: "name", Categories: []string{"user.name"}, Sealed: true},
			{Name: "phone", Categories: []string{"user.contact.phone_number"}},
			{Name: "colour", NotPersonal: "a favourite colour of the product"},
		}}}}})
		got, err := r.Coverage(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		var mine []string
		for _, p := range got {
			if strings.HasPrefix(p, "people.") {
				mine = append(mine, p)
			}
		}
		if want := []string{"people.phone: personal data, neither sealed nor with a reason it is kept plain"}; !slices.Equal(mine, want) {
			t.Errorf("coverage: %v, want %v", mine, want)
		}
	})
}
