// Package sqlcheck checks at start that every SQL statement of Steward's code prepares
// on the database it runs on, so that a typo or a column a migration dropped fails the
// start (and the tests), not a member's request on the erasure or export path.
//
// The statements are listed in statements.go, written by `go run ./gen` (package scan
// finds them in the source: every statement passed to the database whose text the code
// fixes at compile time). A test fails when the list is out of date. Statements built
// at run time (table names from the data map, IN lists) cannot be listed; dynamic.txt
// names each place that builds one, and why, and a test fails on one it does not name.
package sqlcheck

//go:generate go run ./gen

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"steward/internal/store"
)

type engines int

const (
	sqliteOnly engines = 1 << iota
	postgresOnly
	bothEngines = sqliteOnly | postgresOnly
)

type statement struct {
	pos     string // file:line
	engines engines
	sql     string
}

// Check prepares every listed statement meant for db's engine, on one connection, and
// closes it again. It returns how many it prepared, and an error naming each statement
// that does not prepare, by file and line, with the engine's error.
func Check(ctx context.Context, db *store.DB) (int, error) {
	return check(ctx, db, mainStatements())
}

// analyticsDir is where the statements of the analytics store stand: they run on a
// store of their own (internal/analytics), and are checked on it (CheckAnalytics).
const analyticsDir = "internal/analytics/"

// CheckAnalytics is Check for the analytics store: the statements of internal/analytics.
func CheckAnalytics(ctx context.Context, db *store.DB) (int, error) {
	var list []statement
	for _, s := range statements {
		if strings.HasPrefix(s.pos, analyticsDir) {
			list = append(list, s)
		}
	}
	return check(ctx, db, list)
}

// mainStatements are the statements that run on Steward's own database.
func mainStatements() []statement {
	list := make([]statement, 0, len(statements))
	for _, s := range statements {
		if !strings.HasPrefix(s.pos, analyticsDir) {
			list = append(list, s)
		}
	}
	return list
}

func check(ctx context.Context, db *store.DB, list []statement) (int, error) {
	on := sqliteOnly
	if db.Dialect == store.Postgres {
		on = postgresOnly
	}
	conn, err := db.Writer().Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlcheck: %w", err)
	}
	defer conn.Close()
	var bad []string
	n := 0
	for _, s := range list {
		if s.engines&on == 0 {
			continue
		}
		st, err := conn.PrepareContext(ctx, db.Rebind(s.sql))
		if err != nil {
			if ctx.Err() != nil {
				return n, fmt.Errorf("sqlcheck: %w", ctx.Err())
			}
			bad = append(bad, fmt.Sprintf("%s: %v", s.pos, err))
			continue
		}
		n++
		if err := st.Close(); err != nil {
			return n, fmt.Errorf("sqlcheck: %s: close: %w", s.pos, err)
		}
	}
	if len(bad) > 0 {
		return n, errors.New("sqlcheck: statements that do not prepare on " + string(db.Dialect) + ":\n\t" + strings.Join(bad, "\n\t"))
	}
	return n, nil
}
