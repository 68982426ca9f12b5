package sqlcheck

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"steward/internal/jobs"
	"steward/internal/store"
	"steward/internal/store/sqlcheck/scan"
	"steward/internal/store/storetest"
)

// Every listed statement prepares on a freshly migrated database of each engine, as
// the app checks at start.
func TestStatementsPrepare(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := jobs.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n, err := Check(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d statements prepared in %v", db.Dialect, n, time.Since(start))
		want := 0
		for _, s := range mainStatements() {
			if s.engines&map[store.Dialect]engines{store.SQLite: sqliteOnly, store.Postgres: postgresOnly}[db.Dialect] != 0 {
				want++
			}
		}
		if n != want || n < 100 {
			t.Errorf("prepared %d statements, want all %d of the engine's (and more than 100)", n, want)
		}
	})
}

// A statement with a typo fails the check, which names where it stands and what the
// engine said; a statement for the other engine only is not prepared.
func TestCheckNamesTypo(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		other := postgresOnly
		if db.Dialect == store.Postgres {
			other = sqliteOnly
		}
		list := []statement{
			{"internal/account/account.go:1", bothEngines, `SELECT id FROM accounts WHERE id = $1`},
			{"internal/rights/erasure.go:42", bothEngines, `SELECT id, no_such_column FROM accounts WHERE id = $1`},
			{"internal/other/engine.go:7", other, `THIS IS NOT SQL ON EITHER ENGINE`},
		}
		n, err := check(context.Background(), db, list)
		if err == nil {
			t.Fatal("check passed a statement with a column that does not exist")
		}
		for _, want := range []string{"internal/rights/erasure.go:42", "no_such_column", string(db.Dialect)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		for _, not := range []string{"account.go:1", "engine.go:7"} {
			if strings.Contains(err.Error(), not) {
				t.Errorf("error %q names %s, which is fine on %s", err, not, db.Dialect)
			}
		}
		if n != 1 {
			t.Errorf("prepared %d statements, want 1", n)
		}
	})
}

// The list is the one the generator writes from the code as it is now, and every call
// that builds its statement at run time is listed in dynamic.txt with a reason.
// STEWARD_UPDATE_DOCS=1 rewrites the list (as go generate ./internal/store/sqlcheck does).
func TestListUpToDate(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	res, err := scan.Module(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scan.Render(res)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("STEWARD_UPDATE_DOCS") == "1" {
		if err := os.WriteFile("statements.go", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("statements.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("internal/store/sqlcheck/statements.go is out of date (a statement was added, changed or moved); " +
			"run go generate ./internal/store/sqlcheck")
	}
	list, err := os.ReadFile("dynamic.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := scan.CheckDynamic(res, string(list)); err != nil {
		t.Error(err)
	}
}
